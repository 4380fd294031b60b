"""A patient with a record in every category, filed the way uploads are, for FHIR export tests."""

from __future__ import annotations

import io
import json
import wave
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid
from sqlalchemy import select

from server.access.grants import holds_edit_grant
from server.access.models import Consent
from server.audit.trail import AuditTrail
from server.db import Database
from server.directory.models import ConsultationRow, InvitationRow
from server.records.blobs import BlobStore, LocalBlobStore
from server.records.filing import Arrival, RecordFiling, patient_by_id
from server.records.ingest import Category, IngestLimits
from server.records.models import BLOB_TABLES, EmrEntry, Patient
from server.records.store import RecordStore, SnapshotOrigin
from server.relevance.models import Diagnosis

NAME = "Jane Hill"
IDENTIFIER = "P-1"
BIRTH = date(1961, 4, 12)
NEEDLES = [NAME, "Hill^Jane", IDENTIFIER, "19610412", "1961-04-12", "2025-03-02", "20250302"]


def filing_for(database: Database, folder: Path, blobs: BlobStore | None = None) -> RecordFiling:
    """Filing into ``folder``'s local blob store, or ``blobs`` (the site's, e.g. on S3)."""
    staging = folder / "staging"
    staging.mkdir(parents=True, exist_ok=True)
    store = RecordStore(
        database, blobs or LocalBlobStore(folder / "blobs"), max_bytes=4 * 1024 * 1024
    )
    return RecordFiling(
        database,
        store,
        AuditTrail(database),
        staging=staging,
        limits=IngestLimits(max_image_pixels=10**7),
        may_edit=holds_edit_grant,
    )


def _png(colour: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), colour).save(out, format="PNG")
    return out.getvalue()


def _jpeg_with_exif() -> bytes:
    exif = Image.Exif()
    exif[0x013B] = NAME  # Artist
    exif[0x9003] = "2025:03:02 10:00:00"  # DateTimeOriginal
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (10, 200, 10)).save(out, format="JPEG", exif=exif.tobytes())
    return out.getvalue()


def _ct(study: str, series: str, position: float) -> bytes:
    ds = pydicom.dcmread(str(get_testdata_file("CT_small.dcm")))
    ds.PatientName, ds.PatientID, ds.PatientBirthDate = "Hill^Jane", IDENTIFIER, "19610412"
    ds.StudyDate, ds.InstitutionName = "20250302", "Hill Clinic"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.ImagePositionPatient = [0.0, 0.0, position]
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def _wav() -> bytes:
    samples = (np.sin(np.arange(8000) / 5) * 8000).astype("<i2")
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16_000)
        w.writeframes(samples.tobytes())
    return out.getvalue()


def _pdf() -> bytes:
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] >>",
    ]
    body = b"%PDF-1.4\n" + b"".join(
        f"{n + 1} 0 obj\n".encode() + obj + b"\nendobj\n" for n, obj in enumerate(objects)
    )
    return body + b"trailer\n<< /Root 1 0 R >>\n%%EOF\n"


EMR_FIELDS: list[dict[str, Any]] = [
    {"note": f"{NAME} ({IDENTIFIER}) seen on 2025-03-02", "bmi": 27.1, "smoker": False},
    {"blood_pressure": {"systolic": 130, "diastolic": 85}, "pulse": 72, "tags": ["a", "b"]},
]


@dataclass(frozen=True)
class Filed:
    patient_id: int
    counts: dict[str, int]


def file_everything(filing: RecordFiling, *, actor: str = "alice") -> Filed:
    """Patient P-1 (Jane Hill) with two photos, two scans (image, PDF), three CT slices
    of one study in two series, a voice note, two EMR entries, a consultation, consents
    and a confirmed diagnosis."""
    with filing.database.session() as session, session.begin():
        patient = RecordStore.ensure_patient(session, IDENTIFIER, NAME)
        patient.birth_date, patient.sex = BIRTH, "female"
        pid = patient.id
    study, series = generate_uid(), [generate_uid(), generate_uid()]
    files: list[tuple[bytes, Category | None, str]] = [
        (_png((200, 30, 30)), Category.PHOTO, "wound of Jane Hill.png"),
        (_jpeg_with_exif(), Category.PHOTO, "arm"),
        (_png((30, 30, 200)), Category.SCAN, "referral page"),
        (_pdf(), Category.SCAN, "discharge letter"),
        (_ct(study, series[0], 0.0), None, "IM1"),
        (_ct(study, series[0], 5.0), None, "IM2"),
        (_ct(study, series[1], 0.0), None, "IM3"),
        (_wav(), Category.VOICE, "dictation"),
    ]
    now = datetime.now(UTC)
    snapshot = SnapshotOrigin(now - timedelta(hours=1, minutes=30), "bob", "c-77")
    for number, (data, declared, title) in enumerate(files):
        arrival = Arrival(
            actor,
            "snapshot" if number == 0 else "upload",
            title=title,
            declared=declared,
            snapshot=snapshot if number == 0 else None,  # the first photo: taken in c-77
        )
        filing.file_bytes(data, patient_by_id(pid), arrival)
    with filing.database.session() as session, session.begin():
        subject = session.get(Patient, pid)
        assert subject is not None
        for number, fields in enumerate(EMR_FIELDS):
            at = now - timedelta(days=number + 1)
            filing.add_emr(session, subject, fields, at, actor=actor, via="api")
        session.add(
            ConsultationRow(
                cid="c-77",
                title="Wound review",
                patient_id=IDENTIFIER,
                appliance="cam-1",
                state="ended",
                chair="alice",
                reason=f"{NAME} wound not healing",
                requested_by="nurse",
                started_at=now - timedelta(hours=2),
                ended_at=now - timedelta(hours=1),
            )
        )
        session.flush()
        session.add(InvitationRow(cid="c-77", username="bob", invited_by="alice"))
        for purpose, granted in (("export", True), ("training", False)):
            session.add(
                Consent(
                    patient_id=pid, purpose=purpose, granted=granted, recorded_by="alice", note=""
                )
            )
        session.add(
            Diagnosis(
                patient_id=pid, label="infection", confirmed_by="alice", consultation_id="c-77"
            )
        )
    counts = {"clinical_photo": 2, "record_scan": 2, "ct_image": 3, "voice_note": 1}
    return Filed(pid, {**counts, "emr_entry": len(EMR_FIELDS)})


def record_summary(database: Database, external_id: str) -> dict[str, Any]:
    """What a round trip must keep: per category the count and the files' SHA-256s, the
    EMR entries' fields, and the patient's registration fields."""
    with database.session() as session:
        patient = session.scalar(select(Patient).where(Patient.external_id == external_id))
        assert patient is not None
        out: dict[str, Any] = {
            "patient": (patient.display_name, patient.birth_date, patient.sex),
        }
        for table in BLOB_TABLES:
            rows = session.scalars(select(table).where(table.patient_id == patient.id))
            out[table.__name__] = sorted(r.blob_sha256 for r in rows)
        emr = session.scalars(select(EmrEntry).where(EmrEntry.patient_id == patient.id))
        out["emr"] = sorted(
            json.dumps([e.fields, e.recorded_at.isoformat()], sort_keys=True) for e in emr
        )
        return out

"""A small site for the report tests: accounts, a patient with a photo, an ended
consultation chaired by ``chair``, and the real report service over it."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from PIL import Image
from sqlalchemy import select

from server.audit.log import AuditEntry
from server.audit.trail import AuditTrail
from server.auth import hash_secret
from server.db import Database, open_database
from server.directory.models import ENDED, AccountRow, ConsultationRow, InvitationRow
from server.records.blobs import LocalBlobStore
from server.records.models import SOURCE_SNAPSHOT, ClinicalPhoto, Patient
from server.records.store import RecordStore
from server.relevance.models import Diagnosis
from server.relevance.service import RelevanceService
from server.reports.service import ReportService

PASSWORD = "correct horse battery"
T_START = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
T_END = datetime(2026, 11, 30, 9, 40, tzinfo=UTC)


@dataclass
class Notes:
    """A real (tiny) notes source: the text of each consultation's notes."""

    texts: dict[str, str] = field(default_factory=dict)

    async def text(self, consultation_id: str) -> str:
        return self.texts.get(consultation_id, "")


@dataclass
class World:
    database: Database
    store: RecordStore
    audit: AuditTrail
    reports: ReportService
    notes: Notes
    patient: Patient
    photo_id: int
    cid: str = "c-report1"

    def actions(self) -> list[str]:
        with self.database.session() as session:
            return [e.action for e in session.scalars(select(AuditEntry).order_by(AuditEntry.seq))]


def png_bytes() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (32, 24), (200, 40, 40)).save(out, "PNG")
    return out.getvalue()


def build(tmp_path: Path, url: str | None = None) -> World:
    database = open_database(url or f"sqlite:///{tmp_path / 'db.sqlite'}")
    audit = AuditTrail(database)
    store = RecordStore(database, LocalBlobStore(tmp_path / "blobs"), max_bytes=10_000_000)
    data = png_bytes()
    ref = store.blobs.put(io.BytesIO(data), max_bytes=len(data) + 1)
    with database.session() as session, session.begin():
        for name, role in (
            ("chair", "chair"),
            ("alice", "expert"),
            ("bob", "expert"),
            ("chair2", "chair"),
            ("nurse", "clinic"),
        ):
            session.add(
                AccountRow(
                    username=name,
                    display_name=name.title() + " 医生",
                    password_hash=hash_secret(PASSWORD),
                    role=role,
                    clinic="Hill Clinic" if role == "clinic" else None,
                    created_by="test",
                )
            )
        patient = Patient(external_id="P-1", display_name="王 Patient", clinic="Hill Clinic")
        session.add(patient)
        session.flush()
        session.add(
            ConsultationRow(
                cid="c-report1",
                title="Rash review",
                patient_id="P-1",
                appliance="cam-1",
                state=ENDED,
                chair="chair",
                reason="itching rash on the forearm",
                requested_by="nurse",
                scheduled_start=T_START,
                scheduled_end=T_END,
                started_at=T_START,
                ended_at=T_END,
                ended_by="chair",
            )
        )
        for name in ("chair", "alice", "bob"):
            session.add(InvitationRow(cid="c-report1", username=name, invited_by="chair"))
        photo = ClinicalPhoto(
            patient_id=patient.id,
            created_by="cam-1",
            blob_sha256=ref.sha256,
            blob_size=ref.size,
            media_type="image/png",
            title="forearm",
            width=32,
            height=24,
            taken_at=T_START,
            source=SOURCE_SNAPSHOT,
            consultation_id="c-report1",
        )
        session.add(photo)
        session.add(
            Diagnosis(
                patient_id=patient.id,
                label="benign",
                confirmed_by="chair",
                consultation_id="c-report1",
                note="eczema",
            )
        )
        session.flush()
        photo_id = photo.id
        session.expunge(patient)
    notes = Notes({"c-report1": "Alice: looks like eczema\n李: 同意"})
    relevance = RelevanceService(database, store, tflite=None, card=None)
    reports = ReportService(
        database, store, audit, relevance, notes, key_file=tmp_path / "keys" / "report-signing.key"
    )
    return World(database, store, audit, reports, notes, patient, photo_id)

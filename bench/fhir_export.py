"""FHIR export of whole patient records: patients per second, beside a bare JSON dump.

Each patient has what a referral typically holds: two camera photos (1440×1080 JPEG),
three CT slices of one series, three EMR entries, all filed through the real filing
pipeline (inspection, blob, row, audit entry) into SQLite. Measured: building each
patient's Bundle with :func:`server.fhir_export.bundle_builder` (every resource a
validated ``fhir.resources`` model, the serialised JSON parsed back as a Bundle), full
and de-identified. Baseline in the same run: the same rows and blobs read and dumped
as plain JSON with base64 files (no FHIR models): what is left is FHIR's validation,
the Provenance and the audit lookups.
"""

from __future__ import annotations

import base64
import io
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydicom
from sqlalchemy import select

from server.access.grants import holds_edit_grant
from server.audit.trail import AuditTrail
from server.db import open_database
from server.fhir_export import bundle_builder
from server.records.blobs import LocalBlobStore
from server.records.deid import Pseudonymizer
from server.records.filing import Arrival, RecordFiling, patient_by_id
from server.records.ingest import IngestLimits
from server.records.models import Patient
from server.records.serving import record_json
from server.records.store import RecordStore


@dataclass(frozen=True)
class FhirFigures:
    patients: int
    bundle_kb: float
    full_per_s: float
    deid_per_s: float
    plain_per_s: float


def _plain_dump(store: RecordStore, session: Any, patient: Patient) -> bytes:
    """The baseline: every row as the page sees it, files as base64, one JSON document."""
    out: dict[str, Any] = {"patient": patient.external_id, "records": []}
    for category, rows in store.listing(session, patient.id).items():
        for row in rows:
            item = record_json(category, row)
            if category != "emr_entry":
                with store.blobs.open(row.blob_sha256) as stream:
                    item["data"] = base64.b64encode(stream.read()).decode()
            out["records"].append(item)
    return json.dumps(out).encode()


def fhir_export_figures(
    folder: Path, photo_data: list[bytes], dicom_data: list[bytes], patients: int
) -> FhirFigures:
    """File ``patients`` records (2 photos, 3 slices, 3 EMR entries each) and export them."""
    database = open_database(f"sqlite:///{folder / 'fhir.db'}")
    store = RecordStore(database, LocalBlobStore(folder / "blobs"), max_bytes=50 * 1024 * 1024)
    staging = folder / "staging"
    staging.mkdir(parents=True, exist_ok=True)
    filing = RecordFiling(
        database,
        store,
        AuditTrail(database),
        staging=staging,
        limits=IngestLimits(max_image_pixels=10**8),
        may_edit=holds_edit_grant,
    )
    try:
        for n in range(patients):
            with database.session() as session, session.begin():
                pid = RecordStore.ensure_patient(session, f"F-{n}", f"Fhir Patient {n}").id
            photos = photo_data[2 * n : 2 * n + 2]
            slices = [_for_patient(d, f"F-{n}") for d in dicom_data[3 * n : 3 * n + 3]]
            for data in (*photos, *slices):
                filing.file_bytes(data, patient_by_id(pid), Arrival("bench", "upload"))
            with database.session() as session, session.begin():
                subject = session.get(Patient, pid)
                assert subject is not None
                for k in range(3):
                    fields = {"note": f"visit {k}", "pulse": 70 + k, "bp": {"sys": 120 + k}}
                    filing.add_emr(session, subject, fields, None, actor="bench", via="api")
        builder = bundle_builder(store)
        with database.session() as session:
            rows = list(session.scalars(select(Patient).order_by(Patient.id)))
            builder.build(session, rows[0])  # warm-up: first model classes, first reads
            start = time.perf_counter()
            sizes = [len(builder.build(session, p).data) for p in rows]
            full_s = time.perf_counter() - start
            start = time.perf_counter()
            for p in rows:
                builder.build(session, p, pseudonymizer=Pseudonymizer())
            deid_s = time.perf_counter() - start
            start = time.perf_counter()
            for p in rows:
                _plain_dump(store, session, p)
            plain_s = time.perf_counter() - start
    finally:
        database.close()
    return FhirFigures(
        patients,
        sum(sizes) / len(sizes) / 1e3,
        patients / full_s,
        patients / deid_s,
        patients / plain_s,
    )


def _for_patient(data: bytes, identifier: str) -> bytes:
    """A slice naming ``identifier`` as its PatientID (else filing refuses the mismatch)."""
    dataset = pydicom.dcmread(io.BytesIO(data))
    dataset.PatientID = identifier
    out = io.BytesIO()
    dataset.save_as(out, enforce_file_format=True)
    return out.getvalue()

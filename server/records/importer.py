"""Imports from a hospital system: a FHIR R4 Bundle, or a folder of DICOM files.

Both run item by item through the same path as an upload (content inspection,
metadata stripping, blob first and row second), committing each item on its own so
a failure half-way keeps everything before it and reports what it skipped and why.
Progress is kept in an :class:`ImportJob` the web page polls.
"""

from __future__ import annotations

import logging
import secrets
import tempfile
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from server.records.db import Database
from server.records.fhir import FhirImport, parse_bundle
from server.records.ingest import Category, IngestError, IngestLimits, inspect_upload
from server.records.models import Patient
from server.records.store import DuplicateRecord, RecordStore

_LOGGER = logging.getLogger(__name__)


@dataclass
class ImportJob:
    """One import's progress; updated from the worker thread, read by the page."""

    kind: str
    actor: str
    id: str = field(default_factory=lambda: secrets.token_urlsafe(9))
    state: str = "running"
    total: int = 0
    done: int = 0
    filed: int = 0
    patients: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    error: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def step(self, *, filed: bool, skipped: str | None = None) -> None:
        with self._lock:
            self.done += 1
            self.filed += int(filed)
            if skipped:
                self.skipped.append(skipped)

    def as_json(self) -> dict[str, Any]:
        with self._lock:
            return {
                "id": self.id,
                "kind": self.kind,
                "state": self.state,
                "total": self.total,
                "done": self.done,
                "filed": self.filed,
                "patients": list(self.patients),
                "skipped": list(self.skipped),
                "error": self.error,
            }


def _file_bytes(
    database: Database,
    store: RecordStore,
    staging: Path,
    patient_id: int,
    data: bytes,
    *,
    actor: str,
    title: str | None,
    limits: IngestLimits,
    declared: Category | None = None,
) -> None:
    """One item, like an upload: stage, inspect, blob, row (its own transaction)."""
    with tempfile.NamedTemporaryFile(dir=staging, prefix="import-", delete=False) as tmp:
        tmp.write(data)
        staged = Path(tmp.name)
    try:
        inspected = inspect_upload(staged, declared, limits)
        try:
            with database.session() as session, session.begin():
                patient = session.get(Patient, patient_id)
                assert patient is not None
                store.file_upload(
                    session,
                    patient,
                    inspected,
                    inspected.cleaned or staged,
                    actor=actor,
                    title=title,
                )
        finally:
            if inspected.cleaned is not None:
                inspected.cleaned.unlink(missing_ok=True)
    finally:
        staged.unlink(missing_ok=True)


def run_fhir_import(
    job: ImportJob,
    raw: bytes,
    database: Database,
    store: RecordStore,
    staging: Path,
    limits: IngestLimits,
) -> FhirImport | None:
    """Import a Bundle: patients by identifier, Observations/Conditions as EMR entries,
    attachments as files filed by their content."""
    try:
        bundle = parse_bundle(raw, max_attachment_bytes=store.max_bytes)
    except ValueError as exc:
        job.state, job.error = "failed", str(exc)
        return None
    job.total = len(bundle.entries) + len(bundle.attachments)
    job.skipped.extend(bundle.skipped)
    ids: dict[str, int] = {}
    with database.session() as session, session.begin():
        for p in bundle.patients:
            external = (p.identifier or p.fhir_id)[:64]
            patient = store.ensure_patient(session, external, p.name or external)
            ids[p.fhir_id] = patient.id
            job.patients.append(external)
            if p.birth_date is not None:
                store.add_emr(
                    session,
                    patient,
                    {"source": "FHIR Patient", "birth_date": p.birth_date.isoformat()},
                    None,
                    actor=job.actor,
                )
    for entry in bundle.entries:
        with database.session() as session, session.begin():
            subject = session.get(Patient, ids[entry.patient_ref])
            assert subject is not None
            fields = {"source": f"FHIR {entry.kind}", **entry.fields}
            store.add_emr(session, subject, fields, entry.recorded_at, actor=job.actor)
        job.step(filed=True)
    for number, attachment in enumerate(bundle.attachments, start=1):
        try:
            _file_bytes(
                database,
                store,
                staging,
                ids[attachment.patient_ref],
                attachment.data,
                actor=job.actor,
                title=attachment.title,
                limits=limits,
            )
            job.step(filed=True)
        except (IngestError, DuplicateRecord) as exc:
            reason = exc.reason if isinstance(exc, IngestError) else str(exc)
            job.step(filed=False, skipped=f"attachment {number} ({attachment.source}): {reason}")
    job.state = "done"
    return bundle


def run_dicom_folder_import(
    job: ImportJob,
    files: Iterable[Path],
    patient_id: int,
    database: Database,
    store: RecordStore,
    staging: Path,
    limits: IngestLimits,
    *,
    on_progress: Callable[[ImportJob], None] = lambda job: None,
) -> None:
    """Every file of a DICOM folder (non-DICOM files and duplicates are reported)."""
    paths = sorted(files)
    job.total = len(paths)
    for path in paths:
        try:
            _file_bytes(
                database,
                store,
                staging,
                patient_id,
                path.read_bytes(),
                actor=job.actor,
                title=path.name,
                limits=limits,
                declared=Category.CT,
            )
            job.step(filed=True)
        except (IngestError, DuplicateRecord, OSError) as exc:
            reason = exc.reason if isinstance(exc, IngestError) else str(exc)
            job.step(filed=False, skipped=f"{path.name}: {reason}")
        on_progress(job)
    job.state = "done"

"""Imports from a hospital system: a FHIR R4 Bundle, or a folder of DICOM files.

Imports are writes, held to everything an upload is: the importer needs an edit grant
for every existing patient it touches (a new patient it may create, audited), every
file is inspected in the parse sandbox, every EMR entry is size-limited, and every
record commits together with its own audit entry (:class:`RecordFiling`). Each item is
its own transaction, so a failure or a kill half-way keeps whole, audited records
before it and nothing of the item in flight, and the job reports what it skipped and
why. Progress is kept in an :class:`ImportJob` the web page polls.
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
from server.records.filing import NoEditGrant, RecordFiling, RecordRefused
from server.records.ingest import Category, IngestError, IngestLimits
from server.records.ingest.sandbox import inspect_sandboxed
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
    filing: RecordFiling,
    staging: Path,
    patient_id: int,
    data: bytes,
    *,
    actor: str,
    title: str | None,
    limits: IngestLimits,
    via: str,
    declared: Category | None = None,
) -> None:
    """One item, like an upload: stage, inspect, then blob, row and audit entry together."""
    with tempfile.NamedTemporaryFile(dir=staging, prefix="import-", delete=False) as tmp:
        tmp.write(data)
        staged = Path(tmp.name)
    try:
        inspected = inspect_sandboxed(staged, declared, limits)
        try:
            with database.session() as session, session.begin():
                patient = session.get(Patient, patient_id)
                assert patient is not None
                filing.file_content(
                    session,
                    patient,
                    inspected,
                    inspected.cleaned or staged,
                    actor=actor,
                    title=title,
                    via=via,
                )
        finally:
            if inspected.cleaned is not None:
                inspected.cleaned.unlink(missing_ok=True)
    finally:
        staged.unlink(missing_ok=True)


_ITEM_REFUSALS = (IngestError, DuplicateRecord, RecordRefused)


def _reason(exc: Exception) -> str:
    return exc.reason if isinstance(exc, (IngestError, RecordRefused)) else str(exc)


def _import_patients(
    job: ImportJob, bundle: FhirImport, database: Database, filing: RecordFiling
) -> dict[str, int]:
    """The bundle's patients that may be filed into, by FHIR id; refused ones reported."""
    ids: dict[str, int] = {}
    for p in bundle.patients:
        external = (p.identifier or p.fhir_id)[:64]
        try:
            with database.session() as session, session.begin():
                patient, _ = filing.patient_for_import(
                    session, job.actor, external, p.name or external
                )
                ids[p.fhir_id] = patient.id
                if p.birth_date is not None:
                    fields = {"source": "FHIR Patient", "birth_date": p.birth_date.isoformat()}
                    filing.add_emr(session, patient, fields, None, actor=job.actor, via="fhir")
        except NoEditGrant as exc:
            job.skipped.append(exc.reason)
            continue
        job.patients.append(external)
    return ids


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
    filing = RecordFiling(store)
    job.total = len(bundle.entries) + len(bundle.attachments)
    job.skipped.extend(bundle.skipped)
    ids = _import_patients(job, bundle, database, filing)
    for number, entry in enumerate(bundle.entries, start=1):
        if entry.patient_ref not in ids:
            job.step(filed=False, skipped=f"{entry.kind} {number}: its patient was refused")
            continue
        try:
            with database.session() as session, session.begin():
                subject = session.get(Patient, ids[entry.patient_ref])
                assert subject is not None
                fields = {"source": f"FHIR {entry.kind}", **entry.fields}
                filing.add_emr(
                    session, subject, fields, entry.recorded_at, actor=job.actor, via="fhir"
                )
            job.step(filed=True)
        except RecordRefused as exc:
            job.step(filed=False, skipped=f"{entry.kind} {number}: {exc.reason}")
    for number, attachment in enumerate(bundle.attachments, start=1):
        label = f"attachment {number} ({attachment.source})"
        if attachment.patient_ref not in ids:
            job.step(filed=False, skipped=f"{label}: its patient was refused")
            continue
        try:
            _file_bytes(
                database,
                filing,
                staging,
                ids[attachment.patient_ref],
                attachment.data,
                actor=job.actor,
                title=attachment.title,
                limits=limits,
                via="fhir",
            )
            job.step(filed=True)
        except _ITEM_REFUSALS as exc:
            job.step(filed=False, skipped=f"{label}: {_reason(exc)}")
    job.state = "done"
    return bundle


def run_dicom_folder_import(
    job: ImportJob,
    files: Iterable[Path],
    patient: tuple[str, str],
    database: Database,
    store: RecordStore,
    staging: Path,
    limits: IngestLimits,
    *,
    on_progress: Callable[[ImportJob], None] = lambda job: None,
) -> None:
    """Every file of a DICOM folder for ``patient`` (identifier, name if new); non-DICOM
    files, duplicates and files naming another patient are reported, not filed."""
    filing = RecordFiling(store)
    try:
        with database.session() as session, session.begin():
            target, _ = filing.patient_for_import(session, job.actor, *patient)
            patient_id = target.id
    except NoEditGrant as exc:
        job.state, job.error = "failed", exc.reason
        return
    job.patients.append(patient[0])
    paths = sorted(files)
    job.total = len(paths)
    for path in paths:
        try:
            _file_bytes(
                database,
                filing,
                staging,
                patient_id,
                path.read_bytes(),
                actor=job.actor,
                title=path.name,
                limits=limits,
                via="dicom-import",
                declared=Category.CT,
            )
            job.step(filed=True)
        except (*_ITEM_REFUSALS, OSError) as exc:
            job.step(filed=False, skipped=f"{path.name}: {_reason(exc)}")
        on_progress(job)
    job.state = "done"

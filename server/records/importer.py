"""Imports from a hospital system: a FHIR R4 Bundle, or a folder of DICOM files.

Imports are writes, held to everything an upload is: the importer needs an edit grant
for every existing patient it touches, matched by identifier; a patient Clinicam does
not know is refused unless the import says ``create_patients`` (then it is created and
audited as ``patient.create``): never silently. Every
file is inspected in the parse sandbox, every EMR entry is size-limited, and every
record goes through the filing pipeline of an upload (:class:`RecordFiling`:
inspect, blob, row, audit entry). Each item is
its own transaction, so a failure or a kill half-way keeps whole, audited records
before it and nothing of the item in flight, and the job reports what it skipped and
why. Progress is kept in an :class:`ImportJob` the web page polls.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clinicam.i18n import ENGLISH, _, message_of, translate
from server.domain_errors import NotFound
from server.records.fhir import FhirImport, parse_bundle
from server.records.filing import (
    Arrival,
    Audit,
    NoEditGrant,
    RecordFiling,
    RecordRefused,
    UnknownPatient,
    patient_by_id,
)
from server.records.ingest import Category
from server.records.store import DuplicateRecord

_LOGGER = logging.getLogger(__name__)
MAX_JOBS_KEPT = 50


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
    created: list[str] = field(default_factory=list)  # new patients (create_patients)
    matched: list[str] = field(default_factory=list)  # existing ones, by identifier
    skipped: list[str] = field(default_factory=list)
    error: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def step(self, *, filed: bool, skipped: str | None = None) -> None:
        with self._lock:
            self.done += 1
            self.filed += int(filed)
            if skipped:
                self.skipped.append(skipped)

    def as_json(self, locale: str = ENGLISH) -> dict[str, Any]:
        """The job's progress, its reasons in ``locale``."""
        with self._lock:
            return {
                "id": self.id,
                "kind": self.kind,
                "state": self.state,
                "total": self.total,
                "done": self.done,
                "filed": self.filed,
                "patients": list(self.patients),
                "created": list(self.created),
                "matched": list(self.matched),
                "skipped": [translate(reason, locale) for reason in self.skipped],
                "error": translate(self.error, locale) if self.error else None,
            }


_ITEM_REFUSALS = (DuplicateRecord, RecordRefused)


def _reason(exc: Exception) -> str:
    return exc.reason if isinstance(exc, RecordRefused) else message_of(exc)


_PATIENT_REFUSALS = (NoEditGrant, UnknownPatient)
FHIR_SEXES = ("female", "male", "other", "unknown")


def _category(name: str | None) -> Category | None:
    """The category a Clinicam export says a file was filed as (the content still decides
    whether it can be: a declared category the content contradicts is refused)."""
    try:
        return Category(name) if name else None
    except ValueError:
        return None


def _took(job: ImportJob, external: str, created: bool) -> None:
    """The report says which patients were matched by identifier and which created."""
    job.patients.append(external)
    (job.created if created else job.matched).append(external)


def _import_patients(
    job: ImportJob, bundle: FhirImport, filing: RecordFiling, create: bool
) -> dict[str, int]:
    """The bundle's patients that may be filed into, by FHIR id; refused ones reported."""
    ids: dict[str, int] = {}
    for p in bundle.patients:
        external = (p.identifier or p.fhir_id)[:64]
        try:
            with filing.database.session() as session, session.begin():
                patient, created = filing.patient_for_import(
                    session, job.actor, external, p.name or external, create=create
                )
                ids[p.fhir_id] = patient.id
                if created:  # a new patient gets the bundle's registration fields
                    patient.birth_date = p.birth_date
                    patient.sex = p.sex if p.sex in FHIR_SEXES else None
                elif p.birth_date is not None:
                    fields = {"source": "FHIR Patient", "birth_date": p.birth_date.isoformat()}
                    filing.add_emr(session, patient, fields, None, actor=job.actor, via="fhir")
        except _PATIENT_REFUSALS as exc:
            job.skipped.append(exc.reason)
            continue
        _took(job, external, created)
    return ids


def run_fhir_import(
    job: ImportJob, raw: bytes, filing: RecordFiling, *, create_patients: bool = False
) -> FhirImport | None:
    """Import a Bundle: patients by identifier (unknown ones created only with
    ``create_patients``), Observations/Conditions as EMR entries, attachments as files
    filed by their content."""
    try:
        bundle = parse_bundle(raw, max_attachment_bytes=filing.store.max_bytes)
    except ValueError as exc:
        job.state, job.error = "failed", message_of(exc)
        return None
    job.total = len(bundle.entries) + len(bundle.attachments)
    job.skipped.extend(bundle.skipped)
    ids = _import_patients(job, bundle, filing, create_patients)
    for number, entry in enumerate(bundle.entries, start=1):
        if entry.patient_ref not in ids:
            job.step(
                filed=False,
                skipped=_("{item}: its patient was refused", item=f"{entry.kind} {number}"),
            )
            continue
        try:
            with filing.database.session() as session, session.begin():
                subject = patient_by_id(ids[entry.patient_ref])(session)
                fields = (
                    dict(entry.fields)
                    if entry.verbatim
                    else {"source": f"FHIR {entry.kind}", **entry.fields}
                )
                filing.add_emr(
                    session, subject, fields, entry.recorded_at, actor=job.actor, via="fhir"
                )
            job.step(filed=True)
        except RecordRefused as exc:
            job.step(
                filed=False,
                skipped=_("{item}: {reason}", item=f"{entry.kind} {number}", reason=exc.reason),
            )
    for number, attachment in enumerate(bundle.attachments, start=1):
        label = f"attachment {number} ({attachment.source})"
        if attachment.patient_ref not in ids:
            job.step(filed=False, skipped=_("{item}: its patient was refused", item=label))
            continue
        try:
            filing.file_bytes(
                attachment.data,
                patient_by_id(ids[attachment.patient_ref]),
                Arrival(
                    job.actor,
                    "fhir",
                    title=attachment.title,
                    declared=_category(attachment.category),
                ),
            )
            job.step(filed=True)
        except _ITEM_REFUSALS as exc:
            job.step(filed=False, skipped=_("{item}: {reason}", item=label, reason=_reason(exc)))
    job.state = "done"
    return bundle


def run_dicom_folder_import(
    job: ImportJob,
    files: Iterable[Path],
    patient: tuple[str, str],
    filing: RecordFiling,
    *,
    create_patients: bool = False,
    on_progress: Callable[[ImportJob], None] = lambda job: None,
) -> None:
    """Every file of a DICOM folder for ``patient`` (identifier, name if new: created only
    with ``create_patients``); non-DICOM files, duplicates and files naming another
    patient are reported, not filed."""
    external, name = patient
    try:
        with filing.database.session() as session, session.begin():
            target, created = filing.patient_for_import(
                session, job.actor, external, name, create=create_patients
            )
            patient_id = target.id
    except _PATIENT_REFUSALS as exc:
        job.state, job.error = "failed", exc.reason
        return
    _took(job, external, created)
    paths = sorted(files)
    job.total = len(paths)
    for path in paths:
        try:
            filing.file_bytes(
                path.read_bytes(),
                patient_by_id(patient_id),
                Arrival(job.actor, "dicom-import", title=path.name, declared=Category.CT),
            )
            job.step(filed=True)
        except (*_ITEM_REFUSALS, OSError) as exc:
            job.step(
                filed=False, skipped=_("{item}: {reason}", item=path.name, reason=_reason(exc))
            )
        on_progress(job)
    job.state = "done"


class ImportService:
    """Imports started from the web page: each runs as a background task, its
    :class:`ImportJob` kept (the last :data:`MAX_JOBS_KEPT`) for its starter to poll, and
    one ``record.import`` entry summarises it when it ends."""

    def __init__(self, filing: RecordFiling, audit: Audit) -> None:
        self._filing = filing
        self._audit = audit
        self._jobs: dict[str, ImportJob] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def start_fhir(self, actor: str, raw: bytes, *, create_patients: bool = False) -> ImportJob:
        """Start importing a Bundle (unknown patients created only with
        ``create_patients``); the job is returned at once, to be polled."""
        job = ImportJob("fhir", actor)
        self._jobs[job.id] = job
        while len(self._jobs) > MAX_JOBS_KEPT:
            self._jobs.pop(next(iter(self._jobs)))
        run = self._run_fhir(job, raw, create_patients)
        task = asyncio.create_task(run, name=f"import-{job.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return job

    async def _run_fhir(self, job: ImportJob, raw: bytes, create_patients: bool) -> None:
        try:
            await asyncio.to_thread(
                lambda: run_fhir_import(job, raw, self._filing, create_patients=create_patients)
            )
        except Exception as exc:  # reported to the page, never lost in a task
            _LOGGER.exception("FHIR import %s failed", job.id)
            job.state, job.error = "failed", _("import failed: {problem}", problem=message_of(exc))
        await self._audit.record(
            job.actor,
            "record.import",
            "fhir-bundle",
            {
                "job": job.id,
                "state": job.state,
                "patients": job.patients,
                "created": job.created,
                "matched": job.matched,
                "filed": job.filed,
                "skipped": len(job.skipped),
                "error": job.error,
            },
        )

    def job(self, actor: str, job_id: str) -> ImportJob:
        """The job ``actor`` started; :class:`NotFound` for anyone else's or an unknown one."""
        job = self._jobs.get(job_id)
        if job is None or job.actor != actor:
            raise NotFound(_("no such import"))
        return job

"""The one way a record comes into being: inspect → blob → row → audit entry.

Every way a record arrives — an upload, an appliance snapshot, each record of a FHIR
Bundle or of a DICOM folder import — goes through :class:`RecordFiling`. The staged
file is inspected in the parse sandbox (category from content, metadata stripped),
then, in one transaction per record, the content goes to the blob store, the row is
added, and the record's audit entry is appended. So a crash, a kill or a failing
audit write at any moment leaves either the record with its audit entry or neither
(at most a blob no row references, which the orphan collector removes later).

It refuses what no record may be (an EMR entry over :data:`MAX_EMR_BYTES`, content the
inspection refuses, a DICOM file naming another patient unless the uploader confirmed
it) with domain errors (:mod:`server.domain_errors`), never HTTP codes.

Imports are checked against the same grants as the web API: an importer may create a
new patient (audited as ``patient.create``), but may add records to an existing one
only while holding an active edit grant for it (``may_edit``, given by the access domain).
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from clinicam.i18n import _
from server.db import Database
from server.domain_errors import (
    Conflict,
    DomainError,
    Forbidden,
    NotFound,
    TooLarge,
    Unprocessable,
    Unsupported,
)
from server.records.ingest import Category, IngestError, IngestLimits, Inspected
from server.records.ingest.sandbox import inspect_sandboxed
from server.records.models import SOURCE_SNAPSHOT, EmrEntry, Patient
from server.records.serving import record_json
from server.records.store import EMR, BlobRecord, FiledRecord, RecordStore, SnapshotOrigin

_LOGGER = logging.getLogger(__name__)

MAX_EMR_BYTES: Final = 64 * 1024  # one entry's fields as compact JSON
UNSUPPORTED_MEDIA: Final = 415  # the status :class:`IngestError` gives a kind it does not take


class Audit(Protocol):
    """The audit trail as the records see it (:class:`server.audit.trail.AuditTrail`)."""

    def write(
        self,
        session: Session,
        actor: str,
        action: str,
        target: str,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """Append inside the caller's transaction: the change and its entry commit together."""
        ...

    async def record(
        self, actor: str, action: str, target: str, detail: dict[str, Any] | None = None
    ) -> None:
        """Append in a transaction of its own: for reads and refusals, which change nothing."""
        ...


class RecordRefused(DomainError):
    """A record that must not be filed; ``reason`` is a sentence for the user."""

    def __init__(self, reason: str, *, code: str | None = None) -> None:
        super().__init__(reason, code=code)
        self.reason = reason


class ContentRefused(RecordRefused):
    """The inspection refused the content (see :mod:`server.records.ingest`)."""


class UnsupportedContent(ContentRefused, Unsupported):
    """A kind of file the records do not take."""


class UnreadableContent(ContentRefused, Unprocessable):
    """Damaged content, or content contradicting the declared category."""


class RecordTooLarge(RecordRefused, TooLarge):
    """An EMR entry over the size limit."""


class IdentityMismatch(RecordRefused, Conflict):
    """A DICOM file whose PatientID names someone other than the target patient."""

    def __init__(self, file_patient: str, patient: Patient) -> None:
        super().__init__(
            _(
                "the DICOM file belongs to patient ID {file_patient}, but it is being filed "
                "for patient {patient} ({name}); check that this is the right patient, and "
                "confirm the mismatch (confirm_identity_mismatch=true) only if the file is "
                "known to be theirs",
                file_patient=repr(file_patient),
                patient=repr(patient.external_id),
                name=patient.display_name,
            ),
            code="identity_mismatch",
        )
        self.file_patient = file_patient
        self.patient = patient.external_id


class NoEditGrant(RecordRefused, Forbidden):
    """An import into an existing patient without an edit grant for them."""

    def __init__(self, actor: str, patient: Patient) -> None:
        super().__init__(
            _(
                "patient {patient} already exists and {actor} holds no current "
                "edit grant for them: nothing was filed for this patient",
                patient=repr(patient.external_id),
                actor=actor,
            )
        )


class UnknownPatient(RecordRefused, NotFound):
    """An import names a patient Clinicam does not know, and was not told to create them."""

    def __init__(self, external_id: str) -> None:
        super().__init__(
            _(
                "patient {patient} is not registered: nothing was filed for them (register "
                "the patient first, or import with create_patients to add them)",
                patient=repr(external_id),
            ),
            code="unknown_patient",
        )


def refused_content(exc: IngestError) -> ContentRefused:
    """The inspection's refusal as a domain error."""
    if exc.status == UNSUPPORTED_MEDIA:
        return UnsupportedContent(exc.reason)
    return UnreadableContent(exc.reason)


def patient_target(patient: Patient) -> str:
    """The audit target naming a patient (as :mod:`server.web.guard` writes it)."""
    return f"patient:{patient.external_id}"


def check_emr_size(fields: dict[str, Any]) -> None:
    size = len(json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode())
    if size > MAX_EMR_BYTES:
        raise RecordTooLarge(
            _(
                "the EMR entry is {size} bytes, larger than the limit of {limit} "
                "bytes; attach long documents as a scan instead",
                size=f"{size:,}",
                limit=f"{MAX_EMR_BYTES:,}",
            )
        )


def dicom_identity_mismatch(inspected: Inspected, patient: Patient) -> str | None:
    """The file's PatientID when it contradicts ``patient``'s identifier, else None."""
    if inspected.category is not Category.CT:
        return None
    file_patient = str(inspected.metadata.get("patient_id") or "").strip()
    if not file_patient or file_patient == patient.external_id:
        return None
    return file_patient


MayEdit = Callable[[Session, str, int], bool]
"""Does this user hold an active edit grant for the patient? (session, username,
patient id): the access domain answers, :mod:`server.app` passes it in."""


FindPatient = Callable[[Session], Patient]


def patient_by_id(patient_id: int) -> FindPatient:
    """The patient row ``patient_id`` (it exists: a grant or an import named it)."""

    def find(session: Session) -> Patient:
        patient = session.get(Patient, patient_id)
        assert patient is not None
        return patient

    return find


def patient_by_identifier(external_id: str, name: str) -> FindPatient:
    """The patient with this identifier, added (in the record's transaction) if new."""
    return lambda session: RecordStore.ensure_patient(session, external_id, name)


@dataclass(frozen=True)
class Arrival:
    """How one record arrives: who brings it, which way, what it is called."""

    actor: str
    via: str  # "upload", "snapshot", "fhir", "dicom-import"
    title: str | None = None
    declared: Category | None = None
    confirm_identity_mismatch: bool = False
    snapshot: SnapshotOrigin | None = None
    max_bytes: int | None = None  # the blob limit when not the store's upload limit


@dataclass(frozen=True)
class Filed:
    """A record filed (or, for a re-sent still, found): what the page shows of it."""

    record: FiledRecord
    body: dict[str, Any]


class RecordFiling:
    """Creates and changes records, each with its audit entry (sync; call off the loop)."""

    def __init__(
        self,
        database: Database,
        store: RecordStore,
        audit: Audit,
        *,
        staging: Path,
        limits: IngestLimits,
        may_edit: MayEdit,
    ) -> None:
        self.database = database
        self.store = store
        self.audit = audit
        self.may_edit = may_edit
        self.staging = staging
        self.limits = limits

    # --- the pipeline --------------------------------------------------------------------

    def file_staged(self, staged: Path, find_patient: FindPatient, arrival: Arrival) -> Filed:
        """Inspect ``staged``, then blob, row and audit entry in one transaction.

        The staged file stays the caller's; the inspection's cleaned copy goes here.
        """
        try:
            inspected = inspect_sandboxed(staged, arrival.declared, self.limits)
        except IngestError as exc:
            raise refused_content(exc) from None
        try:
            with self.database.session() as session, session.begin():
                patient = find_patient(session)
                filed, row = self.file_content(
                    session, patient, inspected, inspected.cleaned or staged, arrival
                )
                return Filed(filed, record_json(filed.category, row))
        finally:
            if inspected.cleaned is not None:
                inspected.cleaned.unlink(missing_ok=True)

    def file_bytes(self, data: bytes, find_patient: FindPatient, arrival: Arrival) -> Filed:
        """:meth:`file_staged` for content held in memory (an import's item)."""
        with tempfile.NamedTemporaryFile(dir=self.staging, prefix="import-", delete=False) as tmp:
            tmp.write(data)
            staged = Path(tmp.name)
        try:
            return self.file_staged(staged, find_patient, arrival)
        finally:
            staged.unlink(missing_ok=True)

    def file_content(
        self,
        session: Session,
        patient: Patient,
        inspected: Inspected,
        content: Path,
        arrival: Arrival,
    ) -> tuple[FiledRecord, BlobRecord]:
        """Blob, row and ``record.create`` entry (the caller's transaction commits them)."""
        file_patient = dicom_identity_mismatch(inspected, patient)
        if file_patient is not None and not arrival.confirm_identity_mismatch:
            raise IdentityMismatch(file_patient, patient)
        filed, row = self.store.file_upload(
            session,
            patient,
            inspected,
            content,
            actor=arrival.actor,
            title=arrival.title,
            snapshot=arrival.snapshot,
            max_bytes=arrival.max_bytes,
        )
        if not filed.created:  # the same still again: it was audited when it was filed
            return filed, row
        detail: dict[str, Any] = {
            "category": filed.category,
            "id": filed.record_id,
            "sha256": filed.sha256,
            "via": arrival.via,
        }
        if arrival.snapshot is not None:
            detail.update(
                source=SOURCE_SNAPSHOT,
                requested_by=arrival.snapshot.requested_by or "",
                consultation=arrival.snapshot.consultation_id,
                taken_at=arrival.snapshot.taken_at.isoformat(),
            )
        if file_patient is not None:
            detail["identity_mismatch_confirmed"] = {
                "file_patient_id": file_patient,
                "patient": patient.external_id,
            }
            _LOGGER.warning(
                "%s filed a DICOM file of patient ID %r for patient %s (confirmed)",
                arrival.actor,
                file_patient,
                patient.external_id,
            )
        self.audit.write(session, arrival.actor, "record.create", patient_target(patient), detail)
        return filed, row

    # --- patients and EMR entries (in the caller's transaction) ---------------------------

    def patient_for_import(
        self, session: Session, actor: str, external_id: str, name: str, *, create: bool
    ) -> tuple[Patient, bool]:
        """The patient an import files into, matched by identifier: (patient, created).

        :class:`NoEditGrant` if it exists and ``actor`` may not edit it; an unknown one
        is created (and audited here) only when the import says so (``create``), else
        :class:`UnknownPatient`: an import never adds a patient silently."""
        patient = session.scalar(select(Patient).where(Patient.external_id == external_id))
        if patient is not None:
            if not self.may_edit(session, actor, patient.id):
                raise NoEditGrant(actor, patient)
            return patient, False
        if not create:
            raise UnknownPatient(external_id)
        patient = self.store.ensure_patient(session, external_id, name)
        detail = {"name": patient.display_name, "via": "import"}
        self.audit.write(session, actor, "patient.create", patient_target(patient), detail)
        return patient, True

    def add_emr(
        self,
        session: Session,
        patient: Patient,
        fields: dict[str, Any],
        recorded_at: datetime | None,
        *,
        actor: str,
        via: str,
    ) -> EmrEntry:
        check_emr_size(fields)
        entry = self.store.add_emr(session, patient, fields, recorded_at, actor=actor)
        detail = {"category": EMR, "id": entry.id, "via": via}
        self.audit.write(session, actor, "record.create", patient_target(patient), detail)
        return entry

    def update_emr(
        self,
        session: Session,
        patient: Patient,
        entry: EmrEntry,
        fields: dict[str, Any],
        *,
        actor: str,
    ) -> EmrEntry:
        merged = {**entry.fields, **fields}
        check_emr_size(merged)
        entry.fields = merged
        detail = {"category": EMR, "id": entry.id, "fields": sorted(fields)}
        self.audit.write(session, actor, "record.update", patient_target(patient), detail)
        return entry

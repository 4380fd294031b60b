"""The one way a record comes into being: checks, row and audit entry in one transaction.

Uploads, the FHIR Bundle import, the DICOM folder import and anything else that
creates or changes a record go through :class:`RecordFiling`. It refuses what no
upload may be (an EMR entry over :data:`MAX_EMR_BYTES`, a DICOM file naming another
patient unless the uploader confirmed it), adds the row, and appends the record's
audit entry in the caller's transaction, so a crash or a kill at any moment leaves
either the record with its audit entry or neither.

Imports are checked against the same grants as the web API: an importer may create a
new patient (audited as ``patient.create``), but may add records to an existing one
only while holding an active edit grant for it (:func:`holds_edit_grant`).
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.access.models import AccessGrant
from server.audit.log import AuditLog
from server.records.db import utcnow
from server.records.ingest import Category, Inspected
from server.records.models import EmrEntry, Patient
from server.records.store import EMR, BlobRecord, FiledRecord, RecordStore

_LOGGER = logging.getLogger(__name__)

MAX_EMR_BYTES: Final = 64 * 1024  # one entry's fields as compact JSON


class RecordRefused(Exception):
    """A record that must not be filed; ``reason`` is a sentence for the user."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RecordTooLarge(RecordRefused):
    """An EMR entry over the size limit."""


class IdentityMismatch(RecordRefused):
    """A DICOM file whose PatientID names someone other than the target patient."""

    def __init__(self, file_patient: str, patient: Patient) -> None:
        super().__init__(
            f"the DICOM file belongs to patient ID {file_patient!r}, but it is being filed "
            f"for patient {patient.external_id!r} ({patient.display_name}); check that this "
            "is the right patient, and confirm the mismatch (confirm_identity_mismatch=true) "
            "only if the file is known to be theirs"
        )
        self.file_patient = file_patient
        self.patient = patient.external_id


class NoEditGrant(RecordRefused):
    """An import into an existing patient without an edit grant for them."""

    def __init__(self, actor: str, patient: Patient) -> None:
        super().__init__(
            f"patient {patient.external_id!r} already exists and {actor} holds no current "
            "edit grant for them: nothing was filed for this patient"
        )


def patient_target(patient: Patient) -> str:
    """The audit target naming a patient (as :mod:`server.access.guard` writes it)."""
    return f"patient:{patient.external_id}"


def check_emr_size(fields: dict[str, Any]) -> None:
    size = len(json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode())
    if size > MAX_EMR_BYTES:
        raise RecordTooLarge(
            f"the EMR entry is {size:,} bytes, larger than the limit of {MAX_EMR_BYTES:,} "
            "bytes; attach long documents as a scan instead"
        )


def dicom_identity_mismatch(inspected: Inspected, patient: Patient) -> str | None:
    """The file's PatientID when it contradicts ``patient``'s identifier, else None."""
    if inspected.category is not Category.CT:
        return None
    file_patient = str(inspected.metadata.get("patient_id") or "").strip()
    if not file_patient or file_patient == patient.external_id:
        return None
    return file_patient


def holds_edit_grant(session: Session, username: str, patient_id: int) -> bool:
    """Does ``username`` hold an active, unrevoked grant with ``edit`` for the patient?"""
    now = utcnow()
    grants = session.scalars(
        select(AccessGrant).where(
            AccessGrant.username == username,
            AccessGrant.patient_id == patient_id,
            AccessGrant.revoked_at.is_(None),
            AccessGrant.expires_at > now,
        )
    )
    return any("edit" in grant.operation_set for grant in grants)


class RecordFiling:
    """Creates and changes records, each with its audit entry (sync; call off the loop)."""

    def __init__(self, store: RecordStore, audit: AuditLog | None = None) -> None:
        self.store = store
        self.audit = audit or AuditLog()

    def patient_for_import(
        self, session: Session, actor: str, external_id: str, name: str
    ) -> tuple[Patient, bool]:
        """The patient an import files into: (patient, created); :class:`NoEditGrant` if
        it exists and ``actor`` may not edit it. A new patient is audited here."""
        patient = session.scalar(select(Patient).where(Patient.external_id == external_id))
        if patient is not None:
            if not holds_edit_grant(session, actor, patient.id):
                raise NoEditGrant(actor, patient)
            return patient, False
        patient = self.store.ensure_patient(session, external_id, name)
        self.audit.append(session, actor, "patient.create", patient_target(patient), {})
        return patient, True

    def file_content(
        self,
        session: Session,
        patient: Patient,
        inspected: Inspected,
        content: Path,
        *,
        actor: str,
        title: str | None,
        via: str,
        confirm_identity_mismatch: bool = False,
    ) -> tuple[FiledRecord, BlobRecord]:
        """Blob, row and ``record.create`` entry (the caller's transaction commits them)."""
        file_patient = dicom_identity_mismatch(inspected, patient)
        if file_patient is not None and not confirm_identity_mismatch:
            raise IdentityMismatch(file_patient, patient)
        filed, row = self.store.file_upload(
            session, patient, inspected, content, actor=actor, title=title
        )
        detail: dict[str, Any] = {
            "category": filed.category,
            "id": filed.record_id,
            "sha256": filed.sha256,
            "via": via,
        }
        if file_patient is not None:
            detail["identity_mismatch_confirmed"] = {
                "file_patient_id": file_patient,
                "patient": patient.external_id,
            }
            _LOGGER.warning(
                "%s filed a DICOM file of patient ID %r for patient %s (confirmed)",
                actor,
                file_patient,
                patient.external_id,
            )
        self.audit.append(session, actor, "record.create", patient_target(patient), detail)
        return filed, row

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
        self.audit.append(session, actor, "record.create", patient_target(patient), detail)
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
        self.audit.append(session, actor, "record.update", patient_target(patient), detail)
        return entry

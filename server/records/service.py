"""What can be done with one patient's records, each step with its audit entry.

:class:`RecordsService` is what the records views call: list, file an upload, read a
record (its metadata, content, thumbnail or CT rendering), add and change EMR entries,
export de-identified, and delete everything about a patient. It owns the transactions
and the audit entries; a change commits together with its entry or not at all, while
a read or a refusal, which changes nothing, is logged in a transaction of its own. It
refuses with :mod:`server.domain_errors` and knows nothing of HTTP.

The caller has already passed the access check for the patient (the views do it with
:func:`server.web.guard.check_access`); the service is told who is asking and for
which patient.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO, Protocol, TypeVar

from sqlalchemy.orm import Session

from clinicam.i18n import _, message_of
from server.db import Database
from server.domain_errors import Conflict, Forbidden, Invalid, NotFound, Unprocessable
from server.records.deid import Pseudonymizer
from server.records.export import ExportResult, build_export
from server.records.fhir.export_bundle import FhirBundleBuilder, FhirExport
from server.records.filing import (
    Arrival,
    Audit,
    Filed,
    RecordFiling,
    RecordRefused,
    patient_by_id,
    patient_target,
)
from server.records.ingest import Category
from server.records.models import EmrEntry, Patient
from server.records.render import render_dicom, thumbnail
from server.records.serving import INLINE_TYPES, SERVED_TYPES, record_json
from server.records.store import CATEGORIES, EMR, RecordStore

_LOGGER = logging.getLogger(__name__)
T = TypeVar("T")


class Consents(Protocol):
    """The patient's recorded consents, as the records need them (from the access domain)."""

    def current(self, session: Session, patient_id: int) -> dict[str, Any]:
        """Every purpose with whether it is consented to now (shown with the records)."""
        ...

    def allows_export(self, session: Session, patient_id: int) -> bool:
        """Is a de-identified export consented to?"""
        ...


ErasePatient = Callable[[Session, Patient], tuple[list[str], list[str]]]
"""Remove every row about a patient, in every domain, in the caller's transaction;
returns (blob candidates, archive segment paths) (:func:`server.erasure.erase_patient`)."""


class NoExportConsent(Conflict):
    """An export of a patient who has not consented to it."""


@dataclass(frozen=True)
class RecordContent:
    """A record's file as it may be served: type, name, size and a way to read it."""

    media_type: str
    filename: str
    inline: bool
    size: int
    open: Callable[[], BinaryIO]


@dataclass(frozen=True)
class Removal:
    """What deleting a patient's data removed."""

    blobs_removed: int
    segments_removed: int


class RecordsService:
    """One patient's records for the views (async; the work runs off the event loop)."""

    def __init__(
        self,
        database: Database,
        store: RecordStore,
        filing: RecordFiling,
        audit: Audit,
        consents: Consents,
        *,
        export_folder: Path,
        archive_root: Path,
        erase: ErasePatient,
        fhir: FhirBundleBuilder | None = None,
    ) -> None:
        self._database = database
        self._store = store
        self.filing = filing
        self._audit = audit
        self._consents = consents
        self._erase = erase
        self._export_folder = export_folder
        self._archive_root = archive_root
        self._fhir = fhir or FhirBundleBuilder(store)

    async def _in_session(self, work: Callable[[Session], T]) -> T:
        """``work`` in one committed transaction, off the event loop."""

        def run() -> T:
            with self._database.session() as session, session.begin():
                return work(session)

        return await asyncio.to_thread(run)

    # --- listing and filing -------------------------------------------------------------

    async def overview(self, actor: str, patient: Patient) -> dict[str, Any]:
        """The patient's records by category and consents; the look is audited with it."""

        def work(session: Session) -> dict[str, Any]:
            listing = self._store.listing(session, patient.id)
            body = {
                "consent": self._consents.current(session, patient.id),
                "records": {
                    category: [record_json(category, row) for row in rows]
                    for category, rows in listing.items()
                },
            }
            self._audit.write(session, actor, "record.list", patient_target(patient), {})
            return body

        return await self._in_session(work)

    async def upload(
        self,
        actor: str,
        patient: Patient,
        staged: Path,
        *,
        declared: Category | None,
        title: str | None,
        confirm_identity_mismatch: bool,
    ) -> dict[str, Any]:
        """File an uploaded file; a refused one is audited as ``record.upload_refused``."""
        arrival = Arrival(
            actor,
            "upload",
            title=title,
            declared=declared,
            confirm_identity_mismatch=confirm_identity_mismatch,
        )
        try:
            filed: Filed = await asyncio.to_thread(
                self.filing.file_staged, staged, patient_by_id(patient.id), arrival
            )
        except RecordRefused as exc:
            await self._audit.record(
                actor,
                "record.upload_refused",
                patient_target(patient),
                {"declared": declared.value if declared else None, "reason": exc.reason},
            )
            raise
        record = filed.record
        _LOGGER.info(
            "%s filed %s %d (%d bytes) for patient %d",
            actor,
            record.category,
            record.record_id,
            record.size,
            patient.id,
        )
        return filed.body

    # --- reading ------------------------------------------------------------------------

    async def read(
        self, actor: str, patient: Patient, category: str, raw_id: str, what: str
    ) -> Any:
        """The row, detached, audited as ``record.read``; another patient's record, an
        unknown one or a malformed id is :class:`NotFound` (a refusal that is audited)."""
        row = await self._find(actor, patient, category, raw_id, what)
        await self._audit.record(
            actor,
            "record.read",
            patient_target(patient),
            {"what": what, "category": category, "id": row.id},
        )
        return row

    async def _find(
        self, actor: str, patient: Patient, category: str, raw_id: str, what: str
    ) -> Any:
        if category not in CATEGORIES or not raw_id.isdigit() or len(raw_id) > 12:
            raise NotFound(_("no such record"))
        rid = int(raw_id)

        def work(session: Session) -> Any:
            row = self._store.get(session, patient.id, category, rid)
            if row is not None:
                session.expunge(row)
            return row

        row = await self._in_session(work)
        if row is None:  # includes another patient's record id under this patient's path
            await self._audit.record(
                actor,
                "access.denied",
                patient_target(patient),
                {"what": what, "category": category, "id": rid, "status": 404},
            )
            raise NotFound(_("no such record"))
        return row

    async def metadata(
        self, actor: str, patient: Patient, category: str, raw_id: str
    ) -> dict[str, Any]:
        return record_json(category, await self.read(actor, patient, category, raw_id, "metadata"))

    async def content(
        self, actor: str, patient: Patient, category: str, raw_id: str
    ) -> RecordContent:
        """The record's file, served only as the type ingestion recognised."""
        row = await self.read(actor, patient, category, raw_id, "content")
        if category == EMR:
            raise NotFound(_("EMR entries have no file content"))
        media_type = str(row.media_type)
        extension = {"application/dicom": "dcm"}.get(media_type, media_type.split("/")[-1])
        served = media_type if media_type in SERVED_TYPES else "application/octet-stream"
        sha = str(row.blob_sha256)
        return RecordContent(
            media_type=served,
            filename=f"{category}-{row.id}.{extension}",
            inline=served in INLINE_TYPES,
            size=int(row.blob_size),
            open=lambda: self._store.blobs.open(sha),
        )

    async def thumbnail(self, actor: str, patient: Patient, category: str, raw_id: str) -> bytes:
        """A JPEG thumbnail of a photo or an image scan."""
        row = await self.read(actor, patient, category, raw_id, "thumbnail")
        if category not in (Category.PHOTO.value, Category.SCAN.value) or not str(
            row.media_type
        ).startswith("image/"):
            raise NotFound(_("this record has no thumbnail"))
        return await asyncio.to_thread(self._with_blob, row.blob_sha256, thumbnail)

    async def render(
        self,
        actor: str,
        patient: Patient,
        category: str,
        raw_id: str,
        *,
        center: float | None,
        width: float | None,
    ) -> bytes:
        """A CT slice as PNG with the window centre and width asked for."""
        row = await self.read(actor, patient, category, raw_id, "render")
        if category != Category.CT.value:
            raise NotFound(_("only CT images are rendered"))
        if width is not None and width <= 0:
            raise Invalid(_("width must be positive"))
        try:
            return await asyncio.to_thread(
                self._with_blob,
                row.blob_sha256,
                lambda stream: render_dicom(stream, center=center, width=width),
            )
        except ValueError as exc:
            raise Unprocessable(message_of(exc)) from None

    def _with_blob(self, sha256: str, use: Callable[[BinaryIO], T]) -> T:
        with self._store.blobs.open(sha256) as stream:
            return use(stream)

    # --- EMR entries ----------------------------------------------------------------------

    async def add_emr(
        self,
        actor: str,
        patient: Patient,
        fields: dict[str, Any],
        recorded_at: datetime | None,
    ) -> dict[str, Any]:
        """A new EMR entry, committed with its ``record.create`` entry."""

        def work(session: Session) -> dict[str, Any]:
            subject = patient_by_id(patient.id)(session)
            entry = self.filing.add_emr(
                session, subject, fields, recorded_at, actor=actor, via="api"
            )
            return record_json(EMR, entry)

        return await self._in_session(work)

    async def update_emr(
        self, actor: str, patient: Patient, category: str, raw_id: str, fields: dict[str, Any]
    ) -> dict[str, Any]:
        """Change fields of an EMR entry (files are immutable: upload a new one instead)."""
        row = await self._find(actor, patient, category, raw_id, "emr")
        if category != EMR:
            raise EmrOnly(_("only EMR entries can be edited"))

        def work(session: Session) -> dict[str, Any]:
            entry = session.get(EmrEntry, row.id)
            assert entry is not None
            subject = patient_by_id(patient.id)(session)
            self.filing.update_emr(session, subject, entry, fields, actor=actor)
            return record_json(EMR, entry)

        return await self._in_session(work)

    # --- export and deletion ----------------------------------------------------------

    async def export(self, actor: str, patient: Patient) -> tuple[ExportResult, bytes]:
        """The de-identified ZIP, only with recorded export consent; both the export and
        a refusal are audited."""

        def work(session: Session) -> ExportResult:
            if not self._consents.allows_export(session, patient.id):
                raise NoExportConsent(_("no export consent is recorded for this patient"))
            subject = patient_by_id(patient.id)(session)
            return build_export(session, self._store, subject, self._export_folder)

        try:
            result = await self._in_session(work)
        except NoExportConsent:
            await self._audit.record(
                actor, "record.export_refused", patient_target(patient), {"reason": "no consent"}
            )
            raise
        try:
            await self._audit.record(
                actor,
                "record.export",
                patient_target(patient),
                {"pseudonym": result.pseudonym, "files": result.files, "left_out": result.left_out},
            )
            data = await asyncio.to_thread(result.path.read_bytes)
        finally:
            result.path.unlink(missing_ok=True)
        return result, data

    async def export_fhir(self, actor: str, patient: Patient, *, deidentified: bool) -> FhirExport:
        """The patient's record as one FHIR Bundle, audited as ``record.export``.

        A de-identified one needs the patient's export consent, as the ZIP export does
        (a refusal is audited); a full one is a read of the whole record by a holder of
        a view grant, for their care of the patient."""

        def work(session: Session) -> FhirExport:
            if deidentified and not self._consents.allows_export(session, patient.id):
                raise NoExportConsent(_("no export consent is recorded for this patient"))
            subject = patient_by_id(patient.id)(session)
            pseudo = Pseudonymizer() if deidentified else None
            return self._fhir.build(session, subject, pseudonymizer=pseudo)

        try:
            result = await self._in_session(work)
        except NoExportConsent:
            await self._audit.record(
                actor,
                "record.export_refused",
                patient_target(patient),
                {"format": "fhir", "reason": "no consent"},
            )
            raise
        await self._audit.record(
            actor, "record.export", patient_target(patient), fhir_detail(result)
        )
        return result

    async def delete_patient(self, actor: str, role: str, patient: Patient) -> Removal:
        """Delete everything stored about a patient (admins only); the rows go with the
        ``patient.deleted`` entry, the files after the commit."""
        if role != "admin":
            raise Forbidden(_("only admin accounts delete a patient's data"))

        def work(session: Session) -> tuple[list[str], list[str]]:
            subject = session.merge(patient, load=False)
            found = self._erase(session, subject)
            self._audit.write(
                session,
                actor,
                "patient.deleted",
                patient_target(patient),
                {"blobs": len(found[0]), "archive_segments": len(found[1])},
            )
            return found

        candidates, segments = await self._in_session(work)
        removed = await asyncio.to_thread(self._store.drop_unreferenced, candidates)
        dropped = await asyncio.to_thread(self._store.drop_segments, self._archive_root, segments)
        return Removal(len(removed), dropped)


def fhir_detail(result: FhirExport) -> dict[str, Any]:
    """What a FHIR export's audit entry says (the web's and the CLI's alike)."""
    return {
        "format": "fhir",
        "deidentified": result.deidentified,
        "patient": result.patient,
        "resources": result.counts,
        "bytes": len(result.data),
        "left_out": result.left_out,
    }


class EmrOnly(Invalid):
    """A change asked of a record that is not an EMR entry (files are immutable)."""

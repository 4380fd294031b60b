"""Filing records: blob first, then the row that points at it; listing and deleting.

Synchronous (SQLAlchemy sessions and file I/O); the HTTP views call it off the event
loop. A record row is committed only after its blob is durably in the blob store, so
an acknowledged upload survives a crash and no row ever points at a missing file.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from clinicam.i18n import _
from server.db import Database, utcnow
from server.domain_errors import Conflict, Unavailable
from server.records.blobs import BlobRef, BlobStore
from server.records.ingest import Category, Inspected
from server.records.models import (
    SOURCE_SNAPSHOT,
    SOURCE_UPLOAD,
    ClinicalPhoto,
    ConsultationReport,
    CtImage,
    EmrEntry,
    Patient,
    RecordScan,
    VoiceNote,
    referenced_blobs,
)

_LOGGER = logging.getLogger(__name__)

BlobRecord = ClinicalPhoto | RecordScan | CtImage | VoiceNote | ConsultationReport
REPORT = (
    "report"  # a signed consultation report (issue 20): filed by server.reports, never uploaded
)
TABLE_OF: dict[str, type[BlobRecord]] = {
    Category.PHOTO.value: ClinicalPhoto,
    Category.SCAN.value: RecordScan,
    Category.CT.value: CtImage,
    Category.VOICE.value: VoiceNote,
    REPORT: ConsultationReport,
}
EMR = "emr_entry"
CATEGORIES = (*TABLE_OF, EMR)
_TITLE_UNSAFE = re.compile(r"[\x00-\x1f\x7f/\\]")


def safe_title(name: str | None) -> str | None:
    """A client's file name kept only as a label (never a path): no slashes, no controls."""
    if not name:
        return None
    cleaned = _TITLE_UNSAFE.sub("_", name).strip()[:200]
    return cleaned or None


@dataclass(frozen=True)
class FiledRecord:
    category: str
    record_id: int
    sha256: str
    size: int
    created: bool = True  # False: the very same appliance still was already filed


@dataclass(frozen=True)
class SnapshotOrigin:
    """What the appliance says about a still: when it was taken, who asked, in which
    consultation. A snapshot row is a clinical photo with these instead of EXIF's."""

    taken_at: datetime
    requested_by: str | None
    consultation_id: str


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else None


def _row_for(
    inspected: Inspected,
    patient_id: int,
    actor: str,
    ref: BlobRef,
    title: str | None,
    snapshot: SnapshotOrigin | None = None,
) -> BlobRecord:
    meta = inspected.metadata
    common: dict[str, Any] = {
        "patient_id": patient_id,
        "created_by": actor,
        "blob_sha256": ref.sha256,
        "blob_size": ref.size,
        "media_type": inspected.media_type,
        "title": title,
    }
    if inspected.category is Category.PHOTO and snapshot is not None:
        return ClinicalPhoto(
            **common,
            width=int(meta["width"]),
            height=int(meta["height"]),
            taken_at=snapshot.taken_at,
            source=SOURCE_SNAPSHOT,
            requested_by=snapshot.requested_by,
            consultation_id=snapshot.consultation_id,
        )
    if inspected.category is Category.PHOTO:
        return ClinicalPhoto(
            **common,
            width=int(meta["width"]),
            height=int(meta["height"]),
            taken_at=_parse_time(meta.get("taken_at")),
            source=SOURCE_UPLOAD,
        )
    if inspected.category is Category.SCAN:
        return RecordScan(
            **common,
            page_count=int(meta.get("page_count") or 1),
            width=meta.get("width"),
            height=meta.get("height"),
        )
    if inspected.category is Category.CT:
        position = meta.get("slice_position")
        return CtImage(
            **common,
            study_uid=str(meta["study_uid"]),
            series_uid=str(meta["series_uid"]),
            instance_uid=str(meta["instance_uid"]),
            modality=str(meta["modality"])[:16],
            slice_position=float(position) if position is not None else None,
        )
    return VoiceNote(
        **common,
        duration_s=float(meta["duration_s"]),
        sample_rate=int(meta["sample_rate"]),
        codec=str(meta["codec"])[:40],
    )


class DuplicateRecord(Conflict):
    """The same DICOM instance is already filed."""


class RecordStore:
    """The records of every patient: rows in ``database``, content in ``blobs``."""

    def __init__(self, database: Database, blobs: BlobStore, *, max_bytes: int) -> None:
        self.database = database
        self.blobs = blobs
        self.max_bytes = max_bytes
        # Blobs held by rows outside the records (a recorded call's segments): kept too.
        self.also_referenced: list[Callable[[Session], set[str]]] = []

    @staticmethod
    def ensure_patient(
        session: Session, external_id: str, name: str, group: str | None = None
    ) -> Patient:
        patient = session.scalar(select(Patient).where(Patient.external_id == external_id))
        if patient is None:
            patient = Patient(external_id=external_id, display_name=name, patient_group=group)
            session.add(patient)
            session.flush()
        return patient

    def file_upload(
        self,
        session: Session,
        patient: Patient,
        inspected: Inspected,
        content: Path,
        *,
        actor: str,
        title: str | None,
        snapshot: SnapshotOrigin | None = None,
        max_bytes: int | None = None,
    ) -> tuple[FiledRecord, BlobRecord]:
        """Store ``content`` (the cleaned file if any) and add its row (not committed).

        A still the appliance sends again (a retried upload) finds its row already
        there: that row comes back with ``created`` False and nothing is added.
        """
        if inspected.category is Category.CT:
            uid = str(inspected.metadata["instance_uid"])
            if session.scalar(select(CtImage.id).where(CtImage.instance_uid == uid)) is not None:
                raise DuplicateRecord(_("DICOM instance {uid} is already filed", uid=uid))
        with content.open("rb") as stream:
            ref = self.blobs.put(stream, max_bytes=max_bytes or self.max_bytes)
        category = inspected.category.value
        if snapshot is not None:
            existing = session.scalar(
                select(ClinicalPhoto).where(
                    ClinicalPhoto.patient_id == patient.id,
                    ClinicalPhoto.blob_sha256 == ref.sha256,
                    ClinicalPhoto.source == SOURCE_SNAPSHOT,
                )
            )
            if existing is not None:
                return FiledRecord(category, existing.id, ref.sha256, ref.size, False), existing
        row = _row_for(inspected, patient.id, actor, ref, safe_title(title), snapshot)
        session.add(row)
        session.flush()
        return FiledRecord(category, row.id, ref.sha256, ref.size), row

    def add_emr(
        self,
        session: Session,
        patient: Patient,
        fields: dict[str, Any],
        recorded_at: datetime | None,
        *,
        actor: str,
    ) -> EmrEntry:
        entry = EmrEntry(
            patient_id=patient.id,
            created_by=actor,
            fields=fields,
            recorded_at=recorded_at or utcnow(),
        )
        session.add(entry)
        session.flush()
        return entry

    @staticmethod
    def get(session: Session, patient_id: int, category: str, record_id: int) -> Any | None:
        """The row, only if it belongs to ``patient_id`` (another patient's id is "not found")."""
        table: type[Any] = EmrEntry if category == EMR else TABLE_OF.get(category)  # type: ignore[assignment]
        if table is None:
            return None
        return session.scalar(
            select(table).where(table.id == record_id, table.patient_id == patient_id)
        )

    @staticmethod
    def listing(session: Session, patient_id: int) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {}
        for category, table in (*TABLE_OF.items(), (EMR, EmrEntry)):
            query = select(table).where(table.patient_id == patient_id).order_by(table.id)
            out[category] = list(session.scalars(query))
        return out

    @staticmethod
    def drop_segments(archive_root: Path, paths: list[str]) -> int:
        """Delete archive segment files (paths relative to ``archive_root``)."""
        removed = 0
        for rel in paths:
            target = (archive_root / rel).resolve()
            if archive_root.resolve() in target.parents and target.is_file():
                target.unlink()
                removed += 1
        return removed

    def collect_orphans(self, grace_s: float) -> list[str]:
        """Blobs no row references (e.g. after a crash between blob and row), past the grace."""
        with self.database.session() as session:
            referenced = referenced_blobs(session)
            for more in self.also_referenced:
                referenced |= more(session)
        return self.blobs.collect_orphans(referenced, grace_s)

    def drop_unreferenced(self, candidates: list[str]) -> list[str]:
        """Delete the blobs among ``candidates`` that no row references any more."""
        with self.database.session() as session:
            still = referenced_blobs(session)
            for more in self.also_referenced:
                still |= more(session)
        removed = []
        for sha in candidates:
            if sha not in still:
                try:
                    self.blobs.delete(sha)
                except Unavailable:  # the rows are gone: the orphan collector takes it later
                    _LOGGER.warning("blob %s stays until the store is back", sha)
                    continue
                removed.append(sha)
        return removed

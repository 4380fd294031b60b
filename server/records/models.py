"""Patients and one table per data category (R13); blobs are referenced by SHA-256.

Each category keeps its own fields (a CT slice has UIDs and a slice position, a voice
note a duration and codec) rather than one generic "file" table, so that later work
can grant, validate and display each category on its own terms.
"""

from __future__ import annotations

import logging
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    select,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from server.db import Base, UtcDateTime, utcnow

_LOGGER = logging.getLogger(__name__)

SOURCE_SNAPSHOT = "appliance snapshot"
SOURCE_UPLOAD = "upload"


class Patient(Base):
    """A patient; ``external_id`` is the clinic's or hospital's identifier."""

    __tablename__ = "patients"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    external_id: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    patient_group: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    # Registration by clinic staff (O1); patients from imports or older sites lack them.
    sex: Mapped[str | None] = mapped_column(String(16))
    birth_date: Mapped[date | None] = mapped_column(Date)
    clinic: Mapped[str | None] = mapped_column(String(80))
    registered_by: Mapped[str | None] = mapped_column(String(64))


class _RecordColumns:
    """Columns every category row has."""

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(64))


class _BlobColumns(_RecordColumns):
    """A row whose content lives in the blob store."""

    blob_sha256: Mapped[str] = mapped_column(String(64), index=True)
    blob_size: Mapped[int] = mapped_column(BigInteger)
    media_type: Mapped[str] = mapped_column(String(100))
    title: Mapped[str | None] = mapped_column(String(200))


class ClinicalPhoto(_BlobColumns, Base):
    """A photo: an appliance snapshot during a consultation, or an upload."""

    __tablename__ = "clinical_photos"

    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    taken_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    source: Mapped[str] = mapped_column(String(40))
    requested_by: Mapped[str | None] = mapped_column(String(64))
    consultation_id: Mapped[str | None] = mapped_column(String(64))


class RecordScan(_BlobColumns, Base):
    """A scanned paper record (image or PDF)."""

    __tablename__ = "record_scans"

    page_count: Mapped[int] = mapped_column(Integer, default=1)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)


class CtImage(_BlobColumns, Base):
    """One DICOM instance (a CT slice)."""

    __tablename__ = "ct_images"

    study_uid: Mapped[str] = mapped_column(String(64), index=True)
    series_uid: Mapped[str] = mapped_column(String(64), index=True)
    instance_uid: Mapped[str] = mapped_column(String(64), unique=True)
    modality: Mapped[str] = mapped_column(String(16))
    slice_position: Mapped[float | None] = mapped_column(Float)


class VoiceNote(_BlobColumns, Base):
    """A recorded voice note."""

    __tablename__ = "voice_notes"

    duration_s: Mapped[float] = mapped_column(Float)
    sample_rate: Mapped[int] = mapped_column(Integer)
    codec: Mapped[str] = mapped_column(String(40))


class EmrEntry(_RecordColumns, Base):
    """A structured electronic medical record entry (no blob)."""

    __tablename__ = "emr_entries"

    fields: Mapped[dict[str, Any]] = mapped_column(JSON)
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime)


class ConsultationReport(_BlobColumns, Base):
    """One signed version of a consultation's report (issue 20); the blob is the signed
    envelope (canonical JSON), ``blob_sha256`` its digest. A change after signing is a
    new row whose ``supersedes`` is the previous version's digest; the old one stays."""

    __tablename__ = "consultation_reports"

    consultation_id: Mapped[str] = mapped_column(String(64), index=True)
    version: Mapped[int] = mapped_column(Integer)
    signed_by: Mapped[str] = mapped_column(String(64))
    signed_at: Mapped[datetime] = mapped_column(UtcDateTime)
    key_id: Mapped[str] = mapped_column(String(32))
    supersedes: Mapped[str | None] = mapped_column(String(64))


class ReportDraft(Base):
    """What the chair has typed for a consultation's report, before (and between) signing.

    ``signed`` is true while the draft is unchanged since its last signature: signing
    again is refused until it changes (and then makes a new version)."""

    __tablename__ = "report_drafts"

    consultation_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    findings: Mapped[str] = mapped_column(Text, default="")
    recommendation: Mapped[str] = mapped_column(Text, default="")
    snapshots: Mapped[list[int]] = mapped_column(JSON, default=list)
    signed: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(64))


BLOB_TABLES: tuple[type[_BlobColumns], ...] = (
    ClinicalPhoto,
    RecordScan,
    CtImage,
    VoiceNote,
    ConsultationReport,
)


def referenced_blobs(session: Session) -> set[str]:
    """Every blob SHA-256 some row points at (what the orphan collector must keep)."""
    found: set[str] = set()
    for table in BLOB_TABLES:
        found.update(session.scalars(select(table.blob_sha256).distinct()))
    return found

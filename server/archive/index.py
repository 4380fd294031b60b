"""The archive's index: one row per stored segment, by patient, consultation and device.

Segment files live under the server's state folder (``archive/<device>/``); the row is
committed only after the segment file has been fsynced and renamed into place, so a
row never points at a partial file. A site whose blobs are in an object store keeps the
segments there too (``blob_sha256``, see :mod:`server.archive.segment_store`).
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from server.db import Base, UtcDateTime

_LOGGER = logging.getLogger(__name__)


class ArchiveSegment(Base):
    """A few seconds of the appliance's H.264, remuxed (never re-encoded) into a file."""

    __tablename__ = "archive_segments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    consultation_id: Mapped[str] = mapped_column(String(64), index=True)
    device_id: Mapped[str] = mapped_column(String(64), index=True)
    start_utc: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    end_utc: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    path: Mapped[str] = mapped_column(String(300), unique=True)
    size: Mapped[int] = mapped_column(BigInteger)
    frames: Mapped[int] = mapped_column(Integer)
    # The object store's copy (O8); None: the file under the archive folder is the only one.
    blob_sha256: Mapped[str | None] = mapped_column(String(64), index=True, default=None)

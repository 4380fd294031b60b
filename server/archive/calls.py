"""The index of recorded calls (O4): one row per closed segment of a consultation.

A segment is a complete MP4 (H.264 video of the neutral recording layout and AAC of
every voice), stored in the records' blob store; its row is committed only after the
blob is, so a row never points at a missing or partial file.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from server.db import Base, UtcDateTime


class CallSegment(Base):
    """A few seconds of one consultation's recording."""

    __tablename__ = "call_recording_segments"
    __table_args__ = (UniqueConstraint("consultation_id", "started_utc", "seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    consultation_id: Mapped[str] = mapped_column(String(64), index=True)
    started_utc: Mapped[datetime] = mapped_column(UtcDateTime)  # the recording's start
    seq: Mapped[int] = mapped_column(Integer)  # 0, 1, … within the recording
    start_utc: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    end_utc: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    blob_sha256: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(BigInteger)
    frames: Mapped[int] = mapped_column(Integer)

"""The notes' tables: the current text of each consultation's notes, and every version.

A revision keeps the merged text of its version and, when it differs (others typed at the
same time), the text its author sent: an author who typed on while the version was saved
continues from what they sent, and nothing anyone typed is lost.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from server.db import Base, UtcDateTime, utcnow


class ConsultationNotes(Base):
    """A consultation's notes as they are now."""

    __tablename__ = "consultation_notes"

    consultation_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("consultations.cid"), primary_key=True
    )
    text: Mapped[str] = mapped_column(Text, default="")
    version: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(64))


class ConsultationNoteRevision(Base):
    """One saved version of a consultation's notes."""

    __tablename__ = "consultation_note_revisions"

    consultation_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("consultations.cid"), primary_key=True
    )
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    text: Mapped[str] = mapped_column(Text)  # the merged text of this version
    sent: Mapped[str | None] = mapped_column(Text)  # what the author sent, if not ``text``
    author: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

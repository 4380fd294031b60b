"""Grants, access requests and consent, stored beside the records they protect.

A grant is the seed's "account information": operations on exactly one patient, an
expiry, and a token (only its SHA-256 digest is stored) that the holder presents with
each request. Grants are never deleted; revoking one stamps ``revoked_at`` so the
history stays readable next to the audit log.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from server.db import Base, UtcDateTime, utcnow

REQUEST_PENDING = "pending"
REQUEST_GRANTED = "granted"
REQUEST_DENIED = "denied"

CONSENT_TRAINING = "training"
CONSENT_EXPORT = "export"
CONSENT_RECORDING = "recording"  # the whole call recorded (O4)


class AccessGrant(Base):
    """Operations (``view`` / ``view,edit``) on one patient for one user until ``expires_at``."""

    __tablename__ = "access_grants"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    username: Mapped[str] = mapped_column(String(64), index=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    operations: Mapped[str] = mapped_column(String(32))
    basis: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text, default="")
    break_glass: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    revoked_by: Mapped[str | None] = mapped_column(String(64))
    reviewed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    reviewed_by: Mapped[str | None] = mapped_column(String(64))

    @property
    def operation_set(self) -> frozenset[str]:
        return frozenset(self.operations.split(","))

    def active(self, now: datetime) -> bool:
        return self.revoked_at is None and now < self.expires_at


class AccessGrantToken(Base):
    """One token for a grant: each session that asks gets its own, scoped to what it asked.

    Only the SHA-256 digest is stored. A token allows ``operations`` (never more than
    its grant's); revoking or expiring the grant ends every token of it.
    """

    __tablename__ = "access_grant_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    grant_id: Mapped[int] = mapped_column(ForeignKey("access_grants.id"), index=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    operations: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class AccessRequest(Base):
    """An expert's request that no preset rule covered, waiting for an admin."""

    __tablename__ = "access_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), index=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    operations: Mapped[str] = mapped_column(String(32))
    minutes: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default=REQUEST_PENDING)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    decided_by: Mapped[str | None] = mapped_column(String(64))
    grant_id: Mapped[int | None] = mapped_column(ForeignKey("access_grants.id"))


class Consent(Base):
    """One consent decision; the newest row per patient and purpose is the one that holds."""

    __tablename__ = "consents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    purpose: Mapped[str] = mapped_column(String(32))
    granted: Mapped[bool] = mapped_column(Boolean)
    recorded_by: Mapped[str] = mapped_column(String(64))
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    note: Mapped[str] = mapped_column(Text, default="")

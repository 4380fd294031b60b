"""The directory's tables: accounts, enrolled appliances, consultations and invitations.

Names (user names, device ids, consultation ids) are the keys: the audit log, grants,
the archive and the rooms already refer to people and things by name.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from server.db import Base, UtcDateTime, utcnow

# Consultation states: requested → scheduled → live → ended; or declined, cancelled, no_show.
REQUESTED = "requested"
SCHEDULED = "scheduled"
LIVE = "live"
ENDED = "ended"
DECLINED = "declined"
CANCELLED = "cancelled"
NO_SHOW = "no_show"
STATES = (REQUESTED, SCHEDULED, LIVE, ENDED, DECLINED, CANCELLED, NO_SHOW)
ROOM_STATES = (SCHEDULED, LIVE, ENDED)  # the ones with a chair, invited experts and a room
URGENCIES = ("routine", "soon", "urgent")


class AccountRow(Base):
    """Someone who can sign in."""

    __tablename__ = "accounts"

    username: Mapped[str] = mapped_column(String(64), primary_key=True)
    display_name: Mapped[str] = mapped_column(String(80))
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    clinic: Mapped[str | None] = mapped_column(String(80))
    email: Mapped[str | None] = mapped_column(String(254))
    time_zone: Mapped[str | None] = mapped_column(String(64))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    # Bumped when the account is disabled or its password reset: older sessions end.
    session_epoch: Mapped[int] = mapped_column(Integer, default=0)
    totp_secret: Mapped[str | None] = mapped_column(String(64))
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)  # no code used twice
    password_changed_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(64))


class ApplianceRow(Base):
    """An appliance enrolled at a clinic room."""

    __tablename__ = "appliances"

    device_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(80))
    clinic: Mapped[str] = mapped_column(String(80))
    room: Mapped[str | None] = mapped_column(String(80))
    token_hash: Mapped[str] = mapped_column(String(255))
    broker_password_hash: Mapped[str | None] = mapped_column(String(255))  # mosquitto's
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    enrolled_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    enrolled_by: Mapped[str] = mapped_column(String(64))


class ConsultationRow(Base):
    """A consultation from the clinic's request to its end."""

    __tablename__ = "consultations"

    cid: Mapped[str] = mapped_column(String(64), primary_key=True)
    title: Mapped[str] = mapped_column(String(120))
    patient_id: Mapped[str] = mapped_column(String(64), index=True)  # external identifier
    appliance: Mapped[str] = mapped_column(String(64), index=True)
    state: Mapped[str] = mapped_column(String(16), index=True)
    chair: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text, default="")
    specialty: Mapped[str | None] = mapped_column(String(80))
    urgency: Mapped[str] = mapped_column(String(16), default="routine")
    preferred_times: Mapped[list[Any]] = mapped_column(JSON, default=list)
    requested_by: Mapped[str | None] = mapped_column(String(64))
    scheduled_start: Mapped[datetime | None] = mapped_column(UtcDateTime)
    scheduled_end: Mapped[datetime | None] = mapped_column(UtcDateTime)
    decline_reason: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    # Migration 0008: the last change (invitees see it as new) and who ended it.
    updated_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    ended_by: Mapped[str | None] = mapped_column(String(64))


class InvitationRow(Base):
    """An expert invited to a consultation (the chair is invited too)."""

    __tablename__ = "consultation_invitations"

    cid: Mapped[str] = mapped_column(
        String(64), ForeignKey("consultations.cid", ondelete="CASCADE"), primary_key=True
    )
    username: Mapped[str] = mapped_column(String(64), primary_key=True)
    invited_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    invited_by: Mapped[str] = mapped_column(String(64))
    # Migration 0008: when the invitee last looked, and how the e-mail went ("sent", a fault).
    seen_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    mail_status: Mapped[str | None] = mapped_column(String(200))


class AccountLinkRow(Base):
    """A one-time set-password link (a new account's, or a reset's): only its digest."""

    __tablename__ = "account_links"

    token_digest: Mapped[str] = mapped_column(String(64), primary_key=True)  # SHA-256 hex
    username: Mapped[str] = mapped_column(
        String(64), ForeignKey("accounts.username", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)


class ConfigImportRow(Base):
    """A configuration-file entry as it was imported (its fingerprint), see seed.py."""

    __tablename__ = "config_imports"

    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))  # SHA-256 hex of its fields
    imported_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

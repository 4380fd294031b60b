"""Consent per patient and purpose (R15): the newest decision holds; none means no."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.access.models import CONSENT_EXPORT, CONSENT_TRAINING, Consent


def current_consents(session: Session, patient_id: int) -> dict[str, Any]:
    """The newest decision per purpose; no decision means no consent."""
    out: dict[str, Any] = {CONSENT_TRAINING: False, CONSENT_EXPORT: False}
    rows = session.scalars(
        select(Consent).where(Consent.patient_id == patient_id).order_by(Consent.id)
    )
    for row in rows:
        out[row.purpose] = row.granted
    return out


def has_consent(session: Session, patient_id: int, purpose: str) -> bool:
    return bool(current_consents(session, patient_id).get(purpose, False))

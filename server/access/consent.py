"""Consent per patient and purpose (R15): the newest decision holds; none means no."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.access.models import CONSENT_EXPORT, CONSENT_TRAINING, Consent
from server.audit.trail import AuditTrail
from server.db import Database
from server.records.models import Patient


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


class ConsentRegister:
    """Reads and records consent decisions; a decision commits with its audit entry."""

    def __init__(self, database: Database, audit: AuditTrail) -> None:
        self._database = database
        self._audit = audit

    async def current(self, patient_id: int) -> dict[str, Any]:
        """The decision in force per purpose for one patient."""

        def read() -> dict[str, Any]:
            with self._database.session() as session:
                return current_consents(session, patient_id)

        return await asyncio.to_thread(read)

    async def record(
        self, actor: str, patient: Patient, purpose: str, granted: bool, note: str
    ) -> None:
        """Record a new decision for ``purpose``; it holds from now on."""

        def work() -> None:
            with self._database.session() as session, session.begin():
                session.add(
                    Consent(
                        patient_id=patient.id,
                        purpose=purpose,
                        granted=granted,
                        recorded_by=actor,
                        note=note,
                    )
                )
                self._audit.write(
                    session,
                    actor,
                    "consent.recorded",
                    f"patient:{patient.external_id}",
                    {"purpose": purpose, "granted": granted},
                )

        await asyncio.to_thread(work)

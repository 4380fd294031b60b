"""Consent per patient and purpose (R15): the newest decision holds; none means no.

A withdrawal of training consent also reaches the models trained on the patient: the
register calls the hook it was given (``on_training_withdrawn``, composed by the
server from :mod:`server.relevance.withdrawal`) inside the withdrawal's own
transaction, so the registry change, its audit entries and the decision commit
together; what the hook returns to do after the commit (switch the served model)
runs only once they have.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.access.models import CONSENT_EXPORT, CONSENT_RECORDING, CONSENT_TRAINING, Consent
from server.audit.trail import AuditTrail
from server.db import Database
from server.records.models import Patient


def current_consents(session: Session, patient_id: int) -> dict[str, Any]:
    """The newest decision per purpose; no decision means no consent."""
    out: dict[str, Any] = {CONSENT_TRAINING: False, CONSENT_EXPORT: False, CONSENT_RECORDING: False}
    rows = session.scalars(
        select(Consent).where(Consent.patient_id == patient_id).order_by(Consent.id)
    )
    for row in rows:
        out[row.purpose] = row.granted
    return out


def has_consent(session: Session, patient_id: int, purpose: str) -> bool:
    return bool(current_consents(session, patient_id).get(purpose, False))


AfterCommit = Callable[[], None]
# (session, actor, patient) -> (detail for the consent's audit entry, what to do after commit)
OnTrainingWithdrawn = Callable[[Session, str, Patient], tuple[dict[str, Any], AfterCommit]]


class ConsentRegister:
    """Reads and records consent decisions; a decision commits with its audit entry."""

    def __init__(
        self,
        database: Database,
        audit: AuditTrail,
        on_training_withdrawn: OnTrainingWithdrawn | None = None,
    ) -> None:
        self._database = database
        self._audit = audit
        self._on_training_withdrawn = on_training_withdrawn

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

        def work() -> AfterCommit | None:
            with self._database.session() as session, session.begin():
                detail: dict[str, Any] = {"purpose": purpose, "granted": granted}
                after: AfterCommit | None = None
                hook = self._on_training_withdrawn
                if purpose == CONSENT_TRAINING and not granted and hook is not None:
                    more, after = hook(session, actor, patient)
                    detail.update(more)
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
                    detail,
                )
            return after

        def run() -> None:
            after = work()
            if after is not None:
                after()

        await asyncio.to_thread(run)

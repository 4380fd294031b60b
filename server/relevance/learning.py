"""The learning loop (R9): confirmed diagnoses of consenting patients become training data.

Each confirmed diagnosis labels that patient's stored course data. When the number of
labelled, consenting patients reaches ``models.retrain_after`` (counted since the
current model was trained), a background retrain runs; the candidate replaces the
current model only if its held-out metrics are not worse (champion/challenger), and
the decision and both sets of metrics are logged and kept in the model registry.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.access.consent import has_consent
from server.access.models import CONSENT_TRAINING
from server.db import Database
from server.relevance.models import Diagnosis, ModelVersion

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class LabelledCase:
    patient_id: int
    label: str
    confirmed_at: datetime | None = None


def labelled_cases(session: Session) -> list[LabelledCase]:
    """The newest confirmed diagnosis of every patient whose consent allows training."""
    latest: dict[int, Diagnosis] = {}
    for row in session.scalars(select(Diagnosis).order_by(Diagnosis.id)):
        latest[row.patient_id] = row
    return [
        LabelledCase(pid, row.label, row.created_at)
        for pid, row in sorted(latest.items())
        if has_consent(session, pid, CONSENT_TRAINING)
    ]


def last_retrain(session: Session) -> datetime | None:
    """When the newest candidate was trained (cases confirmed since then are new)."""
    return session.scalar(
        select(ModelVersion.created_at).order_by(ModelVersion.created_at.desc()).limit(1)
    )


class LearningLoop:
    """Counts labelled cases when woken; starts ``retrain`` when there are enough."""

    def __init__(
        self,
        database: Database,
        threshold: int,
        retrain: Callable[[list[LabelledCase]], Awaitable[None]] | None = None,
    ) -> None:
        self._database = database
        self._threshold = threshold
        self._retrain = retrain
        self._event = asyncio.Event()
        self.running = False

    def wake(self) -> None:
        self._event.set()

    def _cases(self) -> tuple[list[LabelledCase], int]:
        with self._database.session() as session:
            cases = labelled_cases(session)
            since = last_retrain(session)
        new = [c for c in cases if since is None or (c.confirmed_at and c.confirmed_at > since)]
        return cases, len(new)

    async def check(self) -> bool:
        """Start a retrain if enough new labelled cases accumulated; True if one ran."""
        cases, new = await asyncio.to_thread(self._cases)
        if new < self._threshold or self.running:
            _LOGGER.info(
                "learning loop: %d labelled, consenting cases (%d new, retrain at %d)",
                len(cases),
                new,
                self._threshold,
            )
            return False
        if self._retrain is None:
            _LOGGER.warning(
                "learning loop: %d new labelled cases, but retraining is not available here "
                "(install the 'train' extra on the server)",
                new,
            )
            return False
        self.running = True
        try:
            await self._retrain(cases)
        finally:
            self.running = False
        return True

    async def run(self) -> None:
        while True:
            await self._event.wait()
            self._event.clear()
            try:
                await self.check()
            except Exception:
                _LOGGER.exception("learning loop check failed")

"""A withdrawal of training consent retires every model version trained on the patient.

Retraining without the patient would take a training run (and the 'train' extra) and
leaves the withdrawn model in use meanwhile; retiring is immediate and safe. So, in the
withdrawal's own transaction: every registry version whose lineage
(``model_training_patients``) holds the patient gets the status ``withdrawn`` (never
served again, never champion again), each with a ``model.retired`` audit entry; if the
champion was among them, the newest version that is neither withdrawn nor rejected
(none of its patients withdrew, or it would be withdrawn too) becomes the champion again,
else the configured model (the shipped demonstration model unless configured). After the
commit the server switches the served model to it. The next retrain of the learning
loop counts only consenting patients, so it is trained without the patient.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.audit.trail import AuditTrail
from server.db import utcnow
from server.records.models import Patient
from server.relevance.models import (
    STATUS_CHAMPION,
    STATUS_REJECTED,
    STATUS_WITHDRAWN,
    ModelTrainingPatient,
    ModelVersion,
)
from server.relevance.service import RelevanceService

_LOGGER = logging.getLogger(__name__)


@dataclass
class Retirement:
    """What one withdrawal did to the registry."""

    retired: list[str] = field(default_factory=list)
    champion: str | None = None  # the version now champion, if the champion changed
    champion_path: Path | None = None  # its file (None: the configured model)
    champion_changed: bool = False

    def detail(self) -> dict[str, Any]:
        out: dict[str, Any] = {"models_retired": self.retired}
        if self.champion_changed:
            out["champion"] = self.champion
        return out


def _fallback(session: Session) -> ModelVersion | None:
    """The newest version that may be served again (not withdrawn, not rejected)."""
    rows = session.scalars(
        select(ModelVersion)
        .where(ModelVersion.status.not_in((STATUS_WITHDRAWN, STATUS_REJECTED)))
        .order_by(ModelVersion.created_at.desc(), ModelVersion.id.desc())
    )
    return next(iter(rows), None)


def retire_models_trained_on(
    session: Session, audit: AuditTrail, actor: str, patient: Patient
) -> Retirement:
    """Retire (in the caller's transaction) every version trained on ``patient``."""
    out = Retirement()
    versions = sorted(
        set(
            session.scalars(
                select(ModelTrainingPatient.model_version).where(
                    ModelTrainingPatient.patient_id == patient.id
                )
            )
        )
    )
    rows = session.scalars(
        select(ModelVersion)
        .where(ModelVersion.version.in_(versions), ModelVersion.status != STATUS_WITHDRAWN)
        .order_by(ModelVersion.id)
    )
    was_champion = False
    now = utcnow()
    for row in rows:
        was_champion = was_champion or row.status == STATUS_CHAMPION
        row.status = STATUS_WITHDRAWN
        row.decided_at = now
        row.decision = (
            f"{row.decision}; retired: training consent withdrawn by patient {patient.external_id}"
        ).lstrip("; ")
        out.retired.append(row.version)
    session.flush()
    if was_champion:
        fallback = _fallback(session)
        out.champion_changed = True
        if fallback is not None:
            fallback.status = STATUS_CHAMPION
            fallback.decided_at = now
            out.champion = fallback.version
            path = Path(fallback.path)
            out.champion_path = path if path.is_file() else None
    for version in out.retired:
        audit.write(
            session,
            actor,
            "model.retired",
            version,
            {
                "reason": "training consent withdrawn",
                "patient": f"patient:{patient.external_id}",
                "champion": out.champion if out.champion_changed else None,
            },
        )
    return out


class RetireOnWithdrawal:
    """The consent register's hook: retire in the transaction, switch after the commit."""

    def __init__(
        self,
        audit: AuditTrail,
        service: RelevanceService,
        configured: tuple[Path | None, Path | None],
    ) -> None:
        self._audit = audit
        self._service = service
        self._configured = configured  # the site's model file and card (None: the demo)

    def __call__(
        self, session: Session, actor: str, patient: Patient
    ) -> tuple[dict[str, Any], Callable[[], None]]:
        retirement = retire_models_trained_on(session, self._audit, actor, patient)

        def after() -> None:
            if retirement.retired:
                _LOGGER.warning(
                    "training consent withdrawn by patient %s: retired %s",
                    patient.external_id,
                    ", ".join(retirement.retired),
                )
            if retirement.champion_changed:
                self._switch(retirement)

        return retirement.detail(), after

    def _switch(self, retirement: Retirement) -> None:
        if retirement.champion_path is not None:
            self._service.use(retirement.champion_path, None)
        else:
            self._service.use(*self._configured)
        _LOGGER.warning("relevance model in use now: %s", retirement.champion or "configured")

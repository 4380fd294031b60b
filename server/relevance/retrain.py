"""Background retraining on the server (R9), champion/challenger, and the model registry.

The labelled cases (confirmed diagnoses of consenting patients) are exported in the
dataset layout of ``models/`` — consent re-checked at export, de-identified, each
record item filed under its category and the confirmed label, with the consent
manifest (:mod:`server.relevance.training_export`) — and ``python -m models.retrain``
trains a candidate in a child process, compares it with the model in use on the
champion's frozen test records and prints its decision. The decision and both sets
of metrics are logged, audited and kept in the ``model_versions`` registry, with the
lineage (which patients, by internal id, the candidate was trained on) in
``model_training_patients``. A candidate is promoted only if every one of those
patients still consents when it is registered; a promoted model is used at once for
server-side runs.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
import shutil
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from server.access.consent import has_consent
from server.access.models import CONSENT_TRAINING
from server.audit.trail import AuditTrail
from server.config import ServerConfig
from server.db import Database, utcnow
from server.records.store import RecordStore
from server.relevance.learning import LabelledCase
from server.relevance.models import (
    STATUS_CHAMPION,
    STATUS_REJECTED,
    STATUS_RETIRED,
    ModelTrainingPatient,
    ModelVersion,
)
from server.relevance.service import RelevanceService
from server.relevance.training_export import export_cases

__all__ = ["Retrainer", "champion", "export_cases", "training_available"]

_LOGGER = logging.getLogger(__name__)


def training_available() -> bool:
    """TensorFlow is installed (the 'train' extra)."""
    return importlib.util.find_spec("tensorflow") is not None


def champion(database: Database) -> ModelVersion | None:
    with database.session() as session:
        return session.scalar(
            select(ModelVersion).where(ModelVersion.status == STATUS_CHAMPION).limit(1)
        )


class Retrainer:
    """The learning loop's retrain step."""

    def __init__(
        self,
        config: ServerConfig,
        database: Database,
        store: RecordStore,
        service: RelevanceService,
        audit: AuditTrail,
    ) -> None:
        self._config = config
        self._database = database
        self._store = store
        self._service = service
        self._audit = audit
        self.folder = config.state_dir / "models"
        self.last_decision: dict[str, Any] | None = None

    def _command(self, cases_dir: Path, out: Path, version: str) -> list[str]:
        models = self._config.models
        current = champion(self._database)
        command = [sys.executable, "-m", "models.retrain", "--cases", str(cases_dir)]
        command += ["--out", str(out), "--version", version]
        if current is not None:
            command += ["--champion", current.path]
        elif models.tflite is not None:
            command += ["--champion", str(models.tflite)]
        if models.retrain_epochs is not None:
            command += ["--epochs", str(models.retrain_epochs)]
        if models.retrain_base_per_class is not None:
            command += ["--per-class", str(models.retrain_base_per_class)]
        return command

    async def __call__(self, cases: list[LabelledCase]) -> None:
        version = "relevance-" + datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        out = self.folder / version
        with tempfile.TemporaryDirectory(prefix="cases-") as tmp:
            exported = await asyncio.to_thread(
                export_cases, self._database, self._store, cases, Path(tmp)
            )
            if not exported.patients:
                _LOGGER.info("retraining %s: no consenting case left at export", version)
                return
            _LOGGER.info(
                "retraining %s: %d cases, %d record items (%d withdrawn, %d items left out)",
                version,
                len(exported.patients),
                exported.items,
                len(exported.withdrawn),
                len(exported.left_out),
            )
            proc = await asyncio.create_subprocess_exec(
                *self._command(Path(tmp), out, version),
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            assert proc.stderr is not None and proc.stdout is not None
            async for line in proc.stderr:
                _LOGGER.info("retrain: %s", line.decode(errors="replace").rstrip())
            output = (await proc.stdout.read()).decode()
            code = await proc.wait()
        if code != 0:
            shutil.rmtree(out, ignore_errors=True)
            _LOGGER.error("retraining %s failed (exit %d)", version, code)
            await self._audit.record("server", "model.retrain_failed", version, {"exit": code})
            return
        decision = json.loads(output.strip().splitlines()[-1])
        decision["lineage"] = exported.lineage()
        decision["consent_checked_at"] = exported.checked_at.isoformat()
        await asyncio.to_thread(self._register, decision)
        self.last_decision = decision

    def _register(self, decision: dict[str, Any]) -> None:
        from models.card import ModelCard
        from models.runtime import RelevanceModel

        promote = bool(decision["promote"])
        card = json.loads(Path(decision["card"]).read_text())
        lineage: list[dict[str, Any]] = list(decision.get("lineage", []))
        checked = decision.get("consent_checked_at")
        checked_at = datetime.fromisoformat(checked) if checked else utcnow()
        with self._database.session() as session, session.begin():
            withdrawn = sorted(
                int(p["patient_id"])
                for p in lineage
                if not has_consent(session, int(p["patient_id"]), CONSENT_TRAINING)
            )
            if promote and withdrawn:
                promote = False
                decision["promote"] = False
                decision["reason"] = (
                    f"training consent withdrawn during training by patients {withdrawn}"
                )
            old = session.scalar(select(ModelVersion).where(ModelVersion.status == STATUS_CHAMPION))
            if old is None:  # the shipped or configured model becomes the first registry entry
                current = self._service.model()
                old = ModelVersion(
                    version=current.version,
                    path=str(self._config.models.tflite or "shipped demonstration model"),
                    card=dict(current.card.data),
                    status=STATUS_CHAMPION,
                    decision="the model in use before the first retrain",
                )
                session.add(old)
            candidate = ModelVersion(
                version=decision["version"],
                path=decision["tflite"],
                card=card,
                status=STATUS_CHAMPION if promote else STATUS_REJECTED,
                decision=decision["reason"],
                decided_at=utcnow(),
            )
            session.add(candidate)
            for patient in lineage:
                session.add(
                    ModelTrainingPatient(
                        model_version=decision["version"],
                        patient_id=int(patient["patient_id"]),
                        label=str(patient["label"]),
                        items=int(patient["items"]),
                        consent_checked_at=checked_at,
                    )
                )
            if promote:
                old.status = STATUS_RETIRED
                old.decided_at = utcnow()
            self._audit.write(
                session,
                "server",
                "model.promoted" if promote else "model.rejected",
                decision["version"],
                {
                    "champion": decision["champion_version"],
                    "reason": decision["reason"],
                    "champion_metrics": decision["champion"],
                    "challenger_metrics": decision["challenger"],
                    "cases": decision["cases"],
                    "patients": [int(p["patient_id"]) for p in lineage],
                    "frozen_test": decision.get("frozen_test", {}),
                },
            )
        _LOGGER.info(
            "model %s %s: %s",
            decision["version"],
            "promoted" if promote else "rejected",
            decision["reason"],
        )
        if promote:
            ModelCard.from_json(card)  # refuse a malformed card before switching
            tflite = Path(decision["tflite"])
            self._service.replace_model(RelevanceModel.load(tflite), tflite)

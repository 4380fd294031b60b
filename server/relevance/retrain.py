"""Background retraining on the server (R9), champion/challenger, and the model registry.

The labelled cases (confirmed diagnoses of consenting patients) are exported in the
dataset layout of ``models/`` — each record item filed under its category and the
confirmed label — and ``python -m models.retrain`` trains a candidate in a child
process, compares it with the model in use on the same held-out split and prints its
decision. The decision and both sets of metrics are logged, audited and kept in the
``model_versions`` registry; a promoted model is used at once for server-side runs.
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

from server.audit.trail import AuditTrail
from server.config import ServerConfig
from server.db import Database, utcnow
from server.records.store import RecordStore
from server.relevance.course import course_items
from server.relevance.learning import LabelledCase
from server.relevance.models import STATUS_CHAMPION, STATUS_REJECTED, STATUS_RETIRED, ModelVersion
from server.relevance.service import RelevanceService

_LOGGER = logging.getLogger(__name__)


def training_available() -> bool:
    """TensorFlow is installed (the 'train' extra)."""
    return importlib.util.find_spec("tensorflow") is not None


def export_cases(
    database: Database, store: RecordStore, cases: list[LabelledCase], folder: Path
) -> int:
    """Every record item of every case, filed under its category and confirmed label."""
    from models.dataset import add_item

    count = 0
    with database.session() as session:
        for case in cases:
            for item in course_items(session, store, case.patient_id):
                if item.fields is not None:
                    add_item(folder, item.category, case.label, item.fields)
                else:
                    with store.blobs.open(item.sha256 or "") as stream:
                        add_item(folder, item.category, case.label, stream.read())
                count += 1
    return count


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
            count = await asyncio.to_thread(
                export_cases, self._database, self._store, cases, Path(tmp)
            )
            _LOGGER.info("retraining %s: %d cases, %d record items", version, len(cases), count)
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
        await asyncio.to_thread(self._register, decision)
        self.last_decision = decision

    def _register(self, decision: dict[str, Any]) -> None:
        from models.card import ModelCard
        from models.runtime import RelevanceModel

        promote = bool(decision["promote"])
        card = json.loads(Path(decision["card"]).read_text())
        with self._database.session() as session, session.begin():
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

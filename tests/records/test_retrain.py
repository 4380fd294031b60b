"""The learning loop end to end (R9): a confirmed, consented case triggers a background
retrain in a child process; champion/challenger decides; the registry and the audit log
keep the decision with both sets of metrics."""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiohttp.test_utils import TestServer
from sqlalchemy import select

from server.app import build_app
from server.audit.log import AuditEntry
from server.relevance.models import ModelVersion
from server.state import STATE, ServerState
from tests.records.api_helpers import open_user, png_bytes, records_config


def _actions(state: ServerState) -> list[str]:
    with state.database.session() as session:
        return list(session.scalars(select(AuditEntry.action)))


async def test_a_confirmed_case_retrains_and_a_worse_candidate_is_rejected(
    tmp_path: Path,
) -> None:
    config = records_config(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}")
    models = config.models.model_copy(
        update={"retrain_after": 1, "retrain_epochs": 1, "retrain_base_per_class": 8}
    )
    app = build_app(config.model_copy(update={"models": models}), asyncio.get_running_loop())
    server = TestServer(app)
    await server.start_server()
    state = app[STATE]
    alice = await open_user(server, "alice")
    try:
        granted = await alice.access("P-1", ("view", "edit"))
        base = f"/api/patients/{granted['patient_id']}"
        await alice.request("POST", base + "/records", data=png_bytes(96, 96))
        await alice.request("POST", base + "/emr", json={"fields": {"mean radius": 20.0}})
        await alice.request(
            "POST", base + "/consent", json={"purpose": "training", "granted": True}
        )
        resp = await alice.request("POST", base + "/diagnosis", json={"label": "malignant"})
        assert resp.status == 201
        for _ in range(360):  # the child process trains five branches (one epoch each)
            with state.database.session() as session:
                rows = list(session.scalars(select(ModelVersion).order_by(ModelVersion.id)))
            if len(rows) == 2 or "model.retrain_failed" in _actions(state):
                break
            await asyncio.sleep(0.5)
        assert [r.status for r in rows] == ["champion", "rejected"], [r.decision for r in rows]
        assert rows[0].version == "relevance-demo-1"
        assert "worse" in rows[1].decision or "mean" in rows[1].decision
        with state.database.session() as session:
            entry = session.scalar(select(AuditEntry).where(AuditEntry.action == "model.rejected"))
        assert entry is not None
        assert set(entry.detail["champion_metrics"]) == set(entry.detail["challenger_metrics"])
        assert entry.detail["cases"] == 2  # the photo and the EMR entry
        assert state.relevance.model().version == "relevance-demo-1"  # the champion stays
    finally:
        await alice.http.close()
        await server.close()

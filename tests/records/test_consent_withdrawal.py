"""A withdrawal of training consent retires every model trained on the patient (issue 18):
in the withdrawal's transaction, with an audit entry per model; the champion falls back
to the newest model that did not use the patient, else the configured (demo) model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from server.access.models import Consent
from server.audit.log import AuditEntry
from server.audit.trail import AuditTrail
from server.relevance.models import ModelVersion
from server.relevance.retrain import Retrainer
from tests.records.api_helpers import Site


def _model_file(tmp_path: Path, version: str) -> Path:
    """The demo model's bytes under a card of another version (a stand-in candidate)."""
    from models.runtime import DEMO_CARD, DEMO_MODEL

    tflite = tmp_path / f"{version}.tflite"
    shutil.copyfile(DEMO_MODEL, tflite)
    card = json.loads(DEMO_CARD.read_text())
    card["version"] = version
    (tmp_path / f"{version}.card.json").write_text(json.dumps(card))
    return tflite


def _register(site: Site, tmp_path: Path, version: str, promote: bool, patients: list[int]) -> None:
    tflite = _model_file(tmp_path, version)
    state = site.state
    retrainer = Retrainer(state.config, state.database, state.records, state.relevance, state.audit)
    retrainer._register(
        {
            "promote": promote,
            "card": str(tflite.with_suffix(".card.json")),
            "version": version,
            "tflite": str(tflite),
            "reason": "not worse on the frozen test" if promote else "worse on the frozen test",
            "champion_version": state.relevance.model().version,
            "champion": {"emr_entry": 0.9},
            "challenger": {"emr_entry": 0.9},
            "cases": len(patients),
            "lineage": [{"patient_id": p, "label": "malignant", "items": 2} for p in patients],
            "consent_checked_at": "2026-12-07T02:00:00+00:00",
        }
    )


def _statuses(site: Site) -> dict[str, str]:
    with site.database.session() as session:
        return {r.version: r.status for r in session.scalars(select(ModelVersion))}


async def _consent(site: Site, user: str, patient: str, granted: bool) -> int:
    person = await site.user(user)
    granted_access = await person.access(patient, ("view", "edit"))
    base = f"/api/patients/{granted_access['patient_id']}"
    resp = await person.request(
        "POST", base + "/consent", json={"purpose": "training", "granted": granted}
    )
    return resp.status


async def _trained_registry(site: Site, tmp_path: Path) -> dict[str, int]:
    """A trained on P-2 (then superseded), B trained on P-1 (champion), C on P-1 (rejected)."""
    ids = site.patient_ids()
    assert await _consent(site, "alice", "P-1", True) == 201
    assert await _consent(site, "bob", "P-2", True) == 201
    _register(site, tmp_path, "relevance-a", True, [ids["P-2"]])
    _register(site, tmp_path, "relevance-b", True, [ids["P-1"]])
    _register(site, tmp_path, "relevance-c", False, [ids["P-1"], ids["P-2"]])
    assert _statuses(site) == {
        "relevance-demo-1": "retired",
        "relevance-a": "retired",
        "relevance-b": "champion",
        "relevance-c": "rejected",
    }
    assert site.state.relevance.model().version == "relevance-b"
    return ids


async def test_a_withdrawal_retires_every_model_trained_on_the_patient(
    site: Site, tmp_path: Path
) -> None:
    await _trained_registry(site, tmp_path)
    assert await _consent(site, "alice", "P-1", False) == 201
    # B and C used P-1: withdrawn for good; A (not trained on P-1) is champion again
    assert _statuses(site) == {
        "relevance-demo-1": "retired",
        "relevance-a": "champion",
        "relevance-b": "withdrawn",
        "relevance-c": "withdrawn",
    }
    assert site.state.relevance.model().version == "relevance-a"  # served from now on
    with site.database.session() as session:
        retired = list(
            session.scalars(select(AuditEntry).where(AuditEntry.action == "model.retired"))
        )
        consent = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "consent.recorded")
        ).all()[-1]
        b = session.scalar(select(ModelVersion).where(ModelVersion.version == "relevance-b"))
    assert [(e.target, e.detail["champion"]) for e in retired] == [
        ("relevance-b", "relevance-a"),
        ("relevance-c", "relevance-a"),
    ]
    assert consent.detail["models_retired"] == ["relevance-b", "relevance-c"]
    assert consent.detail["champion"] == "relevance-a"
    assert b is not None and "training consent withdrawn by patient P-1" in b.decision

    # P-2 withdraws too: A goes; nothing trained here is left, the demo model serves
    assert await _consent(site, "bob", "P-2", False) == 201
    assert _statuses(site)["relevance-a"] == "withdrawn"
    assert _statuses(site)["relevance-demo-1"] == "champion"
    assert site.state.relevance.model().version == "relevance-demo-1"
    # a withdrawn model is never champion again, even when a later patient withdraws
    assert await _consent(site, "alice", "P-1", False) == 201
    assert _statuses(site)["relevance-b"] == "withdrawn"


async def test_granting_or_a_patient_without_models_retires_nothing(
    site: Site, tmp_path: Path
) -> None:
    ids = await _trained_registry(site, tmp_path)
    assert await _consent(site, "alice", "P-1", True) == 201  # granted again: nothing happens
    with site.database.session() as session:
        session.add(
            Consent(patient_id=ids["P-1"], purpose="export", granted=False, recorded_by="x")
        )
        session.commit()
    assert _statuses(site)["relevance-b"] == "champion"
    assert site.state.relevance.model().version == "relevance-b"


async def test_the_retirement_commits_with_the_withdrawal_or_not_at_all(
    site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _trained_registry(site, tmp_path)
    real_write = AuditTrail.write

    def failing(self: AuditTrail, session: Any, actor: str, action: str, *rest: Any) -> None:
        if action == "consent.recorded":
            raise RuntimeError("audit log down")
        real_write(self, session, actor, action, *rest)

    monkeypatch.setattr(AuditTrail, "write", failing)
    assert await _consent(site, "alice", "P-1", False) == 500
    monkeypatch.undo()
    # neither the withdrawal nor the retirement happened; the champion still serves
    assert _statuses(site)["relevance-b"] == "champion"
    assert site.state.relevance.model().version == "relevance-b"
    with site.database.session() as session:
        newest = session.scalars(select(Consent).order_by(Consent.id.desc())).first()
        retired = session.scalars(select(AuditEntry).where(AuditEntry.action == "model.retired"))
        assert newest is not None and newest.granted is True
        assert list(retired) == []

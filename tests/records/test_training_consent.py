"""Consent end to end for training (R15, issue 18): re-checked when the cases are
exported and when the candidate is registered, de-identified, with a consent manifest
the offline tools require, and the lineage of every model version recorded."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import select

from models.consent import check_cases, record_count
from models.dataset import list_records
from server.audit.log import AuditEntry
from server.relevance.learning import labelled_cases
from server.relevance.models import ModelTrainingPatient, ModelVersion
from server.relevance.retrain import Retrainer, export_cases
from tests.records.api_helpers import Site, png_bytes


async def _labelled_patient(site: Site, patient: str) -> str:
    """A photo and an EMR entry, training consent, a confirmed diagnosis; its API base."""
    alice = await site.user("alice")
    granted = await alice.access(patient, ("view", "edit"))
    base = f"/api/patients/{granted['patient_id']}"
    await alice.request("POST", base + "/records", data=png_bytes(96, 96))
    fields = {"mean radius": 20.0, "mean texture": 21.5, "name": "Jane Hill"}
    await alice.request("POST", base + "/emr", json={"fields": fields})
    await alice.request("POST", base + "/consent", json={"purpose": "training", "granted": True})
    resp = await alice.request("POST", base + "/diagnosis", json={"label": "malignant"})
    assert resp.status == 201
    return base


async def test_a_withdrawal_between_counting_and_export_exports_nothing(
    site: Site, tmp_path: Path
) -> None:
    base = await _labelled_patient(site, "P-1")
    with site.database.session() as session:
        counted = labelled_cases(session)
    assert len(counted) == 1
    consented = export_cases(site.database, site.state.records, counted, tmp_path / "before")
    assert consented.items == 2 and consented.withdrawn == []
    assert check_cases(tmp_path / "before").items == 2  # the manifest accounts for both
    emr = list_records(tmp_path / "before", "emr_entry")[0].fields or {}
    assert "name" not in emr and emr["mean radius"] == 20.0  # de-identified, values kept
    alice = await site.user("alice")
    await alice.request("POST", base + "/consent", json={"purpose": "training", "granted": False})
    # the same counted cases, exported after the withdrawal: was 2 items, now none
    after = export_cases(site.database, site.state.records, counted, tmp_path / "after")
    assert after.items == 0 and after.withdrawn == [counted[0].patient_id]
    assert record_count(tmp_path / "after") == 0
    assert json.loads((tmp_path / "after" / "consent.json").read_text())["patients"] == []


def _decision(tmp_path: Path, version: str, promote: bool, lineage: list[dict[str, Any]]) -> Any:
    from models.runtime import DEMO_CARD, DEMO_MODEL

    return {
        "promote": promote,
        "card": str(DEMO_CARD),
        "version": version,
        "tflite": str(DEMO_MODEL),
        "reason": "not worse on the frozen test",
        "champion_version": "relevance-demo-1",
        "champion": {"emr_entry": 0.9},
        "challenger": {"emr_entry": 0.9},
        "cases": 2,
        "lineage": lineage,
        "consent_checked_at": "2026-12-07T02:00:00+00:00",
    }


async def test_the_registry_records_which_patients_trained_each_version(
    site: Site, tmp_path: Path
) -> None:
    base = await _labelled_patient(site, "P-1")
    with site.database.session() as session:
        cases = labelled_cases(session)
    exported = export_cases(site.database, site.state.records, cases, tmp_path / "cases")
    state = site.state
    retrainer = Retrainer(state.config, state.database, state.records, state.relevance, state.audit)
    retrainer._register(_decision(tmp_path, "relevance-cand-1", False, exported.lineage()))
    with state.database.session() as session:
        rows = list(session.scalars(select(ModelTrainingPatient)))
        entry = session.scalar(select(AuditEntry).where(AuditEntry.action == "model.rejected"))
    assert [(r.model_version, r.patient_id, r.items) for r in rows] == [
        ("relevance-cand-1", cases[0].patient_id, 2)
    ]
    assert entry is not None and entry.detail["patients"] == [cases[0].patient_id]
    alice = await site.user("alice")
    found = await (await alice.request("GET", base + "/relevance")).json()
    assert [(m["model_version"], m["items"]) for m in found["trained_models"]] == [
        ("relevance-cand-1", 2)
    ]


async def test_a_withdrawal_during_training_stops_the_promotion(site: Site, tmp_path: Path) -> None:
    base = await _labelled_patient(site, "P-1")
    with site.database.session() as session:
        cases = labelled_cases(session)
    exported = export_cases(site.database, site.state.records, cases, tmp_path / "cases")
    alice = await site.user("alice")
    await alice.request("POST", base + "/consent", json={"purpose": "training", "granted": False})
    state = site.state
    retrainer = Retrainer(state.config, state.database, state.records, state.relevance, state.audit)
    retrainer._register(_decision(tmp_path, "relevance-cand-2", True, exported.lineage()))
    with state.database.session() as session:
        candidate = session.scalar(
            select(ModelVersion).where(ModelVersion.version == "relevance-cand-2")
        )
    assert candidate is not None and candidate.status == "rejected"
    assert "withdrawn" in candidate.decision
    assert state.relevance.model().version == "relevance-demo-1"

"""The basis of every relevance result (issue 18): per-branch probabilities, weights,
provenance, items used and skipped with reasons, imputed fields, and the card of the
model that produced the result (not the one in use now)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sklearn.datasets import load_breast_cancer

from server.relevance.models import ModelVersion
from tests.records.api_helpers import Site, records_config, running_site


def _malignant_fields() -> dict[str, float]:
    data = load_breast_cancer()
    row = next(i for i, target in enumerate(data.target) if target == 0)
    return {name: float(v) for name, v in zip(data.feature_names, data.data[row], strict=True)}


def _real_photo() -> bytes:
    from matplotlib import cbook

    with open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False), "rb") as handle:
        return handle.read()


async def test_the_api_result_carries_its_basis(site: Site) -> None:
    alice = await site.user("alice")
    granted = await alice.access("P-1", ("view", "edit"))
    base = f"/api/patients/{granted['patient_id']}"
    fields = _malignant_fields()
    partial = dict(list(fields.items())[:25])
    for entry in (fields, partial, {"pulse": 70}):
        resp = await alice.request("POST", base + "/emr", json={"fields": entry})
        assert resp.status == 201
    resp = await alice.request("POST", base + "/records", data=_real_photo())
    assert resp.status == 201
    resp = await alice.request("POST", "/api/consultations/c1/relevance", json={"where": "auto"})
    result = await resp.json()
    assert resp.status == 200, result
    basis = result["basis"]
    assert basis["notice"] == "decision support — not a diagnosis"
    assert basis["model"]["version"] == "relevance-demo-1" and basis["model"]["card_known"]
    assert basis["model"]["provenance"]["emr_entry"] == "real"
    assert basis["model"]["provenance"]["clinical_photo"] == "synthetic"
    assert result["caption"].startswith("model relevance-demo-1 · ")  # version first
    emr = basis["branches"]["emr_entry"]
    assert emr["data"] == "real" and emr["weight"] == 1.0
    assert emr["probabilities"][1] > 0.9
    assert [i["category"] for i in basis["items"]] == ["emr_entry", "emr_entry"]
    assert basis["items"][0]["imputed"] == [] and len(basis["items"][1]["imputed"]) == 5
    codes = sorted((s["category"], s["code"]) for s in basis["skipped"])
    assert codes == [("clinical_photo", "out_of_scope"), ("emr_entry", "too_few_fields")]
    assert all(s["reason"] for s in basis["skipped"])
    latest = await (await alice.request("GET", base + "/relevance")).json()
    assert latest["latest"]["basis"] == basis
    # the same result read in Chinese: caption, notice and the model's part translated
    zh = await (
        await alice.request("GET", base + "/relevance", headers={"Accept-Language": "zh-CN"})
    ).json()
    assert zh["latest"]["caption"].startswith("模型 relevance-demo-1 · 辅助决策，非诊断 · ")
    assert "演示模型——不用于临床" in zh["latest"]["caption"]
    assert zh["latest"]["basis"]["notice"] == "辅助决策，非诊断"
    assert zh["latest"]["basis"]["model"]["intended_use"] == "演示模型——不用于临床"
    assert zh["latest"]["basis"]["model"]["computed"] == "在服务器端"


async def test_the_caption_and_basis_come_from_the_producing_models_card(site: Site) -> None:
    alice = await site.user("alice")
    granted = await alice.access("P-1", ("view",))
    pid = granted["patient_id"]
    old_card: dict[str, Any] = {
        "intended_use": "an older clinical model",
        "labels": ["benign", "malignant"],
        "training_data": {"emr_entry": {"source": "Hill Clinic cases (2025)", "synthetic": False}},
        "fusion": {"weights": {"emr_entry": 0.9}},
    }
    stored = []
    with site.database.session() as session, session.begin():
        session.add(
            ModelVersion(
                version="relevance-old", path="-", card=old_card, status="retired", decision=""
            )
        )
        for version in ("relevance-old", "relevance-gone"):
            stored.append(
                site.state.relevance.store(
                    session,
                    patient_id=pid,
                    consultation_id="c1",
                    labels=["benign", "malignant"],
                    values=[0.3, 0.7],
                    inputs=[{"category": "emr_entry", "id": 1, "probabilities": [0.3, 0.7]}],
                    model_version=version,
                    produced_by="appliance:cam-1",
                    requested_by="alice",
                )
            )
    first = stored[0]
    assert first.caption.startswith("model relevance-old · decision support — not a diagnosis")
    assert "an older clinical model" in first.caption and "Hill Clinic cases" in first.caption
    assert "demonstration" not in first.caption  # not the current (demo) model's card
    assert first.basis["branches"]["emr_entry"]["weight"] == 1.0
    assert first.basis["model"]["provenance"] == {"emr_entry": "real"}
    with site.database.session() as session:
        latest = site.state.relevance.latest(session, pid)
    assert latest is not None and latest.model_version == "relevance-gone"
    assert "card is not on this server" in latest.caption
    assert latest.basis["model"]["card_known"] is False
    assert latest.basis["items"][0]["probabilities"] == [0.3, 0.7]


async def test_a_clinical_site_counts_no_synthetic_branch_and_the_caption_says_so(
    tmp_path: Path,
) -> None:
    """The default (``models.demonstration_branches = false``): the shipped model's
    synthetic-data branches carry no weight, their items are skipped with the reason,
    and the caption says they were not counted; the demo's setting counts them."""
    config = records_config(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}")
    clinical = config.model_copy(
        update={"models": config.models.model_copy(update={"demonstration_branches": False})}
    )
    async with running_site(clinical) as site:
        alice = await site.user("alice")
        granted = await alice.access("P-1", ("view", "edit"))
        base = f"/api/patients/{granted['patient_id']}"
        resp = await alice.request("POST", base + "/emr", json={"fields": _malignant_fields()})
        assert resp.status == 201
        resp = await alice.request("POST", base + "/records", data=_real_photo())
        assert resp.status == 201
        resp = await alice.request(
            "POST", "/api/consultations/c1/relevance", json={"where": "server"}
        )
        result = await resp.json()
        assert resp.status == 200, result
    basis = result["basis"]
    assert set(basis["branches"]) == {"emr_entry"}
    assert basis["branches"]["emr_entry"]["weight"] == 1.0
    assert [(s["category"], s["code"]) for s in basis["skipped"]] == [
        ("clinical_photo", "synthetic")
    ]
    assert "synthetic-data branches not counted" in result["caption"]


def test_the_appliances_skip_reasons_reach_the_basis() -> None:
    from server.relevance.basis import from_inputs, synthetic_counted

    inputs = [
        {"category": "emr_entry", "id": 1, "probabilities": [0.1, 0.9]},
        {"category": "clinical_photo", "id": 2, "skipped": {"code": "synthetic", "reason": "x"}},
        {"category": "record_scan", "id": 3, "skipped": {"code": "made-up", "reason": "y"}},
    ]
    basis = from_inputs(inputs, None)
    assert [s["code"] for s in basis["skipped"]] == ["synthetic", "not_reported"]
    assert synthetic_counted(basis) is False
    assert synthetic_counted({"branches": {"clinical_photo": {"data": "synthetic", "weight": 0.2}}})
    assert synthetic_counted({"skipped": []}) is None

"""Relevance through the server (R7, R9): the device's patient-scoped course API, results
stored with their inputs and shown in the room, diagnoses, the server-side runner."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from sklearn.datasets import load_breast_cancer

from server.records.models import Patient
from server.relevance.learning import labelled_cases
from tests.records.api_helpers import (
    PASSWORD,
    Site,
    audit_actions,
    png_bytes,
)


def device_grant(site: Site, external_id: str) -> tuple[int, str]:
    """What the server issues with model.relevance: view access for cam-1, one patient."""
    with site.database.session() as session, session.begin():
        patient = session.query(Patient).filter_by(external_id=external_id).one()
        issued = site.state.access.issue_device_grant(
            session, "device:cam-1", patient, 10, basis="test", reason="test"
        )
        return patient.id, issued.token


def _malignant_fields() -> dict[str, float]:
    data = load_breast_cancer()
    row = next(i for i, target in enumerate(data.target) if target == 0)  # 0 = malignant
    return {name: float(v) for name, v in zip(data.feature_names, data.data[row], strict=True)}


async def _device_get(site: Site, path: str, token: str, device_token: str = PASSWORD) -> Any:
    headers = {"Authorization": f"Bearer {device_token}", "X-Clinicam-Access": token}
    async with (
        aiohttp.ClientSession() as http,
        http.get(str(site.server.make_url(path)), headers=headers) as resp,
    ):
        return resp.status, (await resp.read())


async def test_device_course_api_is_scoped_to_one_patient(site: Site) -> None:
    alice = await site.user("alice")
    granted = await alice.access("P-1", ("view", "edit"))
    pid = granted["patient_id"]
    await alice.request("POST", f"/api/patients/{pid}/records", data=png_bytes())
    await alice.request("POST", f"/api/patients/{pid}/emr", json={"fields": {"pulse": 70}})
    pid1, token = device_grant(site, "P-1")
    status, body = await _device_get(site, f"/api/appliances/cam-1/course?patient={pid1}", token)
    assert status == 200
    import json

    items = json.loads(body)["items"]
    assert sorted(i["category"] for i in items) == ["clinical_photo", "emr_entry"]
    photo = next(i for i in items if i["category"] == "clinical_photo")
    status, data = await _device_get(
        site, f"/api/appliances/cam-1/course/clinical_photo/{photo['id']}?patient={pid1}", token
    )
    assert status == 200 and data.startswith(b"\x89PNG")
    # The same token for another patient, a wrong device token, an expert's token: refused.
    other = pid1 + 1
    status, _ = await _device_get(site, f"/api/appliances/cam-1/course?patient={other}", token)
    assert status == 404
    status, _ = await _device_get(
        site, f"/api/appliances/cam-1/course?patient={pid1}", token, device_token="wrong"
    )
    assert status == 401
    status, _ = await _device_get(
        site, f"/api/appliances/cam-1/course?patient={pid1}", granted["token"]
    )
    assert status == 404
    actions = audit_actions(site.state.database, "device:cam-1")
    assert "record.list" in actions and "record.read" in actions and "access.denied" in actions


async def test_a_device_result_is_stored_and_redraws_the_room_chart(site: Site) -> None:
    pid, token = device_grant(site, "P-1")
    room = site.state.rooms.get(site.state.config.consultations[0])
    body = {
        "patient": pid,
        "consultation": "c1",
        "model_version": "test-1",
        "labels": ["benign", "malignant"],
        "values": [0.25, 0.75],
        "inputs": [{"category": "emr_entry", "id": 1, "probabilities": [0.25, 0.75]}],
        "requested_by": "alice",
    }
    headers = {"Authorization": f"Bearer {PASSWORD}", "X-Clinicam-Access": token}
    async with aiohttp.ClientSession() as http:
        url = str(site.server.make_url("/api/appliances/cam-1/relevance"))
        async with http.post(url, json={**body, "values": [0.5, 1.5]}, headers=headers) as resp:
            assert resp.status == 400  # values outside [0, 1]: nothing stored
        assert room.relevance is None
        async with http.post(url, json=body, headers=headers) as resp:
            assert resp.status == 201
            stored = await resp.json()
    assert stored["produced_by"] == "appliance:cam-1"
    assert room.relevance is not None and room.relevance["values"] == [0.25, 0.75]
    assert "computed on the appliance" in room.relevance["caption"]
    alice = await site.user("alice")
    await alice.access("P-1")
    latest = await (await alice.request("GET", f"/api/patients/{pid}/relevance")).json()
    assert latest["latest"]["relevance"] == {"benign": 0.25, "malignant": 0.75}


async def test_server_runner_and_the_learning_loop(site: Site) -> None:
    alice = await site.user("alice")
    granted = await alice.access("P-1", ("view", "edit"))
    pid = granted["patient_id"]
    resp = await alice.request(
        "POST", f"/api/patients/{pid}/emr", json={"fields": _malignant_fields()}
    )
    assert resp.status == 201
    # The appliance is offline (no broker here): "auto" computes on the server.
    resp = await alice.request("POST", "/api/consultations/c1/relevance", json={"where": "auto"})
    result = await resp.json()
    assert resp.status == 200, result
    assert result["on"] == "server" and result["produced_by"] == "server"
    assert result["relevance"]["malignant"] > result["relevance"]["benign"]
    assert "not for clinical use" in result["caption"]
    assert "Wisconsin" in result["caption"] and "synthetic data" in result["caption"]
    room = site.state.rooms.get(site.state.config.consultations[0])
    await asyncio.sleep(0.1)
    assert room.relevance is not None and room.relevance["id"] == result["id"]

    resp = await alice.request("POST", f"/api/patients/{pid}/diagnosis", json={"label": "flu"})
    assert resp.status == 400 and "benign" in (await resp.json())["error"]
    resp = await alice.request(
        "POST", f"/api/patients/{pid}/diagnosis", json={"label": "malignant", "consultation": "c1"}
    )
    assert resp.status == 201
    with site.state.database.session() as session:
        assert labelled_cases(session) == []  # no training consent yet: not used
    await alice.request(
        "POST", f"/api/patients/{pid}/consent", json={"purpose": "training", "granted": True}
    )
    with site.state.database.session() as session:
        assert [(c.patient_id, c.label) for c in labelled_cases(session)] == [(pid, "malignant")]
    assert "diagnosis.confirmed" in audit_actions(site.state.database, "alice")

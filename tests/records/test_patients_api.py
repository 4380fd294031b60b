"""The patients API and page: clinic staff register (with consent) and search (issue 19)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from server.access.models import Consent
from server.records.models import Patient
from tests.records.api_helpers import User, audit_actions, count_rows, running_site
from tests.records.test_patient_registry import clinic_config

REGISTRATION: dict[str, Any] = {
    "identifier": "H-100",
    "name": "王芳",
    "sex": "female",
    "birth_date": "1958-07-01",
    "group": "hill",
    "consent": {"training": False, "export": True},
}


async def _search(user: User, q: str) -> dict[str, Any]:
    resp = await user.request("GET", "/api/patients", params={"q": q})
    assert resp.status == 200, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def test_clinic_staff_register_a_patient_and_find_them(tmp_path: Path) -> None:
    config = clinic_config(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}")
    async with running_site(config) as site:
        nurse, doctor = await site.user("nurse"), await site.user("doctor")
        resp = await nurse.request("POST", "/api/patients", json=REGISTRATION)
        assert resp.status == 201, await resp.text()
        made = await resp.json()
        assert made["clinic"] == "Hill Clinic" and made["consent"] == REGISTRATION["consent"]
        assert audit_actions(site.database, "nurse")[-3:] == [
            "patient.register",
            "consent.recorded",
            "consent.recorded",
        ]
        found = await _search(nurse, "芳")
        assert [p["identifier"] for p in found["patients"]] == ["H-100"]
        assert found["patients"][0]["birth_date"] == "1958-07-01" and found["total"] == 1
        assert (await _search(doctor, "H-100"))["patients"] == []  # another clinic's

        resp = await nurse.request("POST", "/api/patients", json=REGISTRATION)
        assert resp.status == 409 and "H-100" in (await resp.json())["error"]
        resp = await nurse.request(
            "POST",
            "/api/patients",
            json={**REGISTRATION, "identifier": "H-2", "birth_date": "1850-01-01"},
        )
        assert resp.status == 400 and "1900" in (await resp.json())["error"]
        resp = await nurse.request(
            "POST",
            "/api/patients",
            json={**REGISTRATION, "identifier": "H-2", "birth_date": "1990-02-30"},
        )
        assert resp.status == 400 and "birth_date" in (await resp.json())["error"]
        resp = await nurse.request(
            "POST",
            "/api/patients",
            json={**REGISTRATION, "identifier": "H-2", "clinic": "Vale Clinic"},
        )
        assert resp.status == 403
        no_consent = {k: v for k, v in REGISTRATION.items() if k != "consent"}
        resp = await nurse.request(
            "POST", "/api/patients", json={**no_consent, "identifier": "H-2"}
        )
        assert resp.status == 400 and "consent" in (await resp.json())["error"]
        bob = await site.user("bob")
        resp = await bob.request(
            "POST", "/api/patients", json={**REGISTRATION, "identifier": "H-3"}
        )
        assert resp.status == 403
        assert count_rows(site.database, Consent) == 2
        assert count_rows(site.database, Patient) == 3  # P-1, P-2 from the config, H-100


async def test_the_search_answers_per_role_and_the_list_stays(tmp_path: Path) -> None:
    config = clinic_config(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}")
    async with running_site(config) as site:
        nurse = await site.user("nurse")
        resp = await nurse.request("POST", "/api/patients", json=REGISTRATION)
        assert resp.status == 201
        bob, carol, alice = (
            await site.user("bob"),
            await site.user("carol"),
            await site.user("alice"),
        )
        assert (await _search(carol, "H-100"))["patients"] == []  # no grant: not a word
        assert {p["identifier"] for p in (await _search(alice, ""))["patients"]} == {
            "H-100",
            "P-1",
            "P-2",
        }
        granted = await bob.access("P-2")
        assert granted["http_status"] == 201
        by_bob = {p["identifier"]: p["name"] for p in (await _search(bob, "p-"))["patients"]}
        assert by_bob == {"P-1": None, "P-2": "John Vale"}  # P-1: his consultation's, no grant
        mine = await (await bob.request("GET", "/api/patients")).json()  # the records list
        assert {p["identifier"] for p in mine["patients"]} == {"P-1", "P-2"}
        page = await nurse.request("GET", "/clinic")
        assert page.status == 200 and "clinic_patients.js" in await page.text()

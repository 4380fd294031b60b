"""R16: a tablet at the clinic runs the clinic station signed in as the clinic's staff.

Clinic staff reach only their own clinic's stations, change things only with their
session's CSRF token, see no records and join no room as an expert."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import ClientSession

from server.auth import hash_secret
from server.config import ServerConfig
from tests.records.api_helpers import PASSWORD, Site, audit_actions, records_config, running_site

STATION = "/api/appliances/cam-1/station"


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    base = records_config(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}").model_dump()
    digest = hash_secret(PASSWORD)
    base["devices"].append({"device_id": "cam-2", "clinic": "Vale Clinic", "token_hash": digest})
    base["experts"].append(
        {
            "username": "nina",
            "display_name": "Nina (nurse)",
            "password_hash": digest,
            "role": "clinic",
            "clinic": "Hill Clinic",
        }
    )
    async with running_site(ServerConfig.model_validate(base)) as running:
        yield running


async def test_clinic_staff_run_their_own_clinics_station(site: Site) -> None:
    nina = await site.user("nina")
    resp = await nina.request("GET", "/api/session")
    session = await resp.json()
    assert session["role"] == "clinic" and session["consultations"] == []
    assert session["stations"] == [{"device": "cam-1", "clinic": "Hill Clinic"}]

    resp = await nina.request("GET", STATION)
    body = await resp.json()
    assert resp.status == 200 and body["state"] == "waiting" and body["clinic"] == "Hill Clinic"
    resp = await nina.request("GET", "/api/appliances/cam-2/station")
    assert resp.status == 403 and "not one of your clinic's" in (await resp.json())["error"]
    resp = await nina.request("GET", "/api/appliances/nope/station")
    assert resp.status == 403

    # A state change needs the session's CSRF token (a page elsewhere cannot press it).
    resp = await nina.request(
        "POST", f"{STATION}/controls", json={"attention": True}, headers={"X-CSRF-Token": "x"}
    )
    assert resp.status == 403 and "CSRF" in (await resp.json())["error"]
    resp = await nina.request("POST", f"{STATION}/controls", json={"attention": True})
    assert resp.status == 200
    resp = await nina.request("POST", f"{STATION}/controls", json={"privacy": "on"})
    assert resp.status == 400

    # Not an expert: no records, no room.
    refused = await nina.access("P-1")
    assert refused["http_status"] == 403 and "clinic staff" in refused["error"]
    resp = await nina.request("GET", "/api/consultations/c1")
    assert resp.status == 403
    assert "access.granted" not in audit_actions(site.database, "nina")


async def test_without_a_session_or_token_the_station_asks_to_sign_in(site: Site) -> None:
    async with ClientSession() as anonymous:
        resp = await anonymous.get(site.server.make_url(STATION))
        assert resp.status == 401 and "sign in" in (await resp.json())["error"]
        resp = await anonymous.get(site.server.make_url("/station/cam-1"))
        assert resp.status == 200  # the page itself holds no secret
    alice = await site.user("alice")  # an expert is not the clinic's staff
    resp = await alice.request("GET", STATION)
    assert resp.status == 403

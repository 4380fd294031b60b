"""The consultations' HTTP API: request, schedule, the first join makes it live, the chair
ends it (its sockets are told, later joins refused), the calendar file, the agenda."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import icalendar
import pytest
from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient, TestServer

from server.app import build_app
from server.auth import hash_secret
from server.config import ServerConfig

PEOPLE = {"nurse": "clinic", "chair": "chair", "alice": "expert", "bob": "expert"}
Client = TestClient[Any, Any]


def _config(state_dir: Path) -> ServerConfig:
    return ServerConfig.model_validate(
        {
            "state_dir": str(state_dir),
            "http": {"cookie_secure": False},
            "mqtt": {"port": 1, "username": "server", "password": "x"},  # nothing listens
            "experts": [
                {
                    "username": u,
                    "display_name": u.title(),
                    "password_hash": hash_secret(f"{u}-pw"),
                    "role": role,
                    "clinic": "Hill Clinic" if role == "clinic" else None,
                }
                for u, role in PEOPLE.items()
            ],
            "devices": [
                {"device_id": "cam-1", "clinic": "Hill Clinic", "token_hash": hash_secret("t")}
            ],
            "patients": [{"id": "P-1", "name": "Patient One"}],
            "consultations": [
                {
                    "id": "c1",
                    "patient_id": "P-1",
                    "appliance": "cam-1",
                    "chair": "chair",
                    "experts": ["chair", "alice"],
                }
            ],
        }
    )


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[TestServer]:
    app = build_app(_config(tmp_path), asyncio.get_running_loop())
    async with TestServer(app) as test_server:
        yield test_server


class Person:
    def __init__(self, client: Client, csrf: str) -> None:
        self.client, self.csrf = client, csrf

    async def post(self, path: str, body: Any = None) -> Any:
        resp = await self.client.post(path, json=body or {}, headers={"X-CSRF-Token": self.csrf})
        return resp.status, await resp.json()

    async def get(self, path: str) -> Any:
        resp = await self.client.get(path)
        return resp.status, (await resp.json() if resp.content_type.endswith("json") else None)


async def _sign_in(server: TestServer, user: str) -> AsyncIterator[Person]:
    async with TestClient(server) as client:
        resp = await client.post("/api/login", json={"username": user, "password": f"{user}-pw"})
        assert resp.status == 200
        yield Person(client, (await resp.json())["csrf"])


@pytest.fixture
async def people(server: TestServer) -> AsyncIterator[dict[str, Person]]:
    signed: dict[str, Person] = {}
    gens = [_sign_in(server, u) for u in PEOPLE]
    for user, gen in zip(PEOPLE, gens, strict=True):
        signed[user] = await anext(gen)
    yield signed
    for gen in gens:
        await gen.aclose()


async def test_from_request_to_end(people: dict[str, Person]) -> None:
    nurse, chair, alice, bob = (people[u] for u in PEOPLE)
    status, body = await nurse.post(
        "/api/consultations",
        {"patient_id": "P-1", "appliance": "cam-1", "reason": "rash", "specialty": "skin"},
    )
    assert status == 201
    cid = body["id"]
    status, body = await nurse.post(
        "/api/consultations", {"patient_id": "P-404", "appliance": "cam-1", "reason": "x"}
    )
    assert (status, body["error"]) == (404, "no such patient: P-404")
    status, mine = await chair.get("/api/consultations?scope=mine")
    assert [c["id"] for c in mine["requests"]] == [cid]
    start = (datetime.now(UTC) + timedelta(minutes=5)).replace(microsecond=0)
    slot = {"start": start.isoformat(), "end": (start + timedelta(hours=1)).isoformat()}
    status, body = await alice.post(
        f"/api/consultations/{cid}/schedule", {**slot, "experts": ["alice"]}
    )
    assert status == 403
    status, _ = await chair.post(
        f"/api/consultations/{cid}/schedule", {**slot, "experts": ["alice"]}
    )
    assert status == 200
    status, mine = await alice.get("/api/consultations?scope=mine")
    assert [(c["id"], c["new"]) for c in mine["upcoming"]] == [("c1", False), (cid, True)]
    assert (await bob.get(f"/api/consultations/{cid}/invite.ics"))[0] == 403
    resp = await alice.client.get(f"/api/consultations/{cid}/invite.ics")
    assert resp.status == 200 and resp.content_type == "text/calendar"
    event = next(iter(icalendar.Calendar.from_ical(await resp.read()).walk("VEVENT")))
    assert event.decoded("dtstart") == start
    assert str(event["url"]).endswith(f"/room/{cid}")

    ws = await alice.client.ws_connect(f"/api/consultations/{cid}/ws")  # 5 min early: open
    first = await ws.receive_json()
    assert first["type"] == "room"
    status, mine = await nurse.get("/api/consultations?scope=mine")
    assert [c["id"] for c in mine["live"]] == [cid]
    status, body = await alice.post(f"/api/consultations/{cid}/end")
    assert status == 403
    status, _ = await chair.post(f"/api/consultations/{cid}/end")
    assert status == 200
    told = [await ws.receive() for _ in range(3)]
    assert any(m.type == WSMsgType.TEXT and m.json()["type"] == "ended" for m in told)
    assert ws.closed or told[-1].type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING)
    resp = await alice.client.get(f"/api/consultations/{cid}/ws")
    assert resp.status == 409
    assert (await resp.json())["error"] == "this consultation has ended"
    status, body = await alice.post(f"/api/consultations/{cid}/camera", {"op": "home"})
    assert status == 409
    status, info = await alice.get(f"/api/consultations/{cid}")
    assert info["state"] == "ended"
    status, mine = await alice.get("/api/consultations?scope=mine")
    assert [c["id"] for c in mine["past"]] == [cid] and mine["live"] == []
    assert [c["id"] for c in mine["upcoming"]] == ["c1"]  # standing, still open


async def test_too_early_and_standing(people: dict[str, Person]) -> None:
    nurse, chair, alice = people["nurse"], people["chair"], people["alice"]
    status, body = await nurse.post(
        "/api/consultations", {"patient_id": "P-1", "appliance": "cam-1", "reason": "cough"}
    )
    cid = body["id"]
    start = datetime.now(UTC) + timedelta(hours=3)
    slot = {"start": start.isoformat(), "end": (start + timedelta(hours=1)).isoformat()}
    assert (await chair.post(f"/api/consultations/{cid}/schedule", {**slot, "experts": ["alice"]}))[
        0
    ] == 200
    resp = await alice.client.get(f"/api/consultations/{cid}/ws")
    assert resp.status == 409 and "opens at" in (await resp.json())["error"]
    status, info = await alice.get(f"/api/consultations/{cid}")
    opens = datetime.fromisoformat(info["opens"])
    assert opens == datetime.fromisoformat(slot["start"]) - timedelta(minutes=15)
    ws = await alice.client.ws_connect("/api/consultations/c1/ws")  # from the config: any time
    assert (await ws.receive_json())["type"] == "room"
    await ws.close()
    status, body = await chair.post(f"/api/consultations/{cid}/schedule", slot)
    assert status == 400  # no experts named: the body names the field


async def test_decline_start_now_and_the_station_sees_the_next(people: dict[str, Person]) -> None:
    nurse, chair, alice = people["nurse"], people["chair"], people["alice"]
    ask = {"patient_id": "P-1", "appliance": "cam-1", "reason": "fever"}
    first = (await nurse.post("/api/consultations", ask))[1]["id"]
    status, body = await chair.post(f"/api/consultations/{first}/decline", {"reason": ""})
    assert status == 400  # a decline says why
    assert (await chair.post(f"/api/consultations/{first}/decline", {"reason": "no one"}))[0] == 200
    status, body = await nurse.post(f"/api/consultations/{first}/cancel")
    assert (status, body["error"]) == (409, "not possible while the consultation is declined")
    status, station = await nurse.get("/api/appliances/cam-1/station")
    assert status == 200 and station["next"] is None  # c1 is standing: no times to show
    urgent = (await nurse.post("/api/consultations", {**ask, "urgency": "urgent"}))[1]["id"]
    status, body = await nurse.post(
        f"/api/consultations/{urgent}/start-now", {"experts": ["alice"]}
    )
    assert (status, body["join"]) == (200, f"/room/{urgent}")
    status, station = await nurse.get("/api/appliances/cam-1/station")
    assert (station["next"]["id"], station["next"]["state"]) == (urgent, "scheduled")
    ws = await alice.client.ws_connect(f"/api/consultations/{urgent}/ws")  # at once: urgent
    assert (await ws.receive_json())["type"] == "room"
    status, station = await nurse.get("/api/appliances/cam-1/station")
    assert station["next"]["state"] == "live" and station["state"] == "live"
    assert station["consultation"]["id"] == urgent  # the station joins this one
    status, mine = await nurse.get("/api/consultations?scope=mine")
    assert [c["id"] for c in mine["past"]] == [first] and mine["past"][0]["state"] == "declined"
    await ws.close()

"""The enrolment API on the whole server app: roles, the one-time bundle, no restart needed."""

from __future__ import annotations

import asyncio
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from server.app import build_app
from server.auth import hash_secret
from server.config import ServerConfig
from server.state import STATE

USERS = {"alice": "expert", "tess": "technician", "root": "admin"}
Client = TestClient[Any, Any]


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[Client]:
    digest = hash_secret("pw")
    config = ServerConfig.model_validate(
        {
            "state_dir": str(tmp_path),
            "http": {"cookie_secure": False},
            "mqtt": {"port": 1, "username": "server", "password": "x"},  # nothing listens
            "experts": [
                {"username": u, "display_name": u.title(), "password_hash": digest, "role": r}
                for u, r in USERS.items()
            ],
        }
    )
    app = build_app(config, asyncio.get_running_loop())
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


async def _login(client: Client, user: str) -> dict[str, str]:
    resp = await client.post("/api/login", json={"username": user, "password": "pw"})
    assert resp.status == 200
    return {"X-CSRF-Token": (await resp.json())["csrf"]}


async def _device_call(client: Client, device: str, token: str) -> int:
    headers = {"Authorization": f"Bearer {token}"}
    return (await client.get(f"/api/appliances/{device}/stream/none", headers=headers)).status


async def test_only_admins_and_technicians_enrol(client: Client) -> None:
    csrf = await _login(client, "alice")
    body = {"name": "Ward", "clinic": "Hill Clinic"}
    resp = await client.post("/api/admin/appliances", json=body, headers=csrf)
    assert resp.status == 403
    assert (await client.get("/api/admin/appliances")).status == 403


async def test_enrolled_appliance_is_known_at_once_and_its_bundle_is_shown_once(
    client: Client,
) -> None:
    csrf = await _login(client, "tess")
    body = {"name": "Ward 3", "clinic": "Hill Clinic", "room": "R2"}
    resp = await client.post("/api/admin/appliances", json=body, headers=csrf)
    assert resp.status == 201 and resp.headers["Cache-Control"] == "no-store"
    made = await resp.json()
    assert made["broker"] == {"state": "manual", "problem": None}  # no [broker_admin]
    bundle = tomllib.loads(made["bundle"])
    device, token = made["device_id"], bundle["server"]["token"]
    assert device == "ward-3" and bundle["server"]["url"] == str(client.make_url("")).rstrip("/")

    # No restart: the token works, the media hub has its feed, health lists it.
    assert await _device_call(client, device, token) == 404  # known device, no stream yet
    assert device in client.app[STATE].media.feeds
    health = await (await client.get("/healthz")).json()
    assert health["appliances"][device]["streaming"] is False

    listing = await (await client.get("/api/admin/appliances")).json()
    assert listing["broker_managed"] is False
    (row,) = listing["appliances"]
    assert (row["device_id"], row["name"], row["room"], row["enrolled_by"]) == (
        "ward-3",
        "Ward 3",
        "R2",
        "tess",
    )
    assert row["online"] is False and row["enrolled_at"]
    assert token not in str(listing)  # the listing never shows a secret

    resp = await client.post(f"/api/admin/appliances/{device}/rotate?download=1", headers=csrf)
    assert resp.status == 200 and resp.content_type == "application/toml"
    assert resp.headers["Content-Disposition"] == 'attachment; filename="clinicam.toml"'
    rotated = tomllib.loads(await resp.text())
    assert await _device_call(client, device, token) == 401
    assert await _device_call(client, device, rotated["server"]["token"]) == 404


async def test_revoked_appliance_is_refused_and_leaves_the_listing(client: Client) -> None:
    csrf = await _login(client, "root")
    body = {"name": "Ward", "clinic": "Hill Clinic"}
    made = await (await client.post("/api/admin/appliances", json=body, headers=csrf)).json()
    token = tomllib.loads(made["bundle"])["server"]["token"]
    resp = await client.post("/api/admin/appliances/ward/revoke", headers=csrf)
    assert resp.status == 200 and (await resp.json())["status"] == "revoked"
    assert await _device_call(client, "ward", token) == 401
    listing = await (await client.get("/api/admin/appliances")).json()
    assert listing["appliances"] == []
    assert (await client.post("/api/admin/appliances/ward/revoke", headers=csrf)).status == 409
    assert (await client.post("/api/admin/appliances/nope/rotate", headers=csrf)).status == 404
    resp = await client.post(
        "/api/admin/appliances", json={"name": " ", "clinic": "Hill"}, headers=csrf
    )
    assert resp.status in (400, 422)

"""The server's HTTP API: login, sessions, CSRF, validation, floor control."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from server.app import build_app
from server.auth import hash_secret
from server.config import ServerConfig

PASSWORDS = {"alice": "alice-pw", "bob": "bob-pw"}
DEVICE_TOKEN = "device-token-123"


def _config(state_dir: Path, **http: Any) -> ServerConfig:
    return ServerConfig.model_validate(
        {
            "state_dir": str(state_dir),
            "http": {"cookie_secure": False, **http},
            "mqtt": {"port": 1, "username": "server", "password": "x"},  # nothing listens
            "experts": [
                {"username": u, "display_name": u.title(), "password_hash": hash_secret(p)}
                for u, p in PASSWORDS.items()
            ],
            "devices": [
                {
                    "device_id": "cam-1",
                    "clinic": "Hill Clinic",
                    "token_hash": hash_secret(DEVICE_TOKEN),
                }
            ],
            "consultations": [
                {
                    "id": "c1",
                    "patient_id": "P-1",
                    "appliance": "cam-1",
                    "chair": "alice",
                    "experts": ["alice", "bob"],
                }
            ],
        }
    )


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[TestClient[Any, Any]]:
    app = build_app(_config(tmp_path, max_failed_logins=3), asyncio.get_running_loop())
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


async def _login(client: TestClient[Any, Any], user: str) -> str:
    resp = await client.post("/api/login", json={"username": user, "password": PASSWORDS[user]})
    assert resp.status == 200
    cookie = resp.cookies["clinicam_session"]
    assert cookie["httponly"] and cookie["samesite"] == "Strict"
    return str((await resp.json())["csrf"])


async def test_pages_and_api_need_a_login(client: TestClient[Any, Any]) -> None:
    resp = await client.get("/room/c1", allow_redirects=False)
    assert resp.status == 302 and resp.headers["Location"].startswith("/login")
    assert (await client.get("/api/session")).status == 401
    assert (await client.get("/login")).status == 200


async def test_wrong_password_then_throttled(client: TestClient[Any, Any]) -> None:
    for _ in range(3):
        resp = await client.post("/api/login", json={"username": "alice", "password": "no"})
        assert resp.status == 401
    resp = await client.post("/api/login", json={"username": "alice", "password": "alice-pw"})
    assert resp.status == 429 and "Retry-After" in resp.headers


async def test_login_body_is_validated(client: TestClient[Any, Any]) -> None:
    json_type = {"Content-Type": "application/json"}
    resp = await client.post("/api/login", data=b"{nope", headers=json_type)
    assert resp.status == 400 and "JSON" in (await resp.json())["error"]
    resp = await client.post("/api/login", json={"username": "alice"})
    assert resp.status == 400 and "password" in (await resp.json())["error"]


async def test_a_body_that_arrives_in_pieces_is_read_whole(client: TestClient[Any, Any]) -> None:
    """On a slow link a body comes in several packets; one read returns only the first."""
    body = json.dumps({"username": "alice", "password": "alice-pw"}).encode()

    async def slowly() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 7):
            yield body[start : start + 7]
            await asyncio.sleep(0.05)

    json_type = {"Content-Type": "application/json"}
    resp = await client.post("/api/login", data=slowly(), headers=json_type)
    assert resp.status == 200, await resp.text()

    async def endless() -> AsyncIterator[bytes]:
        for _ in range(300):
            yield b" " * 1024
            await asyncio.sleep(0)

    # chunked, no length given
    resp = await client.post("/api/login", data=endless(), headers=json_type)
    assert resp.status == 413


async def test_state_changes_need_the_csrf_token(client: TestClient[Any, Any]) -> None:
    await _login(client, "alice")
    resp = await client.post("/api/consultations/c1/camera", json={"op": "ptz.home"})
    assert resp.status == 403 and "CSRF" in (await resp.json())["error"]


async def test_camera_command_validation_and_floor_control(client: TestClient[Any, Any]) -> None:
    csrf = await _login(client, "alice")
    headers = {"X-CSRF-Token": csrf}
    resp = await client.post(
        "/api/consultations/c1/camera", headers=headers, json={"op": "ptz.relative", "pan": "far"}
    )
    assert resp.status == 400 and "pan" in (await resp.json())["error"]
    # valid, from the chair, but no broker: a clear 503, not a hang or a 500
    resp = await client.post(
        "/api/consultations/c1/camera", headers=headers, json={"op": "ptz.relative", "pan": 5}
    )
    assert resp.status == 503
    await client.post("/api/logout", headers=headers)
    csrf = await _login(client, "bob")
    resp = await client.post(
        "/api/consultations/c1/camera",
        headers={"X-CSRF-Token": csrf},
        json={"op": "ptz.relative", "pan": 5},
    )
    assert resp.status == 403 and "alice" in (await resp.json())["error"]


async def test_uninvited_or_unknown_consultation(client: TestClient[Any, Any]) -> None:
    await _login(client, "bob")
    assert (await client.get("/api/consultations/nope")).status == 404
    info = await (await client.get("/api/consultations/c1")).json()
    assert info["clinic"] == "Hill Clinic" and info["control_holder"] == "alice"


async def test_device_stream_needs_its_token(client: TestClient[Any, Any]) -> None:
    offer = {"sdp": "v=0", "type": "offer"}
    resp = await client.post(
        "/api/appliances/cam-1/stream", json=offer, headers={"Authorization": "Bearer wrong"}
    )
    assert resp.status == 401
    resp = await client.post(
        "/api/appliances/cam-9/stream",
        json=offer,
        headers={"Authorization": f"Bearer {DEVICE_TOKEN}"},
    )
    assert resp.status == 401
    resp = await client.get(
        "/api/appliances/cam-1/stream/nosuch", headers={"Authorization": f"Bearer {DEVICE_TOKEN}"}
    )
    assert resp.status == 404


async def test_healthz_reports_broker_and_appliances(client: TestClient[Any, Any]) -> None:
    resp = await client.get("/healthz")
    body = await resp.json()
    assert resp.status == 503 and body["mqtt"] is False
    assert body["appliances"]["cam-1"] == {"online": False, "streaming": False, "frames": 0}


async def test_logins_and_camera_commands_are_in_the_audit_log(
    client: TestClient[Any, Any], tmp_path: Path
) -> None:
    from server.audit import verify_database
    from server.audit.log import AuditEntry
    from server.db import default_database_url
    from server.state import STATE

    await client.post("/api/login", json={"username": "bob", "password": "nope"})
    csrf = await _login(client, "bob")
    await client.post(
        "/api/consultations/c1/camera",
        headers={"X-CSRF-Token": csrf},
        json={"op": "ptz.relative", "pan": 5},
    )  # bob does not hold control
    database = client.server.app[STATE].database
    with database.session() as session:
        entries = [
            (e.actor, e.action, e.target)
            for e in session.query(AuditEntry).order_by(AuditEntry.seq)
        ]
    imported = [e for e in entries if e[0] == "config"]  # the file's directory, at start
    assert {action for _, action, _ in imported} == {
        "account.create",
        "device.enroll",
        "consultation.schedule",
    }
    assert entries[len(imported) :] == [
        ("bob", "login.failed", "session"),
        ("bob", "login", "session"),
        ("bob", "camera.refused", "patient:P-1"),
    ]
    result = verify_database(default_database_url(tmp_path))
    assert result.ok and result.entries == len(entries)

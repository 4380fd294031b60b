"""A server with two appliances (one with a current token, one with an argon2 token hash
from an older release) and clients that come from chosen loopback addresses."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from aiohttp import ClientSession, CookieJar, TCPConnector
from aiohttp.test_utils import TestServer

from server.app import build_app
from server.auth import hash_secret
from server.config import ServerConfig

PASSWORDS = {"alice": "alice-pw", "bob": "bob-pw", "carol": "carol-pw"}
LEGACY_TOKEN = "legacy-token-from-an-older-release"


def abuse_config(state_dir: Path, devices: list[dict[str, str]], **http: Any) -> ServerConfig:
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
                    "device_id": "cam-old",
                    "clinic": "Old Clinic",
                    "token_hash": hash_secret(LEGACY_TOKEN),
                },
                *devices,
            ],
            "consultations": [
                {
                    "id": "c1",
                    "patient_id": "P-1",
                    "appliance": "cam-old",
                    "chair": "alice",
                    "experts": ["alice", "bob"],
                }
            ],
        }
    )


@asynccontextmanager
async def running(config: ServerConfig) -> AsyncIterator[TestServer]:
    app = build_app(config, asyncio.get_running_loop())
    async with TestServer(app, host="127.0.0.1") as server:
        yield server


@asynccontextmanager
async def browser_from(address: str) -> AsyncIterator[ClientSession]:
    """A client whose requests come from ``address`` (any 127.x.y.z is this machine)."""
    async with ClientSession(
        connector=TCPConnector(local_addr=(address, 0), force_close=True),
        cookie_jar=CookieJar(unsafe=True),
    ) as http:
        yield http


async def login(
    http: ClientSession, server: TestServer, user: str, password: str | None = None
) -> tuple[int, str]:
    resp = await http.post(
        str(server.make_url("/api/login")),
        json={"username": user, "password": password or PASSWORDS[user]},
    )
    body = await resp.json()
    return resp.status, str(body.get("csrf") or body.get("error"))


async def device_get(http: ClientSession, server: TestServer, device: str, token: str) -> int:
    """An appliance's request: 404 (no such stream session) once its token is accepted."""
    resp = await http.get(
        str(server.make_url(f"/api/appliances/{device}/stream/none")),
        headers={"Authorization": f"Bearer {token}"},
    )
    await resp.read()
    return resp.status

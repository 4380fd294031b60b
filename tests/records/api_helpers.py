"""A real server (aiohttp + database) with several logged-in users, for records API tests."""

from __future__ import annotations

import asyncio
import contextlib
import io
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import ClientResponse, ClientSession, CookieJar
from aiohttp.test_utils import TestServer
from PIL import Image
from sqlalchemy import func, select

from server.app import build_app
from server.audit.log import AuditEntry
from server.auth import hash_secret
from server.config import ServerConfig
from server.db import Database
from server.records.models import Patient
from server.state import STATE, ServerState

PASSWORD = "correct horse battery"
# Set (to an s3 [blobs] section without its prefix) when the suite runs on SeaweedFS:
# CLINICAM_TEST_BLOBS=s3 (see tests/records/conftest.py).
SUITE_BLOBS: dict[str, Any] | None = None
USERS = {
    "alice": "chair",
    "bob": "expert",
    "carol": "expert",
    "root": "admin",
    "tech": "technician",
}


def records_config(state_dir: Path, database_url: str, **records: Any) -> ServerConfig:
    digest = hash_secret(PASSWORD)
    return ServerConfig.model_validate(
        {
            "state_dir": str(state_dir),
            "database_url": database_url,
            "http": {"cookie_secure": False, "max_failed_logins": 5},
            "mqtt": {"port": 1, "username": "server", "password": "x"},  # nothing listens
            "experts": [
                {"username": u, "display_name": u.title(), "password_hash": digest, "role": r}
                for u, r in USERS.items()
            ],
            "devices": [{"device_id": "cam-1", "clinic": "Hill Clinic", "token_hash": digest}],
            "patients": [
                {"id": "P-1", "name": "Jane Hill", "group": "hill"},
                {"id": "P-2", "name": "John Vale", "group": "vale"},
            ],
            "access_rules": [
                {"role": "chair", "groups": ["hill"], "operations": ["view", "edit"]},
                {"user": "bob", "patients": ["P-1"], "operations": ["view"], "max_minutes": 30},
                {"user": "bob", "patients": ["P-2"], "operations": ["view", "edit"]},
            ],
            "records": {"max_upload_mb": 2, **records},
            **(
                {"blobs": {**SUITE_BLOBS, "prefix": f"suite-{uuid.uuid4().hex[:12]}/"}}
                if SUITE_BLOBS is not None
                else {}
            ),
            # the shipped demonstration model, run as the demo runs it (tests of the
            # clinical default, synthetic branches off, set this to False)
            "models": {"demonstration_branches": True},
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


async def loopback_media_server(tmp_path: Path) -> tuple[TestServer, ServerConfig]:
    """A running records server whose WebRTC stays on 127.0.0.1 (SQLite in ``tmp_path``)."""
    config = records_config(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}")
    config = config.model_copy(
        update={"ice": config.ice.model_copy(update={"loopback_only": True})}
    )
    server = TestServer(build_app(config, asyncio.get_running_loop()), host="127.0.0.1")
    await server.start_server()
    return server, config


@dataclass
class User:
    """One browser: its own cookie jar, CSRF token and access tokens."""

    name: str
    http: ClientSession
    server: TestServer
    csrf: str = ""

    def url(self, path: str) -> str:
        return str(self.server.make_url(path))

    async def request(self, method: str, path: str, **kwargs: Any) -> ClientResponse:
        headers = {"X-CSRF-Token": self.csrf, **kwargs.pop("headers", {})}
        return await self.http.request(method, self.url(path), headers=headers, **kwargs)

    async def login(self) -> None:
        resp = await self.http.post(
            self.url("/api/login"), json={"username": self.name, "password": PASSWORD}
        )
        assert resp.status == 200, await resp.text()
        self.csrf = (await resp.json())["csrf"]

    async def access(self, patient: str, operations: Sequence[str] = ("view",)) -> dict[str, Any]:
        resp = await self.request(
            "POST", "/api/access", json={"patient": patient, "operations": list(operations)}
        )
        body: dict[str, Any] = await resp.json()
        body["http_status"] = resp.status
        return body


async def open_user(server: TestServer, name: str) -> User:
    user = User(name, ClientSession(cookie_jar=CookieJar(unsafe=True)), server)
    await user.login()
    return user


def png_bytes(
    width: int = 64, height: int = 48, colour: tuple[int, int, int] = (200, 30, 30)
) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, format="PNG")
    return out.getvalue()


def audit_actions(database: Database, actor: str | None = None) -> list[str]:
    with database.session() as session:
        query = select(AuditEntry.action).order_by(AuditEntry.seq)
        if actor is not None:
            query = query.where(AuditEntry.actor == actor)
        return list(session.scalars(query))


def count_rows(database: Database, table: type[Any]) -> int:
    with database.session() as session:
        return int(session.scalar(select(func.count()).select_from(table)) or 0)


class Site:
    """A running records server and its users (one browser each, opened on first use)."""

    def __init__(self, server: TestServer, state: ServerState) -> None:
        self.server = server
        self.state = state
        self.users: dict[str, User] = {}

    @property
    def database(self) -> Database:
        return self.state.database

    @property
    def state_dir(self) -> Path:
        return self.state.config.state_dir

    async def user(self, name: str) -> User:
        if name not in self.users:
            self.users[name] = await open_user(self.server, name)
        return self.users[name]

    def patient_ids(self) -> dict[str, int]:
        with self.database.session() as session:
            return {p.external_id: p.id for p in session.scalars(select(Patient))}


@contextlib.asynccontextmanager
async def running_site(config: ServerConfig) -> AsyncIterator[Site]:
    """``config``'s server on a loopback port; users and server closed afterwards."""
    app = build_app(config, asyncio.get_running_loop())
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    site = Site(server, app[STATE])
    try:
        yield site
    finally:
        for user in site.users.values():
            await user.http.close()
        await server.close()

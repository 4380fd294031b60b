"""The camera endpoint end to end: a real server, a real mosquitto and the simulated
appliance (its real router, motion and servo simulation) behind a TCP relay that the
tests can cut like a clinic's link.

* Only camera operations go through the camera endpoint (issue 15, class 2): an expert
  who holds control cannot update, reconfigure or un-privacy the appliance through it;
  the refusal is a 400, audited, and nothing reaches the appliance.
* A command the server could not confirm is reported as "not confirmed", never as
  "failed", and it cannot run once the server has stopped waiting (class 3).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from clinicam_app.broker import MosquittoBroker
from server.audit.log import AuditEntry
from server.auth import hash_secret
from server.config import ServerConfig
from tests.firmware.conftest import Rig, appliance_config, start_rig
from tests.firmware.test_command_api import sniffer
from tests.helpers import free_port
from tests.records.api_helpers import PASSWORD, Site, running_site


class LinkRelay:
    """A TCP relay between the appliance and the broker; ``cut()`` pulls the cable
    (open connections close, new ones are refused) until ``restore()``."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._relay, "127.0.0.1", self.port, reuse_address=True
        )

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        try:
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        finally:
            self._writers -= {writer, up_writer}
            self._tasks.discard(task)

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
        self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def restore(self) -> None:
        await self.start()

    async def close(self) -> None:
        if self._server is not None:
            await self.cut()


def _config(state_dir: Path, broker_port: int) -> ServerConfig:
    digest = hash_secret(PASSWORD)
    return ServerConfig.model_validate(
        {
            "state_dir": str(state_dir),
            "database_url": f"sqlite:///{state_dir / 'db.sqlite'}",
            "http": {"cookie_secure": False},
            "mqtt": {"port": broker_port, "username": "server", "password": "server-pw"},
            "experts": [
                {"username": u, "display_name": u.title(), "password_hash": digest, "role": r}
                for u, r in (("alice", "chair"), ("bob", "expert"))
            ],
            "devices": [{"device_id": "cam-a", "clinic": "Hill Clinic", "token_hash": digest}],
            "patients": [{"id": "P-1", "name": "Jane Hill"}],
            "consultations": [
                {
                    "id": "c1",
                    "patient_id": "P-1",
                    "appliance": "cam-a",
                    "chair": "alice",
                    "experts": ["alice", "bob"],
                }
            ],
        }
    )


@dataclass
class Setup:
    site: Site
    rig: Rig
    relay: LinkRelay
    broker: MosquittoBroker

    async def camera(self, user: str, command: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        expert = await self.site.user(user)
        resp = await expert.request("POST", "/api/consultations/c1/camera", json=command)
        body: dict[str, Any] = await resp.json()
        return resp.status, body

    def audit(self, action: str) -> list[dict[str, Any]]:
        with self.site.database.session() as session:
            return [
                dict(e.detail)
                for e in session.query(AuditEntry).order_by(AuditEntry.seq)
                if e.action == action
            ]


async def _until(predicate: Any, what: str, timeout_s: float = 20.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not predicate():
            await asyncio.sleep(0.05)


@pytest.fixture
async def setup(broker: MosquittoBroker, tmp_path: Path) -> AsyncIterator[Setup]:
    relay = LinkRelay(broker.port)
    await relay.start()
    rig = await start_rig(appliance_config(tmp_path / "appliance", relay.port))
    try:
        async with running_site(_config(tmp_path / "server", broker.port)) as site:
            await _until(
                lambda: site.state.appliances.available.get("cam-a") is True, "cam-a online"
            )
            yield Setup(site, rig, relay, broker)
    finally:
        await rig.appliance.stop()
        rig.sim.close()
        await relay.close()


async def test_the_camera_endpoint_forwards_camera_commands(setup: Setup) -> None:
    status, ack = await setup.camera("alice", {"op": "ptz.relative", "pan": 5})
    assert status == 200 and ack["ok"] and setup.rig.appliance.motion.target == (5, 0)
    status, ack = await setup.camera("alice", {"op": "zoom", "level": 2})
    assert status == 200 and ack["ok"]


NOT_CAMERA_COMMANDS = [
    {"op": "appliance.update", "release": "9.9.9", "sha256": "a" * 64, "size": 1000},
    {"op": "privacy", "enabled": False},
    {
        "op": "model.relevance",
        "patient": 1,
        "token": "t" * 40,
    },
]


@pytest.mark.parametrize("command", NOT_CAMERA_COMMANDS, ids=lambda c: str(c["op"]))
async def test_the_camera_endpoint_refuses_every_other_operation(
    setup: Setup, command: dict[str, Any]
) -> None:
    spy = sniffer(setup.broker, "server", "server-pw", ["clinicam/cam-a/cmd"])
    try:
        status, body = await setup.camera("alice", command)  # alice holds control
        assert status == 400, body
        assert "not a camera command" in body["error"]
        await asyncio.sleep(0.5)  # a command, had one been sent, would have arrived by now
        assert spy.of("clinicam/cam-a/cmd") == []  # nothing was sent to the appliance
    finally:
        spy.close()
    assert setup.rig.appliance.api.router.executed == 0
    refused = setup.audit("camera.refused")
    assert refused and refused[-1]["op"] == command["op"]


async def test_a_command_not_confirmed_in_time_is_reported_so_and_never_runs_later(
    setup: Setup,
) -> None:
    await setup.relay.cut()  # the clinic's link goes down …
    await _until(lambda: not setup.rig.appliance.api.link.connected.is_set(), "link down")
    status, body = await setup.camera("alice", {"op": "ptz.relative", "pan": 30})
    assert status == 504, body  # the outcome is unknown: not "failed", not "unavailable"
    assert "not confirmed" in body["error"]
    results = [d["result"] for d in setup.audit("camera.command")]
    assert results and results[-1].startswith("unconfirmed")
    await setup.relay.restore()  # … and comes back after the server gave up
    await _until(lambda: setup.rig.appliance.api.link.connected.is_set(), "link up", 30)
    await asyncio.sleep(1.0)  # a queued command would be delivered now
    assert setup.rig.appliance.motion.target == (0, 0)  # the camera never moved
    assert setup.rig.appliance.api.router.executed == 0

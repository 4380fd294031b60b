"""Appliance snapshots reach the patient's record, also after the server was away."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from pydantic import SecretStr

from clinicam.protocol import Snapshot
from firmware.config import ApplianceConfig, ServerLinkConfig
from firmware.control.snapshot import SnapshotTaker
from firmware.control.snapshot_upload import SnapshotUploader
from firmware.hardware.sim import SimRig, build_sim_rig
from server.app import build_app
from server.state import STATE
from tests.records.api_helpers import PASSWORD, audit_actions, open_user, records_config


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[SimRig]:
    config = ApplianceConfig.model_validate(
        {"state_dir": str(tmp_path / "appliance"), "sim": {"register_file": None}}
    )
    built = build_sim_rig(config)
    yield built
    built.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_snapshot_is_filed_after_the_server_comes_up(tmp_path: Path, rig: SimRig) -> None:
    port = _free_port()
    folder = tmp_path / "appliance" / "snapshots"
    link = ServerLinkConfig(url=f"http://127.0.0.1:{port}", token=SecretStr(PASSWORD))
    uploader = SnapshotUploader(link, "cam-1", folder)
    taker = SnapshotTaker(rig.camera, folder)
    info = await taker.take(Snapshot(id="bob-1", requested_by="bob", consultation="c1"))
    async with aiohttp.ClientSession() as http:
        # The server is not running yet: nothing is lost, the still stays pending.
        with pytest.raises(aiohttp.ClientConnectionError):
            await uploader.upload_pending(http)
        assert [p.name for p in uploader.pending()] == [info["file"]]

        app = build_app(
            records_config(tmp_path / "server", f"sqlite:///{tmp_path / 'server.db'}"),
            asyncio.get_running_loop(),
        )
        server = TestServer(app, host="127.0.0.1", port=port)
        await server.start_server()
        try:
            assert await uploader.upload_pending(http)
            assert uploader.pending() == []
            assert await uploader.upload_pending(http)  # idempotent: nothing left to send
            alice = await open_user(server, "alice")
            try:
                granted = await alice.access("P-1")
                pid = granted["patient_id"]
                listing = await (await alice.request("GET", f"/api/patients/{pid}/records")).json()
                photos = listing["records"]["clinical_photo"]
                assert len(photos) == 1
                photo = photos[0]
                assert photo["source"] == "appliance snapshot"
                assert photo["requested_by"] == "bob" and photo["consultation"] == "c1"
                assert photo["taken_at"] == info["taken_at"]
                assert (photo["width"], photo["height"]) == (info["width"], info["height"])
                assert photo["created_by"] == "device:cam-1"
            finally:
                await alice.http.close()
            assert "record.create" in audit_actions(app[STATE].database, "device:cam-1")
        finally:
            await server.close()


async def test_a_device_cannot_file_into_a_consultation_it_is_not_bound_to(
    tmp_path: Path, rig: SimRig
) -> None:
    folder = tmp_path / "snapshots"
    app = build_app(
        records_config(tmp_path / "server", f"sqlite:///{tmp_path / 'server.db'}"),
        asyncio.get_running_loop(),
    )
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        taker = SnapshotTaker(rig.camera, folder)
        await taker.take(Snapshot(id="x-1", requested_by="bob", consultation="other"))
        link = ServerLinkConfig(url=str(server.make_url("")).rstrip("/"), token=SecretStr(PASSWORD))
        uploader = SnapshotUploader(link, "cam-1", folder)
        async with aiohttp.ClientSession() as http:
            assert await uploader.upload_pending(http)  # settled: refused for good
        assert list(folder.glob("*.refused")) and not list(folder.glob("*.filed"))
        bad = SnapshotUploader(
            ServerLinkConfig(url=link.url, token=SecretStr("wrong")), "cam-1", folder
        )
        (next(folder.glob("*.refused"))).unlink()
        async with aiohttp.ClientSession() as http:
            assert not await bad.upload_pending(http)  # 401: kept for a retry, not dropped
        assert len(bad.pending()) == 1
    finally:
        await server.close()

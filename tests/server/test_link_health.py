"""Link health (R17) through a real server: an expert connected with real WebRTC shows up
with its bitrates and round trip, the clinic without a stream says its link is lost, and
the appliance's telemetry is validated before the room shows any of it."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from aiortc import RTCPeerConnection, VideoStreamTrack
from prometheus_client.exposition import generate_latest

from server.config import ServerConfig
from server.room_links import links_event
from server.state import STATE
from server.web.metrics import METRICS
from tests.archive.test_tap import h264_only
from tests.records.api_helpers import loopback_media_server, open_user
from tests.server.test_clinic_station import EXPERT_HZ, Tone, _offer
from tests.server.test_metrics import samples, value


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[tuple[TestServer, ServerConfig]]:
    server, config = await loopback_media_server(tmp_path)
    yield server, config
    await server.close()


async def test_the_room_sees_each_partys_link(site: tuple[TestServer, ServerConfig]) -> None:
    server, config = site
    state = server.app[STATE]
    alice = await open_user(server, "alice")
    expert = RTCPeerConnection(config.ice.rtc_configuration())
    received: list[Any] = []
    expert.on("track", received.append)
    try:
        cid = config.consultations[0].id
        ws = await alice.http.ws_connect(alice.url(f"/api/consultations/{cid}/ws"))
        expert.addTransceiver(VideoStreamTrack(), direction="sendrecv").setCodecPreferences(
            h264_only()
        )
        expert.addTransceiver(Tone(EXPERT_HZ), direction="sendrecv")
        status, body = await _offer(
            expert,
            alice.http,
            alice.url(f"/api/consultations/{cid}/webrtc"),
            headers={"X-CSRF-Token": alice.csrf},
        )
        assert status == 200, body
        room = state.rooms.get(config.consultations[0])

        async def drain(track: Any) -> None:
            while True:
                await track.recv()

        async with asyncio.timeout(20):
            while len(received) < 2:
                await asyncio.sleep(0.05)
        drains = [asyncio.create_task(drain(t)) for t in received]
        event: dict[str, Any] = {}
        async with asyncio.timeout(30):  # receiver reports come every few seconds
            while not {"rtt_ms", "up_kbps"} <= set(event.get("parties", {}).get("alice", {})):
                event = await links_event(state, room)
                await asyncio.sleep(1.0)
        alice_link = event["parties"]["alice"]
        assert alice_link["connected"] and alice_link["up_kbps"] > 0 < alice_link["down_kbps"]
        assert 0 <= alice_link["rtt_ms"] < 1000
        assert event["parties"]["bob"] == {"connected": False}
        clinic = event["parties"]["clinic"]
        assert clinic["connected"] is False and clinic["streaming"] is False
        assert event["parties"]["station"] == {"connected": False}
        # the metrics read what the room last showed (O7); the room's own task refreshes
        # it every few seconds, so compare with the figures as they are at the scrape
        shown = room.links["alice"].figures
        found = samples(generate_latest(server.app[METRICS].registry).decode())
        assert value(found, "clinicam_experts_online", consultation=cid) == 1
        up = value(
            found, "clinicam_link_bitrate_kbps", consultation=cid, party="alice", direction="up"
        )
        assert up == shown["up_kbps"] > 0
        rtt = value(found, "clinicam_link_round_trip_seconds", consultation=cid, party="alice")
        assert rtt == shown["rtt_ms"] / 1000
        assert value(found, "clinicam_link_connected", consultation=cid, party="clinic") == 0
        assert value(found, "clinicam_composite_frames_total", consultation=cid) > 0
        assert value(found, "clinicam_rooms_active") == 1
        assert "g2g_measured" not in alice_link  # no page said what it measures yet
        # the page's readout: its clock against the server's, then what it measured
        sent = time.time() * 1000
        await ws.send_json({"type": "clock", "sent": sent})
        reply = await next_of_type(ws, "clock")
        assert reply["sent"] == sent and sent <= reply["server"] <= time.time() * 1000
        await ws.send_json({"type": "latency", "ms": 1e9})  # not a latency: refused
        assert "ms" in (await next_of_type(ws, "error"))["message"]
        await ws.send_json({"type": "latency", "ms": 123})
        async with asyncio.timeout(10):
            while (await links_event(state, room))["parties"]["alice"].get("g2g_ms") != 123:
                await asyncio.sleep(0.05)
        assert (await links_event(state, room))["parties"]["alice"]["g2g_measured"] is True
        found = samples(generate_latest(server.app[METRICS].registry).decode())
        latency = value(
            found, "clinicam_live_view_latency_seconds", consultation=cid, party="alice"
        )
        assert latency == 0.123
        for task in drains:
            task.cancel()
        await ws.close()
    finally:
        await expert.close()
        await alice.http.close()


async def next_of_type(ws: Any, kind: str) -> dict[str, Any]:
    """The next message of type ``kind`` on the room socket (room states pass by)."""
    async with asyncio.timeout(10):
        while True:
            message: dict[str, Any] = json.loads((await ws.receive()).data)
            if message["type"] == kind:
                return message


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b"[1, 2]",
        json.dumps({"link": {"target_kbps": -5, "loss": 0, "rung": 0, "rungs": 4}}).encode(),
        json.dumps({"link": {"target_kbps": 500, "loss": 2.0, "rung": 0, "rungs": 4}}).encode(),
        json.dumps(
            {"link": {"target_kbps": 500, "loss": 0, "rung": 0, "rungs": 4, "x": 1}}
        ).encode(),
    ],
)
async def test_malformed_telemetry_is_ignored(
    site: tuple[TestServer, ServerConfig], payload: bytes
) -> None:
    server, _ = site
    link = server.app[STATE].appliances
    good = {"target_kbps": 470, "remb_kbps": 560, "loss": 0.02, "rtt_ms": 151.0, "rung": 2}
    link._telemetry("cam-1", json.dumps({"link": {**good, "rungs": 4}}).encode())
    before = link.uplinks["cam-1"]
    link._telemetry("cam-1", payload)
    assert link.uplinks["cam-1"] is before, "a bad report changes nothing"
    assert before[1].rtt_ms == 151.0

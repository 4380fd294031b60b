"""The clinic station through a real server: waits, joins, hears the experts and is heard.

A real aiohttp server and real WebRTC (aiortc peers on 127.0.0.1): the station and an
expert each send their own tone; what each receives is decoded and its spectrum checked.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import aiohttp
import av
import numpy as np
import pytest
from aiohttp.test_utils import TestServer
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription, VideoStreamTrack

from clinicam.ice import keep_loopback_candidates
from clinicam.protocol import ApplianceState, PtzState
from server.config import ServerConfig
from server.media.layout import LIVE, RELEVANCE
from server.state import STATE
from tests.archive.test_tap import h264_only
from tests.records.api_helpers import PASSWORD, loopback_media_server, open_user

RATE = 48_000
STATION_HZ = 700.0
EXPERT_HZ = 1900.0


class Tone(MediaStreamTrack):
    """A steady sine tone in real time, as a microphone would send it."""

    kind = "audio"

    def __init__(self, freq: float) -> None:
        super().__init__()
        self._freq, self._pts, self._start = freq, 0, time.monotonic()

    async def recv(self) -> av.AudioFrame:
        await asyncio.sleep(max(0.0, self._start + self._pts / RATE - time.monotonic()))
        t = (self._pts + np.arange(960)) / RATE
        samples = (9000 * np.sin(2 * np.pi * self._freq * t)).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = RATE, self._pts, Fraction(1, RATE)
        self._pts += 960
        return frame


def _power(samples: np.ndarray, freq: float) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64)))
    freqs = np.fft.rfftfreq(len(samples), 1 / RATE)
    band = (freqs > freq - 40) & (freqs < freq + 40)
    return float(spectrum[band].max())


async def _listen(track: Any, seconds: float = 1.0) -> np.ndarray:
    """Decoded mono samples of ``track`` after it has settled."""
    chunks: list[np.ndarray] = []
    async with asyncio.timeout(20):
        for _ in range(25):  # let the mix fill up first
            await track.recv()
        while sum(len(c) for c in chunks) < seconds * RATE:
            frame = await track.recv()
            data = frame.to_ndarray().reshape(-1, len(frame.layout.channels))
            chunks.append(data.mean(axis=1))
    return np.concatenate(chunks)


async def _offer(pc: RTCPeerConnection, http: aiohttp.ClientSession, url: str, **kw: Any) -> Any:
    await pc.setLocalDescription(await pc.createOffer())
    async with http.post(url, json={"sdp": pc.localDescription.sdp, "type": "offer"}, **kw) as r:
        body = await r.json()
        if r.status != 200:
            return r.status, body
    sdp = keep_loopback_candidates(body["sdp"])
    await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
    return 200, body


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[tuple[TestServer, ServerConfig]]:
    server, config = await loopback_media_server(tmp_path)
    yield server, config
    await server.close()


async def test_the_station_waits_then_hears_the_experts_and_is_heard(
    site: tuple[TestServer, ServerConfig],
) -> None:
    server, config = site
    state = server.app[STATE]
    device = {"Authorization": f"Bearer {PASSWORD}"}
    base = "/api/appliances/cam-1/station"
    station = RTCPeerConnection(config.ice.rtc_configuration())
    expert = RTCPeerConnection(config.ice.rtc_configuration())
    received: dict[str, dict[str, Any]] = {"station": {}, "expert": {}}
    station.on("track", lambda t: received["station"].setdefault(t.kind, t))
    expert.on("track", lambda t: received["expert"].setdefault(t.kind, t))
    alice = await open_user(server, "alice")
    try:
        async with aiohttp.ClientSession() as http:
            for headers, status in (({}, 401), ({"Authorization": "Bearer wrong"}, 401)):
                async with http.get(server.make_url(base), headers=headers) as resp:
                    assert resp.status == status
            async with http.get(
                server.make_url("/api/appliances/nope/station"), headers=device
            ) as r:
                assert r.status == 401
            async with http.get(server.make_url(base), headers=device) as resp:
                assert (await resp.json())["state"] == "waiting"  # no expert in the room yet
            station.addTransceiver(Tone(STATION_HZ), direction="sendrecv")
            station.addTransceiver("video", direction="recvonly")
            status, body = await _offer(
                station, http, str(server.make_url(f"{base}/webrtc")), headers=device
            )
            assert status == 409, body

            cid = config.consultations[0].id
            ws = await alice.http.ws_connect(alice.url(f"/api/consultations/{cid}/ws"))
            async with http.get(server.make_url(base), headers=device) as resp:
                live = await resp.json()
            assert live["state"] == "live" and live["consultation"]["id"] == cid

            station = RTCPeerConnection(config.ice.rtc_configuration())  # a fresh offer
            station.on("track", lambda t: received["station"].setdefault(t.kind, t))
            station.addTransceiver(Tone(STATION_HZ), direction="sendrecv")
            station.addTransceiver("video", direction="recvonly").setCodecPreferences(h264_only())
            status, body = await _offer(
                station, http, str(server.make_url(f"{base}/webrtc")), headers=device
            )
            assert status == 200, body

            webcam = expert.addTransceiver(VideoStreamTrack(), direction="sendrecv")
            webcam.setCodecPreferences(h264_only())
            expert.addTransceiver(Tone(EXPERT_HZ), direction="sendrecv")
            status, body = await _offer(
                expert,
                alice.http,
                alice.url(f"/api/consultations/{cid}/webrtc"),
                headers={"X-CSRF-Token": alice.csrf},
            )
            assert status == 200, body

            async with asyncio.timeout(20):
                while len(received["station"]) < 2 or len(received["expert"]) < 2:
                    await asyncio.sleep(0.05)
            at_station = await _listen(received["station"]["audio"])
            at_expert = await _listen(received["expert"]["audio"])
            assert _power(at_station, EXPERT_HZ) > 20 * _power(at_station, STATION_HZ)
            assert _power(at_expert, STATION_HZ) > 20 * _power(at_expert, EXPERT_HZ)

            room = state.rooms.get(config.consultations[0])
            assert room.station.connected
            track = room.station.track
            assert track is not None
            windows = room.layout_for(track.main).windows
            assert LIVE in windows and RELEVANCE not in windows  # never decision support
            assert "expert:alice" in windows and "expert:bob" in windows
            async with asyncio.timeout(20):
                picture = await received["station"]["video"].recv()
            assert picture.width == config.live.width

            async with http.post(
                server.make_url(f"{base}/controls"), headers=device, json={"muted": True}
            ) as r:
                assert r.status == 200
            assert room.state_for("alice")["station"]["muted"] is True
            async with http.post(
                server.make_url(f"{base}/controls"), headers=device, json={"muted": "yes"}
            ) as r:
                assert r.status == 400  # validated: nothing changes
            assert room.station.muted is True

            async with http.post(
                server.make_url(f"{base}/controls"), headers=device, json={"attention": True}
            ) as r:
                assert r.status == 200
            async with asyncio.timeout(10):
                while (await ws.receive_json()).get("type") != "attention":
                    pass

            # Privacy on the appliance (its retained state) silences the station for everyone.
            appliance = ApplianceState(ptz=PtzState(pan=0.0, tilt=0.0), privacy=True)
            state.appliances.on_state("cam-1", appliance)
            assert room.state_for("alice")["station"]["privacy"] is True
            quiet = await _listen(received["expert"]["audio"])
            assert _power(quiet, STATION_HZ) < 0.05 * _power(at_expert, STATION_HZ)
            state.appliances.on_state("cam-1", appliance.model_copy(update={"privacy": False}))
            await ws.close()
    finally:
        await station.close()
        await expert.close()
        await alice.http.close()
    async with asyncio.timeout(10):
        while room.station.connected:
            await asyncio.sleep(0.05)

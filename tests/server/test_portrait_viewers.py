"""A viewer's screen shape, said with their WebRTC offer, chooses their composite's frame:
a phone held upright gets a portrait frame, everyone else the configured landscape one."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiohttp.test_utils import TestServer
from aiortc import RTCPeerConnection, RTCSessionDescription, VideoStreamTrack

from clinicam.ice import keep_loopback_candidates
from server.config import LiveViewConfig, ServerConfig
from server.media.downlink import shaped
from server.media.layout import LANDSCAPE, LIVE, PORTRAIT
from server.media.watermark import Watermark
from server.state import STATE
from tests.archive.test_tap import h264_only
from tests.records.api_helpers import User, loopback_media_server, open_user
from tests.server.test_downlink import _decoded, _mixer
from tests.server.test_watermark import WHEN, _grey
from tests.server.test_watermark import _mixer as _marked_mixer

CONFIG = LiveViewConfig(width=1280, height=720, bitrate_kbps=2500)


def test_a_portrait_frame_gets_the_same_bits_per_pixel() -> None:
    portrait = shaped(CONFIG, shape=PORTRAIT)
    assert (portrait.width, portrait.height) == (720, 1080)
    per_pixel = CONFIG.bitrate_kbps / (CONFIG.width * CONFIG.height)
    assert portrait.bitrate_kbps / (720 * 1080) == pytest.approx(per_pixel, rel=0.01)
    assert shaped(CONFIG, LANDSCAPE) is CONFIG


async def test_each_shape_gets_its_own_frame_and_equal_shapes_share_an_encode() -> None:
    mixer = _mixer()
    phone = mixer.new_track(LIVE, "ada", shape=PORTRAIT)
    desk = mixer.new_track(LIVE, "bob")
    try:
        got_phone, got_desk = await asyncio.gather(_decoded(phone, 3), _decoded(desk, 3))
        assert {(w, h) for w, h, _ in got_phone} == {(720, 1080)}
        assert {(w, h) for w, h, _ in got_desk} == {(1280, 720)}
        assert phone.variant != desk.variant
        twin = mixer.new_track(LIVE, "cy", shape=PORTRAIT)
        assert twin.variant == phone.variant  # same main window and shape: one encode
        mixer.remove(twin)
        with pytest.raises(ValueError, match="shape"):
            mixer.new_track(LIVE, "dee", shape="square")
    finally:
        await mixer.close()


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[tuple[TestServer, ServerConfig]]:
    server, config = await loopback_media_server(tmp_path)
    yield server, config
    await server.close()


async def _join(
    user: User, config: ServerConfig, shape: str | None
) -> tuple[RTCPeerConnection, Any]:
    """Offer webcam up / composite down (with ``shape`` if given); the composite track."""
    cid = config.consultations[0].id
    pc = RTCPeerConnection(config.ice.rtc_configuration())
    received: list[Any] = []
    pc.on("track", received.append)
    pc.addTransceiver(VideoStreamTrack(), direction="sendrecv").setCodecPreferences(h264_only())
    pc.addTransceiver("audio", direction="recvonly")  # the room's voices
    await pc.setLocalDescription(await pc.createOffer())
    body: dict[str, Any] = {"sdp": pc.localDescription.sdp, "type": "offer"}
    if shape is not None:
        body["shape"] = shape
    resp = await user.request("POST", f"/api/consultations/{cid}/webrtc", json=body)
    answer = await resp.json()
    assert resp.status == 200, answer
    sdp = keep_loopback_candidates(answer["sdp"])
    await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
    async with asyncio.timeout(20):
        while not any(t.kind == "video" for t in received):
            await asyncio.sleep(0.05)
    return pc, next(t for t in received if t.kind == "video")


async def _frame_size(track: Any) -> tuple[int, int]:
    async with asyncio.timeout(30):
        frame = await track.recv()
    return int(frame.width), int(frame.height)


async def test_a_phone_gets_a_portrait_frame_and_a_desk_a_landscape_one(
    site: tuple[TestServer, ServerConfig],
) -> None:
    server, config = site
    state = server.app[STATE]
    cid = config.consultations[0].id
    alice, bob = await open_user(server, "alice"), await open_user(server, "bob")
    pcs: list[RTCPeerConnection] = []
    try:
        phone_pc, phone = await _join(alice, config, shape=PORTRAIT)
        desk_pc, desk = await _join(bob, config, None)
        pcs += [phone_pc, desk_pc]
        assert await _frame_size(phone) == (720, 1080)
        assert await _frame_size(desk) == (1280, 720)
        room = state.rooms.get(config.consultations[0])
        seen = room.state_for("alice")
        assert seen["size"] == [720, 1080]  # what the page maps its clicks with
        assert seen["tiles"][0][:4] == [LIVE, 0, 0, 720]
        assert seen["video"]["size"] == [720, 1080]
        assert room.state_for("bob")["size"] == [1280, 720]

        bad = await alice.request(
            "POST",
            f"/api/consultations/{cid}/webrtc",
            json={"sdp": "v=0", "type": "offer", "shape": "square"},
        )
        assert bad.status == 400
        assert "shape" in (await bad.text())
    finally:
        for pc in pcs:
            await pc.close()
        await alice.http.close()
        await bob.http.close()


def test_the_watermark_fits_a_portrait_frame() -> None:
    mark = Watermark("Dr. Ada Lovelace-Byron", 720, 1080)
    frame = _grey(720, 1080)
    after = mark.apply(frame, WHEN).to_ndarray(format="yuv420p")[:1080]
    columns = np.flatnonzero((after != frame.to_ndarray(format="yuv420p")[:1080]).any(axis=0))
    assert columns.size and columns[0] > 0 and columns[-1] < 719, "the text is not cut off"


async def test_a_watermarked_phone_gets_its_own_marked_portrait_frame() -> None:
    mixer = _marked_mixer(True)
    phone = mixer.new_track(LIVE, "ada", shape=PORTRAIT)
    desk = mixer.new_track(LIVE, "ada")  # the same expert's other screen
    try:
        got_phone, got_desk = await asyncio.gather(_decoded(phone, 2), _decoded(desk, 2))
        assert {(w, h) for w, h, _ in got_phone} == {(180, 270)}
        assert {(w, h) for w, h, _ in got_desk} == {(320, 180)}
    finally:
        await mixer.close()

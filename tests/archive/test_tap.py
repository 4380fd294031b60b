"""tap_encoded_video on a real aiortc receiver: the archive gets H.264, the decoder still works.

Two RTCPeerConnections in this process, connected over 127.0.0.1 only (host
candidates are restricted to loopback, no STUN/TURN servers), the sender encoding a
numpy test pattern with aiortc's own H.264 encoder.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from fractions import Fraction

import av
import numpy as np
import pytest
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCRtpSender,
)

from clinicam.segments import NAL_IDR, nal_unit_types
from server.archive.tap import LOG_EVERY_N_FAILURES, tap_encoded_video

WIDTH, HEIGHT, FPS = 320, 240, 30
TIME_BASE = Fraction(1, 90_000)


class PatternTrack(MediaStreamTrack):
    """A moving colour pattern at FPS frames per second."""

    kind = "video"

    def __init__(self) -> None:
        super().__init__()
        self._index = 0
        yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
        self._base = np.stack([xx % 256, yy % 256, (xx + yy) % 256], axis=-1).astype(np.uint8)

    async def recv(self) -> av.VideoFrame:
        await asyncio.sleep(1 / FPS)
        picture = np.roll(self._base, self._index * 4, axis=1)
        frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
        frame.pts = self._index * 90_000 // FPS
        frame.time_base = TIME_BASE
        self._index += 1
        return frame


@dataclass
class Received:
    receiver: RTCRtpReceiver | None = None
    track: MediaStreamTrack | None = None
    frames: list[tuple[bytes, int]] = field(default_factory=list)


@pytest.fixture
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """aioice gathers only 127.0.0.1: nothing leaves this machine."""
    monkeypatch.setattr("aioice.ice.get_host_addresses", lambda use_ipv4, use_ipv6: ["127.0.0.1"])


def h264_only() -> list[object]:
    capabilities = RTCRtpSender.getCapabilities("video")
    return [c for c in capabilities.codecs if c.mimeType.lower() == "video/h264"]


@asynccontextmanager
async def tapped_call(
    sink: Callable[[bytes, int], None] | None = None,
) -> AsyncIterator[Received]:
    """A sender → receiver video call whose receiver is tapped from the "track" event."""
    sender = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    receiver = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    received = Received()

    def record(data: bytes, timestamp: int) -> None:
        received.frames.append((data, timestamp))

    @receiver.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        for transceiver in receiver.getTransceivers():
            if transceiver.receiver.track is track:
                tap_encoded_video(transceiver.receiver, sink or record)
                received.receiver, received.track = transceiver.receiver, track

    try:
        transceiver = sender.addTransceiver(PatternTrack(), direction="sendonly")
        transceiver.setCodecPreferences(h264_only())
        await sender.setLocalDescription(await sender.createOffer())
        assert_loopback(sender.localDescription.sdp)
        await receiver.setRemoteDescription(sender.localDescription)
        await receiver.setLocalDescription(await receiver.createAnswer())
        assert_loopback(receiver.localDescription.sdp)
        await sender.setRemoteDescription(receiver.localDescription)
        assert received.track is not None, "the 'track' event did not fire"
        yield received
    finally:
        await sender.close()
        await receiver.close()


def assert_loopback(sdp: str) -> None:
    candidates = [line for line in sdp.splitlines() if line.startswith("a=candidate:")]
    assert candidates and all(line.split()[4] == "127.0.0.1" for line in candidates)


async def decoded_frames(track: MediaStreamTrack, count: int) -> list[object]:
    return [await track.recv() for _ in range(count)]


@pytest.mark.usefixtures("loopback_only")
async def test_the_sink_gets_annexb_h264_and_decoding_still_works() -> None:
    async with asyncio.timeout(20), tapped_call() as call:
        assert call.track is not None
        frames = await decoded_frames(call.track, 20)
        while len(call.frames) < 20:
            await asyncio.sleep(0.05)

        last = frames[-1]
        assert all(isinstance(f, av.VideoFrame) for f in frames) and isinstance(last, av.VideoFrame)
        assert (last.width, last.height) == (WIDTH, HEIGHT)
        start_codes = (b"\x00\x00\x00\x01", b"\x00\x00\x01")
        assert all(data.startswith(start_codes) for data, _ in call.frames)
        assert any(NAL_IDR in nal_unit_types(data) for data, _ in call.frames)
        stamps = [timestamp for _, timestamp in call.frames]
        assert all(b > a for a, b in itertools.pairwise(stamps))

        # What the tap saw decodes on its own, to the size the sender sent.
        decoder = av.CodecContext.create("h264", "r")
        pictures = [p for data, _ in call.frames for p in decoder.decode(av.Packet(data))]
        assert pictures and (pictures[0].width, pictures[0].height) == (WIDTH, HEIGHT)

        assert call.receiver is not None
        with pytest.raises(RuntimeError, match="already started"):
            tap_encoded_video(call.receiver, lambda data, timestamp: None)


@pytest.mark.usefixtures("loopback_only")
async def test_a_failing_sink_is_logged_sparingly_and_never_breaks_decoding(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[int] = []

    def broken_sink(data: bytes, timestamp: int) -> None:
        calls.append(timestamp)
        raise OSError("disk full")

    with caplog.at_level(logging.ERROR, logger="server.archive.tap"):
        async with asyncio.timeout(20), tapped_call(broken_sink) as call:
            assert call.track is not None
            frames = await decoded_frames(call.track, 20)
    assert len(frames) == 20 and len(calls) >= 20
    logged = [r for r in caplog.records if r.name == "server.archive.tap"]
    assert 1 <= len(logged) <= len(calls) // LOG_EVERY_N_FAILURES + 1
    assert logged[0].exc_info is not None


async def test_unexpected_aiortc_internals_fail_loudly() -> None:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        ok = pc.addTransceiver("video", direction="recvonly")
        tap_encoded_video(ok.receiver, lambda data, timestamp: None)  # right after addTransceiver
        with pytest.raises(RuntimeError, match="already tapped"):
            tap_encoded_video(ok.receiver, lambda data, timestamp: None)

        changed = pc.addTransceiver("video", direction="recvonly")
        del changed.receiver._RTCRtpReceiver__decoder_queue  # as if aiortc renamed it
        with pytest.raises(RuntimeError, match="aiortc internals changed"):
            tap_encoded_video(changed.receiver, lambda data, timestamp: None)
    finally:
        await pc.close()

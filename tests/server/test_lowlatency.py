"""server.media.lowlatency: frames leave at their marker bit; the playout delay goes out.

The buffer is tested packet by packet against aiortc's own, then in a real loopback
call (two aiortc peers on 127.0.0.1); the playout-delay extension is checked in the
negotiated SDP and in the raw RTP bytes that arrive at the other peer.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import av
import pytest
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection
from aiortc.jitterbuffer import JitterBuffer
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import HeaderExtensionsMap, RtpPacket, unpack_header_extensions

from server.media.lowlatency import (
    PLAYOUT_DELAY_ID,
    PLAYOUT_DELAY_URI,
    MarkerJitterBuffer,
    negotiate_playout_delay,
    playout_delay_value,
    playout_delay_writer,
    release_frames_at_marker,
    send_playout_delay,
)
from server.media.rtp_extensions import ExtraExtensionsMap
from tests.archive.test_tap import PatternTrack, assert_loopback, h264_only

MID_URI = "urn:ietf:params:rtp-hdrext:sdes:mid"
ABS_SEND_TIME_URI = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"


def rtp(seq: int, timestamp: int, marker: bool = False, padding: bool = False) -> RtpPacket:
    packet = RtpPacket(sequence_number=seq, timestamp=timestamp, marker=int(marker))
    packet._data = b"" if padding else bytes([seq])  # type: ignore[attr-defined]  # depayloaded
    return packet


def feed(buffer: JitterBuffer, packets: list[RtpPacket]) -> list[tuple[bytes, int]]:
    out = []
    for packet in packets:
        _, frame = buffer.add(packet)
        if frame is not None:
            out.append((frame.data, frame.timestamp))
    return out


# --- the buffer, packet by packet -------------------------------------------------------


def test_a_frame_leaves_at_its_marker_where_aiortc_waits_for_the_next_frame() -> None:
    frame = [rtp(10, 3000), rtp(11, 3000), rtp(12, 3000, marker=True)]
    assert feed(JitterBuffer(512, is_video=True), frame) == []  # aiortc: held back
    assert feed(MarkerJitterBuffer(512, is_video=True), frame) == [(b"\x0a\x0b\x0c", 3000)]


def test_consecutive_frames_each_leave_once_and_whole() -> None:
    packets = [rtp(1, 100), rtp(2, 100, True), rtp(3, 200, True), rtp(4, 300), rtp(5, 300, True)]
    assert feed(MarkerJitterBuffer(512, is_video=True), packets) == [
        (b"\x01\x02", 100),
        (b"\x03", 200),
        (b"\x04\x05", 300),
    ]


def test_a_gap_holds_the_frame_until_the_missing_packet_arrives() -> None:
    buffer = MarkerJitterBuffer(512, is_video=True)
    assert feed(buffer, [rtp(20, 900), rtp(22, 900, True)]) == []
    assert feed(buffer, [rtp(21, 900)]) == [(b"\x14\x15\x16", 900)]


def test_without_a_marker_the_next_frame_still_releases_it() -> None:
    buffer = MarkerJitterBuffer(512, is_video=True)
    assert feed(buffer, [rtp(1, 100), rtp(2, 100)]) == []
    assert feed(buffer, [rtp(3, 200, True)]) == [(b"\x01\x02", 100)]
    assert feed(buffer, [rtp(4, 300)]) == [(b"\x03", 200)]


def test_padding_after_a_released_frame_never_becomes_an_empty_frame() -> None:
    """Chromium probes bandwidth with payload-less packets carrying the last timestamp."""
    buffer = MarkerJitterBuffer(512, is_video=True)
    probes = [rtp(seq, 100, padding=True) for seq in range(2, 20)]
    got = feed(buffer, [rtp(1, 100, True), *probes, rtp(20, 200), rtp(21, 200, True)])
    assert got == [(b"\x01", 100), (b"\x14\x15", 200)]
    assert all(data for data, _ in got)  # an empty packet would make the decoder drain


def test_late_packets_of_a_released_frame_are_dropped_as_by_aiortc() -> None:
    buffer = MarkerJitterBuffer(512, is_video=True)
    assert feed(buffer, [rtp(5, 100, True)]) == [(b"\x05", 100)]
    assert feed(buffer, [rtp(4, 100)]) == []  # older than the origin: ignored
    assert feed(buffer, [rtp(6, 200, True)]) == [(b"\x06", 200)]


# --- the playout-delay extension --------------------------------------------------------


def test_playout_delay_value_is_two_12_bit_counts_of_10_ms() -> None:
    assert playout_delay_value(0, 0) == b"\x00\x00\x00"
    assert playout_delay_value(100, 400) == bytes([0x00, 0xA0, 40])
    assert playout_delay_value(40950, 40950) == b"\xff\xff\xff"
    for low, high in [(-10, 0), (200, 100), (0, 40960)]:
        with pytest.raises(ValueError, match="playout delay"):
            playout_delay_value(low, high)


def test_the_map_adds_the_element_and_keeps_aiortcs_own() -> None:
    parameters = RTCRtpParameters(
        headerExtensions=[
            RTCRtpHeaderExtensionParameters(id=1, uri=MID_URI),
            RTCRtpHeaderExtensionParameters(id=3, uri=ABS_SEND_TIME_URI),
            RTCRtpHeaderExtensionParameters(id=9, uri=PLAYOUT_DELAY_URI),
        ]
    )
    ours = ExtraExtensionsMap()
    ours.add(PLAYOUT_DELAY_URI, playout_delay_writer(0, 100))
    ours.configure(parameters)
    plain = HeaderExtensionsMap()
    plain.configure(parameters)
    packet = rtp(1, 100, True)
    packet.extensions.mid = "0"
    packet.extensions.abs_send_time = 0x123456

    parsed = RtpPacket.parse(packet.serialize(ours), plain)
    assert (parsed.extensions.mid, parsed.extensions.abs_send_time) == ("0", 0x123456)
    raw = packet.serialize(ours)
    profile, length = int.from_bytes(raw[12:14]), 4 * int.from_bytes(raw[14:16])
    elements = dict(unpack_header_extensions(profile, raw[16 : 16 + length]))
    assert elements[9] == bytes([0, 0, 10])

    unnegotiated = ExtraExtensionsMap()
    unnegotiated.add(PLAYOUT_DELAY_URI, playout_delay_writer(0, 0))
    unnegotiated.configure(RTCRtpParameters(headerExtensions=parameters.headerExtensions[:2]))
    assert packet.serialize(unnegotiated) == packet.serialize(plain)  # nothing added


# --- a real call ---------------------------------------------------------------------------


class FewFrames(MediaStreamTrack):
    """``count`` frames of a moving pattern, then nothing more (the camera paused)."""

    kind = "video"

    def __init__(self, count: int) -> None:
        super().__init__()
        self._pattern = PatternTrack()
        self._left = count

    async def recv(self) -> av.VideoFrame:
        if self._left == 0:
            await asyncio.Future()  # never resolves: no next frame to release the last one
        self._left -= 1
        return await self._pattern.recv()


@asynccontextmanager
async def call(track: MediaStreamTrack, *, marker: bool) -> AsyncIterator[dict[str, Any]]:
    """An aiortc "browser" offering to receive, and a "server" answering with ``track``."""
    negotiate_playout_delay()
    browser = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    server = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    seen: dict[str, Any] = {"raw": []}
    try:
        transceiver = browser.addTransceiver("video", direction="recvonly")
        transceiver.setCodecPreferences(h264_only())
        if marker:
            release_frames_at_marker(transceiver.receiver)
        dtls = transceiver.receiver.transport
        handle = dtls._handle_rtp_data

        async def watch(data: bytes, arrival_time_ms: int) -> None:
            seen["raw"].append(data)  # what arrived, before aiortc parses it
            await handle(data, arrival_time_ms)

        dtls._handle_rtp_data = watch
        await browser.setLocalDescription(await browser.createOffer())
        await server.setRemoteDescription(browser.localDescription)
        sender = server.addTrack(track)
        send_playout_delay(sender, 0, 0)
        await server.setLocalDescription(await server.createAnswer())
        assert_loopback(server.localDescription.sdp)
        await browser.setRemoteDescription(server.localDescription)
        seen["answer"] = server.localDescription.sdp
        seen["track"] = transceiver.receiver.track
        seen["sender"] = sender
        yield seen
    finally:
        await browser.close()
        await server.close()


async def count_decoded(track: MediaStreamTrack, settle_s: float = 1.5) -> int:
    count = 0
    while True:
        try:
            async with asyncio.timeout(settle_s):
                await track.recv()
        except TimeoutError:
            return count
        count += 1


@pytest.mark.usefixtures("loopback_only")
@pytest.mark.parametrize("marker", [False, True], ids=["aiortc", "marker"])
async def test_the_last_frame_before_a_pause_is_shown_only_with_the_marker_buffer(
    marker: bool,
) -> None:
    async with asyncio.timeout(30), call(FewFrames(8), marker=marker) as seen:
        decoded = await count_decoded(seen["track"])
    assert decoded == (8 if marker else 7)


@pytest.mark.usefixtures("loopback_only")
async def test_the_playout_delay_is_negotiated_and_on_every_packet() -> None:
    async with asyncio.timeout(30), call(FewFrames(5), marker=True) as seen:
        await count_decoded(seen["track"])
    assert f"a=extmap:{PLAYOUT_DELAY_ID} {PLAYOUT_DELAY_URI}" in seen["answer"]
    video = [d for d in seen["raw"] if len(d) > 12 and 96 <= (d[1] & 0x7F) <= 127]
    assert len(video) >= 5
    for data in video:
        assert data[0] & 0x10, "no header extension at all"
        profile, length = int.from_bytes(data[12:14]), 4 * int.from_bytes(data[14:16])
        elements = dict(unpack_header_extensions(profile, data[16 : 16 + length]))
        assert elements.get(PLAYOUT_DELAY_ID) == b"\x00\x00\x00"


async def test_installing_late_or_on_audio_is_refused() -> None:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        audio = pc.addTransceiver("audio")
        with pytest.raises(ValueError, match="marker"):
            release_frames_at_marker(audio.receiver)
        video = pc.addTransceiver("video")
        release_frames_at_marker(video.receiver)
        release_frames_at_marker(video.receiver)  # idempotent
        with pytest.raises(RuntimeError, match="internals"):
            release_frames_at_marker(object())  # type: ignore[arg-type]
        with pytest.raises(RuntimeError, match="internals"):
            send_playout_delay(object())  # type: ignore[arg-type]
    finally:
        await pc.close()


@pytest.fixture
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """aioice gathers only 127.0.0.1: nothing leaves this machine."""
    monkeypatch.setattr("aioice.ice.get_host_addresses", lambda use_ipv4, use_ipv6: ["127.0.0.1"])


def test_a_packet_that_never_comes_is_given_up_and_a_keyframe_asked_for() -> None:
    from server.media.lowlatency import GIVE_UP_S

    now = [0.0]
    buffer = MarkerJitterBuffer(512, is_video=True, clock=lambda: now[0])
    # Frame 1: packets 0, 1 (marked). Frame 2: packets 2, 3 (marked) — 2 is lost for good.
    # Frames 3..: one marked packet each.
    assert buffer.add(rtp(0, 1000))[1] is None
    assert buffer.add(rtp(1, 1000, marker=True))[1] is not None
    released = []
    for seq in range(3, 16):
        timestamp = 2000 if seq == 3 else 1000 * seq
        now[0] += 0.05
        pli, frame = buffer.add(rtp(seq, timestamp, marker=True))
        if frame is not None:
            released.append((frame.timestamp, pli, now[0]))
    assert released, "the picture goes on after the lost packet"
    first_ts, pli, at = released[0]
    assert first_ts == 4000, "frame 2 (incomplete) is dropped, frame 3 is the next one out"
    assert pli, "a keyframe is asked for: frames after the hole may refer to the lost one"
    assert GIVE_UP_S - 0.01 <= at <= GIVE_UP_S + 0.15
    assert buffer.gaps_skipped == 1


def test_a_retransmission_in_time_loses_nothing() -> None:
    now = [0.0]
    buffer = MarkerJitterBuffer(512, is_video=True, clock=lambda: now[0])
    buffer.add(rtp(0, 1000, marker=True))
    buffer.add(rtp(2, 2000, marker=True))
    now[0] += 0.2  # the NACK's round trip
    pli, frame = buffer.add(rtp(1, 1500, marker=True))
    assert frame is not None and frame.timestamp == 1500 and not pli
    assert buffer.gaps_skipped == 0


def test_holes_one_after_another_do_not_add_up() -> None:
    """On a lossy link a new hole comes before the last one was given up: each frame
    waits at most the give-up time after it arrived, not a turn behind the others."""
    from server.media.lowlatency import GIVE_UP_S

    now = [0.0]
    buffer = MarkerJitterBuffer(512, is_video=True, clock=lambda: now[0])
    arrived: dict[int, float] = {}
    waits = []
    seq = 0
    for frame_no in range(1, 80):  # 15 fps, two packets a frame, one frame in four loses one
        timestamp = 1000 * frame_no
        for part in range(2):
            lost = frame_no % 4 == 0 and part == 0
            if not lost:
                arrived.setdefault(timestamp, now[0])
                _, frame = buffer.add(rtp(seq, timestamp, marker=part == 1))
                if frame is not None:
                    waits.append(now[0] - arrived[frame.timestamp])
            seq += 1
        now[0] += 1 / 15
    assert buffer.gaps_skipped >= 15
    assert max(waits) <= GIVE_UP_S + 2 / 15, f"frames waited up to {max(waits):.2f} s"

"""server.media.capture_time: the live frame's capture time on the composite's RTP packets.

The element's bytes are checked against the NTP arithmetic by hand and in round trips,
implausible stamps are left off instead of stopping the sender, and in a real loopback
call (two aiortc peers on 127.0.0.1) the extension is negotiated only when offered, under
the offer's id, and every video packet that arrives carries its own frame's capture time.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import av
import pytest
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import HeaderExtensions, RtpPacket, unpack_header_extensions

from clinicam.aiortc_compat import header_extensions
from server.media.capture_time import (
    ABS_CAPTURE_TIME_ID,
    ABS_CAPTURE_TIME_URI,
    NTP_UNIX_OFFSET_S,
    capture_time_writer,
    negotiate_abs_capture_time,
    ntp_from_unix_us,
    pack_abs_capture_time,
    send_capture_time,
    unix_us_from_ntp,
    unpack_abs_capture_time,
)
from server.media.lowlatency import PLAYOUT_DELAY_URI, negotiate_playout_delay, send_playout_delay
from server.media.rtp_extensions import ExtraExtensionsMap
from tests.archive.test_tap import PatternTrack, assert_loopback, h264_only

BASE_US = 1_796_000_000_123_456  # December 2026, µs since 1970
END_OF_ERA_0_US = ((1 << 32) - NTP_UNIX_OFFSET_S) * 1_000_000  # 2036-02-07 06:28:16


# --- the element's bytes ---------------------------------------------------------------


def test_the_unix_epoch_is_ntp_second_2208988800() -> None:
    assert ntp_from_unix_us(0) == NTP_UNIX_OFFSET_S << 32
    assert ntp_from_unix_us(500_000) == (NTP_UNIX_OFFSET_S << 32) | (1 << 31)  # half a second
    assert pack_abs_capture_time(0) == (NTP_UNIX_OFFSET_S << 32).to_bytes(8, "big")


@pytest.mark.parametrize("unix_us", [0, 1, BASE_US, -1_000_000, END_OF_ERA_0_US - 1])
def test_capture_times_survive_a_round_trip_to_the_microsecond(unix_us: int) -> None:
    assert unix_us_from_ntp(ntp_from_unix_us(unix_us)) == unix_us
    assert unpack_abs_capture_time(pack_abs_capture_time(unix_us)) == (unix_us, None)


@pytest.mark.parametrize("offset_us", [0, 1, -1, 2_500, -37_000_000, 3_600_000_000])
def test_the_clock_offset_is_signed_and_travels_in_the_long_form(offset_us: int) -> None:
    data = pack_abs_capture_time(BASE_US, offset_us)
    assert len(data) == 16
    assert data[:8] == pack_abs_capture_time(BASE_US)
    assert unpack_abs_capture_time(data) == (BASE_US, offset_us)
    assert int.from_bytes(data[8:], "big", signed=True) == round(offset_us * 2**32 / 1e6)


@pytest.mark.parametrize(
    ("unix_us", "offset_us"),
    [
        (-NTP_UNIX_OFFSET_S * 1_000_000 - 1, None),  # before 1900
        (END_OF_ERA_0_US, None),  # after era 0
        (BASE_US, 1 << 62),  # an offset beyond ±2^31 s
    ],
)
def test_values_that_do_not_fit_are_refused(unix_us: int, offset_us: int | None) -> None:
    with pytest.raises(ValueError):
        pack_abs_capture_time(unix_us, offset_us)


@pytest.mark.parametrize("size", [0, 7, 9, 15, 17])
def test_elements_of_another_size_are_refused(size: int) -> None:
    with pytest.raises(ValueError, match="8 or 16"):
        unpack_abs_capture_time(bytes(size))


def test_the_writer_stamps_each_packet_once_and_leaves_off_what_it_cannot_say() -> None:
    now: list[int | None] = [BASE_US]
    write = capture_time_writer(lambda: now[0])
    first, second = HeaderExtensions(), HeaderExtensions()
    assert write(first) == pack_abs_capture_time(BASE_US)
    now[0] = BASE_US + 33_333
    assert write(second) == pack_abs_capture_time(BASE_US + 33_333)
    assert write(first) == pack_abs_capture_time(BASE_US)  # a resend: its own frame's time
    now[0] = None  # a composite without the appliance's picture
    assert write(HeaderExtensions()) is None
    now[0] = -(10**18)  # a stamp from a broken appliance clock: off, the sender goes on
    assert write(HeaderExtensions()) is None


def test_the_map_writes_the_element_under_the_negotiated_id_only() -> None:
    parameters = RTCRtpParameters(
        headerExtensions=[
            RTCRtpHeaderExtensionParameters(id=9, uri=PLAYOUT_DELAY_URI),
            RTCRtpHeaderExtensionParameters(id=13, uri=ABS_CAPTURE_TIME_URI),
        ]
    )
    ours = ExtraExtensionsMap()
    ours.add(ABS_CAPTURE_TIME_URI, capture_time_writer(lambda: BASE_US, lambda: -2_000))
    ours.configure(parameters)
    raw = RtpPacket(sequence_number=1, timestamp=90).serialize(ours)
    profile, length = int.from_bytes(raw[12:14]), 4 * int.from_bytes(raw[14:16])
    elements = dict(unpack_header_extensions(profile, raw[16 : 16 + length]))
    assert set(elements) == {13}
    assert unpack_abs_capture_time(elements[13]) == (BASE_US, -2_000)
    with pytest.raises(ValueError, match="already"):
        ours.add(ABS_CAPTURE_TIME_URI, capture_time_writer(lambda: None))

    unnegotiated = ExtraExtensionsMap()
    unnegotiated.add(ABS_CAPTURE_TIME_URI, capture_time_writer(lambda: BASE_US))
    unnegotiated.configure(RTCRtpParameters(headerExtensions=parameters.headerExtensions[:1]))
    assert not RtpPacket(sequence_number=1, timestamp=90).serialize(unnegotiated)[0] & 0x10


# --- a real call ---------------------------------------------------------------------------


class StampedFrames(MediaStreamTrack):
    """A moving pattern whose frame ``i`` was "captured" at ``BASE_US + i × 33 333 µs``."""

    kind = "video"

    def __init__(self) -> None:
        super().__init__()
        self._pattern = PatternTrack()
        self.index = 0
        self.capture_us: int | None = None

    async def recv(self) -> av.VideoFrame:
        frame = await self._pattern.recv()
        self.capture_us = BASE_US + self.index * 33_333
        self.index += 1
        return frame


@asynccontextmanager
async def call(offer_edit: Any = lambda sdp: sdp) -> AsyncIterator[dict[str, Any]]:
    """An aiortc "browser" offering to receive (its offer passed through ``offer_edit``),
    and a "server" answering with a stamped track, as the media hub answers experts."""
    negotiate_playout_delay()
    negotiate_abs_capture_time()
    browser = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    server = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    track = StampedFrames()
    seen: dict[str, Any] = {"raw": []}
    try:
        transceiver = browser.addTransceiver("video", direction="recvonly")
        transceiver.setCodecPreferences(h264_only())
        dtls = transceiver.receiver.transport
        handle = dtls._handle_rtp_data

        async def watch(data: bytes, arrival_time_ms: int) -> None:
            seen["raw"].append(data)
            await handle(data, arrival_time_ms)

        dtls._handle_rtp_data = watch
        await browser.setLocalDescription(await browser.createOffer())
        offer = offer_edit(browser.localDescription.sdp)
        await server.setRemoteDescription(RTCSessionDescription(offer, "offer"))
        sender = server.addTrack(track)
        send_playout_delay(sender)
        send_capture_time(sender, lambda: track.capture_us)
        await server.setLocalDescription(await server.createAnswer())
        assert_loopback(server.localDescription.sdp)
        answer = server.localDescription.sdp
        # the answer names the offer's ids; the aiortc "browser" keeps its own numbering
        await browser.setRemoteDescription(RTCSessionDescription(offer_edit(answer), "answer"))
        seen["answer"] = answer
        async with asyncio.timeout(20):
            for _ in range(12):
                await transceiver.receiver.track.recv()
        seen["frames"] = track.index
        yield seen
    finally:
        await browser.close()
        await server.close()


def video_elements(raw: list[bytes]) -> list[tuple[int, dict[int, bytes]]]:
    """(RTP timestamp, header-extension elements) of every video packet that arrived."""
    out = []
    for data in raw:
        if len(data) > 12 and 96 <= (data[1] & 0x7F) <= 127 and data[0] & 0x10:
            profile, length = int.from_bytes(data[12:14]), 4 * int.from_bytes(data[14:16])
            elements = dict(unpack_header_extensions(profile, data[16 : 16 + length]))
            out.append((int.from_bytes(data[4:8]), elements))
    return out


def chromium_id(sdp: str) -> str:
    """The offer as Chromium 156 makes it when asked for the extension: id 13."""
    return sdp.replace(f"a=extmap:{ABS_CAPTURE_TIME_ID} ", "a=extmap:13 ")


def without_it(sdp: str) -> str:
    """An offer that does not ask for the extension (Chromium's default)."""
    return "".join(line for line in sdp.splitlines(True) if ABS_CAPTURE_TIME_URI not in line)


@pytest.mark.usefixtures("loopback_only")
@pytest.mark.parametrize(("edit", "ext_id"), [(chromium_id, 13), (lambda s: s, 7)])
async def test_each_packet_carries_its_frames_capture_time_under_the_offered_id(
    edit: Any, ext_id: int
) -> None:
    async with asyncio.timeout(40), call(edit) as seen:
        pass
    assert f"a=extmap:{ext_id} {ABS_CAPTURE_TIME_URI}" in seen["answer"]
    packets = video_elements(seen["raw"])
    assert len(packets) >= 12
    by_frame: dict[int, set[int]] = {}
    for timestamp, elements in packets:
        capture_us, offset = unpack_abs_capture_time(elements[ext_id])
        assert offset is None
        by_frame.setdefault(timestamp, set()).add(capture_us)
    assert all(len(times) == 1 for times in by_frame.values())  # one time per frame
    ordered = [next(iter(by_frame[t])) for t in sorted(by_frame)]
    assert ordered == sorted(ordered) and len(set(ordered)) == len(ordered)
    frames = {BASE_US + i * 33_333 for i in range(seen["frames"])}
    assert set(ordered) <= frames


@pytest.mark.usefixtures("loopback_only")
async def test_not_offered_not_answered_not_sent() -> None:
    async with asyncio.timeout(40), call(without_it) as seen:
        pass
    assert ABS_CAPTURE_TIME_URI not in seen["answer"]
    assert PLAYOUT_DELAY_URI in seen["answer"]  # the other extension still goes out
    packets = video_elements(seen["raw"])
    assert packets
    for _, elements in packets:
        assert ABS_CAPTURE_TIME_ID not in elements
        assert all(len(value) < 8 for value in elements.values())  # mid, abs-send-time, delay


@pytest.fixture
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """aioice gathers only 127.0.0.1: nothing leaves this machine."""
    monkeypatch.setattr("aioice.ice.get_host_addresses", lambda use_ipv4, use_ipv6: ["127.0.0.1"])


def test_negotiating_twice_accepts_the_extension_once() -> None:
    negotiate_abs_capture_time()
    negotiate_abs_capture_time()
    found = [e for e in header_extensions("video") if e.uri == ABS_CAPTURE_TIME_URI]
    assert [e.id for e in found] == [ABS_CAPTURE_TIME_ID]
    assert all(e.uri != ABS_CAPTURE_TIME_URI for e in header_extensions("audio"))


def test_a_sender_without_aiortcs_internals_is_refused() -> None:
    with pytest.raises(RuntimeError, match="internals"):
        send_capture_time(object(), lambda: None)  # type: ignore[arg-type]

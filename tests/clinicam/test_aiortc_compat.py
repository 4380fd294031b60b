"""clinicam.aiortc_compat: the aiortc internals we use are checked at start-up and pinned.

The self-check passes on the installed aiortc and fails loudly, naming the internal and
the installed version, when one is gone (simulated here by patching it away on the
class). The accessors work on a real peer connection and refuse objects without the
internals. The exact pins in ``pyproject.toml`` are the versions the module expects.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import tomllib
from pathlib import Path
from typing import Any

import aioice.ice
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpReceiver, RTCRtpSender
from aiortc.jitterbuffer import JitterBuffer
from aiortc.rtp import RtpPacket

from clinicam import aiortc_compat
from clinicam.aiortc_compat import (
    AIOICE_VERSION,
    AIORTC_VERSION,
    OpenJitterBuffer,
    ice_connections,
    ice_protocols,
    ice_receive_queue,
    jitter_buffer_is_video,
    receiver_decoder_error,
    receiver_decoder_queue,
    receiver_decoding,
    receiver_jitter_buffer,
    receiver_started,
    self_check,
    sender_round_trip_s,
    sender_ssrc,
    sender_started,
    set_sender_encoder,
)

ROOT = Path(__file__).resolve().parents[2]


def test_the_check_passes_on_the_installed_aiortc() -> None:
    self_check()


def test_a_method_gone_from_the_class_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(RTCRtpSender, "_send_keyframe")
    with pytest.raises(RuntimeError) as failure:
        self_check()
    assert str(failure.value) == (
        f"aiortc {AIORTC_VERSION} changed: method RTCRtpSender._send_keyframe is missing; "
        f"Clinicam needs aiortc=={AIORTC_VERSION}"
    )


def test_a_method_that_is_no_longer_a_coroutine_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(RTCRtpSender, "_handle_rtcp_packet", lambda self, packet: None)
    with pytest.raises(RuntimeError, match=r"coroutine method RTCRtpSender._handle_rtcp_packet"):
        self_check()


def test_an_attribute_no_longer_set_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    original = RTCRtpReceiver.__init__

    def init(self: RTCRtpReceiver, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)  # sets nothing itself: as if aiortc renamed them all

    monkeypatch.setattr(RTCRtpReceiver, "__init__", init)
    with pytest.raises(RuntimeError) as failure:
        self_check()
    message = str(failure.value)
    assert (
        f"aiortc {AIORTC_VERSION} changed: RTCRtpReceiver._RTCRtpReceiver__decoder_queue "
        f"(set in __init__) is missing; Clinicam needs aiortc=={AIORTC_VERSION}"
    ) in message.splitlines()
    assert "_RTCRtpReceiver__jitter_buffer" in message
    assert "RTCRtpSender" not in message  # only what moved


def test_an_aioice_function_gone_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(aioice.ice, "get_host_addresses")
    with pytest.raises(RuntimeError, match=r"^aioice 0\.13\.0 changed: function aioice\.ice"):
        self_check()


def test_another_installed_version_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    versions = {"aiortc": "1.17.0", "aioice": AIOICE_VERSION}
    monkeypatch.setattr(aiortc_compat, "_installed_version", versions.__getitem__)
    with pytest.raises(RuntimeError) as failure:
        self_check()
    assert str(failure.value) == (
        f"aiortc 1.17.0 is installed; Clinicam needs aiortc=={AIORTC_VERSION} "
        "(internals used: see clinicam/aiortc_compat.py)"
    )


def test_pyproject_pins_the_versions_the_module_expects_in_every_extra() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    with_aiortc = {
        name: deps for name, deps in extras.items() if any(d.startswith("aiortc") for d in deps)
    }
    assert with_aiortc, "no extra installs aiortc"
    for name, deps in with_aiortc.items():
        assert f"aiortc=={AIORTC_VERSION}" in deps, name
        assert f"aioice=={AIOICE_VERSION}" in deps, name


async def test_the_accessors_reach_a_real_connection() -> None:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        video = pc.addTransceiver("video")
        audio = pc.addTransceiver("audio")
        receiver = video.receiver
        assert type(receiver_decoder_queue(receiver)) is queue.Queue
        assert isinstance(receiver_decoder_error(receiver), threading.Event)
        assert not receiver_decoding(receiver) and not receiver_started(receiver)
        assert jitter_buffer_is_video(receiver_jitter_buffer(receiver))
        assert not jitter_buffer_is_video(receiver_jitter_buffer(audio.receiver))
        assert isinstance(sender_ssrc(video.sender), int)
        assert not sender_started(video.sender)
        assert sender_round_trip_s(video.sender) is None  # no report yet
        connections = ice_connections(pc)
        assert connections
        assert isinstance(ice_receive_queue(connections[0]), asyncio.Queue)
        assert isinstance(ice_protocols(connections[0]), list)
        set_sender_encoder(audio.sender, object())  # type: ignore[arg-type]
        with pytest.raises(RuntimeError, match="already encodes"):
            set_sender_encoder(audio.sender, object())  # type: ignore[arg-type]
    finally:
        await pc.close()


def test_the_accessors_refuse_objects_without_the_internals() -> None:
    for access in (
        receiver_decoder_queue,
        receiver_decoder_error,
        receiver_decoding,
        receiver_started,
        receiver_jitter_buffer,
        sender_ssrc,
        sender_started,
    ):
        with pytest.raises(RuntimeError, match=r"^aiortc internals changed: .*aiortc==1\.16\.0"):
            access(object())  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match=r"^aioice internals changed"):
        ice_receive_queue(object())  # type: ignore[arg-type]


def rtp(seq: int, timestamp: int) -> RtpPacket:
    packet = RtpPacket(sequence_number=seq, timestamp=timestamp)
    packet._data = bytes([seq % 256])  # type: ignore[attr-defined]  # as the receiver sets it
    return packet


def test_the_open_buffer_assembles_frames_exactly_as_aiortc_does() -> None:
    packets = [rtp(seq, 3000 * (seq // 3)) for seq in range(30) if seq not in (7, 8)]
    packets[5], packets[6] = packets[6], packets[5]  # reordered on the way
    outputs = []
    for buffer in (JitterBuffer(64, is_video=True), OpenJitterBuffer(64, is_video=True)):
        released = [buffer.add(p) for p in packets]
        outputs.append([(pli, f and (f.data, f.timestamp)) for pli, f in released])
    assert outputs[0] == outputs[1]
    assert any(frame for _, frame in outputs[0])


def test_the_open_buffer_shows_its_ring() -> None:
    buffer = OpenJitterBuffer(16, is_video=True)
    assert buffer.origin is None and buffer.is_video
    buffer.add(rtp(100, 0))
    buffer.add(rtp(102, 0))
    assert buffer.origin == 100
    assert [buffer.packet_at(i) is not None for i in range(3)] == [True, False, True]

"""Stage stamps ride in an H.264 SEI message: decodable, found again, never a crash."""

from __future__ import annotations

import random

import av
import numpy as np
import pytest

from clinicam.frametrace import (
    FrameTrace,
    escape,
    insert_sei,
    is_h264_keyframe,
    nal_units,
    read_trace,
    trace_sei,
    unescape,
)
from clinicam.h264 import H264StreamEncoder


def _access_units(count: int) -> list[bytes]:
    encoder = H264StreamEncoder(320, 240, 15, 400, 30)
    rng = np.random.default_rng(7)
    units = []
    for i in range(count):
        pixels = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)
        frame = av.VideoFrame.from_ndarray(pixels, format="rgb24").reformat(format="yuv420p")
        units += [bytes(p) for p in encoder.encode(frame, i * 6000)]
    return units


def test_stamps_survive_and_the_stream_still_decodes() -> None:
    decoder = av.CodecContext.create("h264", "r")
    # Values whose bytes need emulation prevention (00 00 0x) must come back unchanged.
    stamps = (0x0000_0001_0000_0002, 3, 0x00_00_03_00_00_01)
    decoded = 0
    for i, unit in enumerate(_access_units(6)):
        stamped = insert_sei(unit, trace_sei(*stamps))
        trace = read_trace(stamped)
        assert trace is not None
        assert (trace.stamps["captured"], trace.stamps["encoded"], trace.stamps["sent"]) == stamps
        assert is_h264_keyframe(stamped) == (i == 0)
        decoded += len(decoder.decode(av.Packet(stamped)))
        types = [stamped[a] & 0x1F for a, _ in nal_units(stamped)]
        first_slice = next(n for n, t in enumerate(types) if t in (1, 5))
        assert 6 in types[:first_slice], "the SEI must precede the first slice"
    assert decoded == 6


def test_a_stream_without_our_sei_has_no_trace() -> None:
    assert all(read_trace(unit) is None for unit in _access_units(3))


def test_emulation_prevention_round_trips() -> None:
    rng = random.Random(3)
    for _ in range(200):
        raw = bytes(rng.choice([0, 0, 0, 1, 2, 3, 0x80, 0xFF]) for _ in range(rng.randint(0, 40)))
        escaped = escape(raw)
        assert b"\x00\x00\x00" not in escaped and b"\x00\x00\x01" not in escaped
        assert unescape(escaped) == raw


def test_garbage_never_raises() -> None:
    rng = random.Random(11)
    sei = trace_sei(1, 2, 3)
    for _ in range(2000):
        data = bytearray(sei if rng.random() < 0.5 else b"\x00\x00\x01\x06")
        for _ in range(rng.randint(0, 8)):  # cut, flip and extend
            action = rng.random()
            if action < 0.3 and data:
                del data[rng.randrange(len(data)) :]
            elif action < 0.7 and data:
                data[rng.randrange(len(data))] = rng.randrange(256)
            else:
                data += bytes(rng.randrange(256) for _ in range(rng.randint(1, 20)))
        result = read_trace(bytes(data))
        assert result is None or set(result.stamps) == {"captured", "encoded", "sent"}


def test_steps_follow_the_pipeline_order() -> None:
    trace = FrameTrace({"captured": 1000, "sent": 4000})
    trace.mark("received", 9000)
    trace.mark("decoded", 10_500)
    assert trace.steps_ms() == {"captured→sent": 3.0, "sent→received": 5.0, "received→decoded": 1.5}
    with pytest.raises(ValueError, match="stage"):
        trace.mark("teleported")

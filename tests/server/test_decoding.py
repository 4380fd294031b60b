"""The decoder's input queue: bursts are decoded, a backlog skips to a keyframe."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import pytest

from clinicam.frametrace import insert_sei, trace_sei
from server.media.decoding import LatestDecodeQueue, is_keyframe

IDR = b"\x00\x00\x00\x01\x65\x88\x84"
P_FRAME = b"\x00\x00\x00\x01\x41\x9a\x02"


@dataclass
class Codec:
    name: str = "H264"


@dataclass
class Frame:
    data: bytes
    timestamp: int


def _queue(**kwargs: Any) -> tuple[LatestDecodeQueue, threading.Event, list[int]]:
    flag = threading.Event()
    tapped: list[int] = []
    queue = LatestDecodeQueue(flag, **kwargs)
    queue.add_tap(lambda data, timestamp: tapped.append(timestamp))
    return queue, flag, tapped


def _drain(queue: LatestDecodeQueue) -> list[int]:
    out = []
    while not queue.empty():
        item = queue.get_nowait()
        out.append(item if item is None else item[1].timestamp)
    return out


def test_a_burst_is_decoded_whole_when_it_is_fresh() -> None:
    queue, flag, _ = _queue(max_backlog=8, max_wait_s=10.0)
    queue.put((Codec(), Frame(IDR, 0)))
    for ts in range(1, 6):
        queue.put((Codec(), Frame(P_FRAME, ts)))
    assert _drain(queue) == [0, 1, 2, 3, 4, 5]
    assert not flag.is_set() and queue.frames_dropped == 0


def test_a_stale_backlog_is_dropped_up_to_the_next_keyframe_which_is_asked_for() -> None:
    queue, flag, tapped = _queue(max_backlog=8, max_wait_s=0.05)
    queue.put((Codec(), Frame(IDR, 0)))
    queue.put((Codec(), Frame(P_FRAME, 1)))
    time.sleep(0.08)  # the decoder got no CPU: frame 0 has waited too long
    queue.put((Codec(), Frame(P_FRAME, 2)))
    assert flag.is_set(), "the sender must be asked for a keyframe (PLI)"
    queue.put((Codec(), Frame(P_FRAME, 3)))  # still undecodable without a keyframe
    queue.put((Codec(), Frame(IDR, 4)))
    queue.put((Codec(), Frame(P_FRAME, 5)))
    assert _drain(queue) == [4, 5]
    assert queue.frames_dropped == 4 and queue.skips == 1
    assert tapped == [0, 1, 2, 3, 4, 5], "the archive gets every frame, skipped or not"


def test_too_many_waiting_frames_skip_even_when_fresh() -> None:
    queue, flag, _ = _queue(max_backlog=3, max_wait_s=10.0)
    for ts in range(5):
        queue.put((Codec(), Frame(IDR if ts == 0 else P_FRAME, ts)))
    assert flag.is_set()
    assert _drain(queue) == []


def test_a_keyframe_replaces_what_waits_and_the_end_marker_always_passes() -> None:
    queue, flag, _ = _queue()
    queue.put((Codec(), Frame(IDR, 0)))
    queue.put((Codec(), Frame(P_FRAME, 1)))
    queue.put(None)
    queue.put((Codec(), Frame(IDR, 2)))
    assert _drain(queue) == [None, 2]
    assert not flag.is_set()


def test_stamps_are_read_on_arrival_and_handed_to_the_feed_once() -> None:
    queue, _, _ = _queue()
    queue.put((Codec(), Frame(insert_sei(IDR, trace_sei(10, 20, 30)), 90)))
    assert queue.get()[1].timestamp == 90  # the decoder thread takes it: "decoding"
    trace = queue.trace_of(90)
    assert trace is not None
    assert list(trace.stamps) == ["captured", "encoded", "sent", "received", "decoding"]
    assert queue.trace_of(90) is None


def test_vp8_keyframes_and_unknown_codecs() -> None:
    assert is_keyframe("VP8", bytes([0x10, 0x02])) and not is_keyframe("VP8", bytes([0x11]))
    assert is_keyframe("AV1", b"anything")  # never skip what cannot be judged
    with pytest.raises(ValueError):
        LatestDecodeQueue(threading.Event(), max_backlog=0)

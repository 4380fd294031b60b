"""A decoder that falls behind skips ahead instead of queueing (issue: bounded latency).

aiortc hands every complete received frame to its decoder thread through an unbounded
``queue.Queue``. When that thread gets too little CPU (a busy hub, the GIL shared with
the compositor), frames wait there and the live view falls seconds behind while still
showing every frame: latency grows with time instead of frames being dropped.

:class:`LatestDecodeQueue` replaces that queue. When the oldest waiting frame has waited
longer than ``max_wait_s`` (or more than ``max_backlog`` frames wait), it drops what
waits and every following frame up to the next keyframe (a decoder
cannot start from a predicted frame), and asks the sender for one at once (PLI through
the receiver's own decode-error flag), so the picture resumes within a round trip. A
keyframe that arrives while frames wait replaces them. It also reads the appliance's
stage stamps (:mod:`clinicam.frametrace`) as frames arrive and marks when decoding
starts, so :class:`~server.media.live.FrameFeed` can attach the whole trace to the
decoded frame. The archive taps the same queue (:meth:`LatestDecodeQueue.add_tap`):
it gets every frame, including those the decoder skipped.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from aiortc import RTCRtpReceiver

from clinicam.aiortc_compat import (
    receiver_decoder_error,
    receiver_decoder_queue,
    receiver_decoding,
    replace_decoder_queue,
)
from clinicam.frametrace import FrameTrace, is_h264_keyframe, now_us, read_trace

_LOGGER = logging.getLogger(__name__)
DEFAULT_MAX_WAIT_S = 0.1  # a burst after a busy moment is decoded; a backlog is not
DEFAULT_MAX_BACKLOG = 8
TRACES_KEPT = 64
LOG_EVERY_N_FAILURES = 100
EncodedFrameSink = Callable[[bytes, int], None]
"""(annexb_data, rtp_timestamp_90khz), called on the event loop thread."""


def is_keyframe(codec_name: str, data: bytes) -> bool:
    """Whether an encoded frame can be decoded on its own (H.264 IDR, VP8 key frame)."""
    name = codec_name.upper()
    if name == "H264":
        return is_h264_keyframe(data)
    if name == "VP8":
        return bool(data) and data[0] & 0x01 == 0  # RFC 6386 §9.1: P bit clear
    return True  # unknown codec: never skip frames we cannot judge


class LatestDecodeQueue(queue.Queue[Any]):
    """aiortc's decoder input, bounded: skip to the next keyframe rather than fall behind."""

    def __init__(
        self,
        wants_keyframe: threading.Event,
        *,
        max_backlog: int = DEFAULT_MAX_BACKLOG,
        max_wait_s: float = DEFAULT_MAX_WAIT_S,
    ) -> None:
        super().__init__()
        if max_backlog < 1 or max_wait_s <= 0:
            raise ValueError("max_backlog must be at least 1 and max_wait_s positive")
        self._wants_keyframe = wants_keyframe
        self.max_backlog = max_backlog
        self.max_wait_us = round(max_wait_s * 1_000_000)
        self.skipping = False
        self.frames_in = 0
        self.frames_dropped = 0
        self.skips = 0
        self._traces: OrderedDict[int, FrameTrace] = OrderedDict()
        self._tap: EncodedFrameSink | None = None
        self.tap_failures = 0

    def add_tap(self, sink: EncodedFrameSink) -> None:
        """Hand a copy of every H.264 frame to ``sink`` (the archive), skipped ones too."""
        if self._tap is not None:
            raise RuntimeError("this RTCRtpReceiver is already tapped")
        self._tap = sink

    # aiortc's receive path (event loop) -------------------------------------------------
    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        if item is None:  # end of stream: always delivered
            super().put(item, block, timeout)
            return
        codec, frame = item
        self._enqueue(codec, frame)
        if self._tap is not None and codec.name.upper() == "H264":
            self._copy_to_tap(self._tap, frame)

    def _copy_to_tap(self, sink: EncodedFrameSink, frame: Any) -> None:
        try:
            sink(bytes(frame.data), int(frame.timestamp))
        except Exception:
            self.tap_failures += 1
            if self.tap_failures % LOG_EVERY_N_FAILURES == 1:
                _LOGGER.exception(
                    "archive sink failed (%d failures so far; decoding continues)",
                    self.tap_failures,
                )

    def _enqueue(self, codec: Any, frame: Any) -> None:
        received = now_us()
        key = is_keyframe(codec.name, frame.data)
        trace = read_trace(frame.data) if codec.name.upper() == "H264" else None
        item = (codec, frame)
        with self.not_empty:
            self.frames_in += 1
            waiting = [i for i in self.queue if i is not None]
            if key and waiting:
                self._drop_waiting()  # decoding restarts here: older frames are useless
            if self.skipping and not key:
                self.frames_dropped += 1
                return
            if not key and self._behind(waiting, received):
                self._drop_waiting()
                self.frames_dropped += 1
                self.skipping = True
                self.skips += 1
                self._wants_keyframe.set()  # the receiver sends a PLI with its next packet
                _LOGGER.info("decoder fell %d frames behind: skipping to a keyframe", len(waiting))
                return
            self.skipping = False
            if trace is None:
                trace = FrameTrace()
            arrived = getattr(frame, "arrived_us", None)
            if isinstance(arrived, int):
                trace.mark("arrived", arrived)
            trace.mark("received", received)
            self._traces[frame.timestamp] = trace
            while len(self._traces) > TRACES_KEPT:
                self._traces.popitem(last=False)
            self.queue.append(item)
            self.unfinished_tasks += 1
            self.not_empty.notify()

    def _behind(self, waiting: list[Any], now: int) -> bool:
        """Whether the decoder has fallen behind: too many frames, or the oldest too old."""
        if len(waiting) >= self.max_backlog:
            return True
        if not waiting:
            return False
        oldest = self._traces.get(waiting[0][1].timestamp)
        return oldest is not None and now - oldest.stamps["received"] > self.max_wait_us

    def _drop_waiting(self) -> None:
        kept = [i for i in self.queue if i is None]
        self.frames_dropped += len(self.queue) - len(kept)
        self.unfinished_tasks -= len(self.queue) - len(kept)
        self.queue.clear()
        self.queue.extend(kept)

    # aiortc's decoder thread --------------------------------------------------------------
    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        item = super().get(block, timeout)
        if item is not None:
            with self.mutex:
                trace = self._traces.get(item[1].timestamp)
                if trace is not None:
                    trace.mark("decoding")
        return item

    # the feed ---------------------------------------------------------------------------
    def trace_of(self, timestamp: int | None) -> FrameTrace | None:
        """The stamps of the decoded frame whose ``pts`` is ``timestamp`` (taken once)."""
        if timestamp is None:
            return None
        with self.mutex:
            return self._traces.pop(timestamp, None)

    def stats(self) -> dict[str, int]:
        with self.mutex:
            return {
                "frames": self.frames_in,
                "dropped": self.frames_dropped,
                "skips_to_keyframe": self.skips,
                "waiting": len(self.queue),
            }


def bound_decoder(
    receiver: RTCRtpReceiver,
    *,
    max_backlog: int = DEFAULT_MAX_BACKLOG,
    max_wait_s: float = DEFAULT_MAX_WAIT_S,
) -> LatestDecodeQueue:
    """Give ``receiver`` a :class:`LatestDecodeQueue` before its decoder thread starts."""
    current = receiver_decoder_queue(receiver)
    wants_keyframe = receiver_decoder_error(receiver)
    decoding = receiver_decoding(receiver)
    if isinstance(current, LatestDecodeQueue):
        return current
    if type(current) is not queue.Queue:
        raise RuntimeError("the receiver's decoder queue is already replaced (tapped?)")
    if decoding:
        raise RuntimeError("the receiver is already decoding: bound its queue earlier")
    bounded = LatestDecodeQueue(wants_keyframe, max_backlog=max_backlog, max_wait_s=max_wait_s)
    replace_decoder_queue(receiver, bounded)
    return bounded

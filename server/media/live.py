"""The appliance's live video on the server: newest frame wins, never a queue.

A :class:`LiveFeed` drains the appliance's WebRTC track and keeps only the newest
decoded frame. Each expert gets a :class:`LiveViewTrack` that ticks at a fixed rate
and sends whatever is newest, so a stalled or absent appliance never stalls the
expert's video: it shows the last frame with a notice, or a waiting card.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from fractions import Fraction

import av
import numpy as np
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError

from server.config import LiveViewConfig
from server.media.cards import message_card

_LOGGER = logging.getLogger(__name__)
VIDEO_CLOCK = 90_000


class LiveFeed:
    """The newest frame from one appliance, with the patient it shows."""

    def __init__(self, device_id: str, clinic: str) -> None:
        self.device_id = device_id
        self.clinic = clinic
        self.frame: av.VideoFrame | None = None
        self.frame_time = 0.0
        self.frames_received = 0
        self._task: asyncio.Task[None] | None = None

    def attach(self, track: MediaStreamTrack) -> None:
        """Start draining ``track`` (replacing any previous one)."""
        self.detach()
        self._task = asyncio.create_task(self._drain(track), name=f"feed-{self.device_id}")

    def detach(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _drain(self, track: MediaStreamTrack) -> None:
        first = True
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                _LOGGER.info("live video from %s ended", self.device_id)
                return
            if not isinstance(frame, av.VideoFrame):
                continue
            if first:
                _LOGGER.info(
                    "first live frame from %s (%dx%d)", self.device_id, frame.width, frame.height
                )
                first = False
            self.frame = frame
            self.frame_time = time.monotonic()
            self.frames_received += 1

    def age(self) -> float:
        """Seconds since the newest frame (inf if none yet)."""
        return time.monotonic() - self.frame_time if self.frame is not None else float("inf")


def _dim(frame: av.VideoFrame) -> av.VideoFrame:
    """The same picture greyed out: luma halved, chroma neutral."""
    planes = frame.to_ndarray(format="yuv420p")
    height = frame.height
    planes[:height] = planes[:height] // 2 + 40
    planes[height:] = 128
    return av.VideoFrame.from_ndarray(planes, format="yuv420p")


class LiveViewTrack(MediaStreamTrack):
    """What one expert receives: the live feed at a fixed output rate."""

    kind = "video"

    def __init__(self, feed: LiveFeed, config: LiveViewConfig) -> None:
        super().__init__()
        self._feed = feed
        self._config = config
        self._period = 1.0 / config.fps
        self._clock_start: float | None = None
        self._index = 0
        self._waiting_card = message_card(
            config.width,
            config.height,
            f"Patient — {feed.clinic}",
            "Waiting for the camera appliance to connect…",
        )

    def _render(self) -> av.VideoFrame:
        frame = self._feed.frame
        cfg = self._config
        if frame is None:
            return self._waiting_card
        if self._feed.age() > cfg.stall_after_s:
            frame = _dim(frame)
        out = frame.reformat(width=cfg.width, height=cfg.height, format="yuv420p")
        if out is frame:  # never hand the shared frame to an encoder
            out = av.VideoFrame.from_ndarray(
                np.asarray(frame.to_ndarray(), dtype=np.uint8), format="yuv420p"
            )
        return out

    async def recv(self) -> av.VideoFrame:
        now = time.monotonic()
        if self._clock_start is None:
            self._clock_start = now
        due = self._clock_start + self._index * self._period
        if due > now:
            await asyncio.sleep(due - now)
        elif now - due > 1.0:
            self._index = int((now - self._clock_start) / self._period)
        frame = self._render()
        frame.pts = int(self._index * self._period * VIDEO_CLOCK)
        frame.time_base = Fraction(1, VIDEO_CLOCK)
        self._index += 1
        return frame

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            super().stop()

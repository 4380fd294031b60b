"""Newest-frame holders for incoming video: latest wins, never a queue.

A :class:`FrameFeed` drains one remote WebRTC track (the appliance's camera, an
expert's webcam) and keeps only the newest decoded frame, so a slow consumer never
builds up latency and a stalled source is visible as an old frame. With a
:class:`~server.media.decoding.LatestDecodeQueue` in front of the decoder it also
keeps the newest frame's stage stamps (:attr:`FrameFeed.trace`).
"""

from __future__ import annotations

import asyncio
import logging
import time

import av
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError

from clinicam.aiortc_compat import remote_track_queue
from clinicam.frametrace import FrameTrace
from server.media.decoding import LatestDecodeQueue

_LOGGER = logging.getLogger(__name__)


def _skip_to_newest(track: MediaStreamTrack) -> tuple[av.VideoFrame | None, int]:
    """Latest wins: if decoded frames queued up while we were busy, jump to the newest.

    aiortc's remote tracks hand out frames through an unbounded queue, oldest first;
    reading them one by one would turn a busy moment into permanent delay.
    """
    queue = remote_track_queue(track)
    newest = None
    skipped = 0
    while queue is not None and queue.qsize() > 0:
        item = queue.get_nowait()
        if item is None:  # end of stream marker: leave it for recv()
            queue.put_nowait(None)
            break
        if isinstance(item, av.VideoFrame):
            skipped += newest is not None
            newest = item
    return newest, skipped


class FrameFeed:
    """The newest frame from one remote video track."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.frame: av.VideoFrame | None = None
        self.frame_time = 0.0
        self.frames_received = 0
        self.frames_skipped = 0
        self.trace: FrameTrace | None = None  # stage stamps of ``frame``, if it carried any
        self.decoder: LatestDecodeQueue | None = None
        self.listeners: set[asyncio.Event] = set()  # set on every new frame
        self._task: asyncio.Task[None] | None = None

    def attach(
        self,
        track: MediaStreamTrack,
        *,
        latest_wins: bool = True,
        decoder: LatestDecodeQueue | None = None,
    ) -> None:
        """Start draining ``track`` (replacing any previous one).

        ``latest_wins=False`` for a paced file player (an archive replay), whose queue
        holds frames that are early rather than late. ``decoder`` is the track's bounded
        decode queue, where the frames' stage stamps come from.
        """
        self.detach()
        self.decoder = decoder
        self._task = asyncio.create_task(self._drain(track, latest_wins), name=f"feed-{self.name}")

    def detach(self) -> None:
        self.decoder = None
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _drain(self, track: MediaStreamTrack, latest_wins: bool = True) -> None:
        first = True
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                _LOGGER.info("video from %s ended", self.name)
                return
            if not isinstance(frame, av.VideoFrame):
                continue
            newest, skipped = _skip_to_newest(track) if latest_wins else (None, 0)
            if newest is not None:
                self.frames_skipped += skipped + 1
                frame = newest
            if first:
                _LOGGER.info("first frame from %s (%dx%d)", self.name, frame.width, frame.height)
                first = False
            trace = self.decoder.trace_of(frame.pts) if self.decoder is not None else None
            if trace is not None:
                trace.mark("decoded")
            self.frame, self.trace = frame, trace
            self.frame_time = time.monotonic()
            self.frames_received += 1
            for listener in self.listeners:
                listener.set()

    def age(self) -> float:
        """Seconds since the newest frame (inf if none yet)."""
        return time.monotonic() - self.frame_time if self.frame is not None else float("inf")

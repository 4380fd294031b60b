"""A WebRTC video track that sends already-encoded H.264 packets.

aiortc packs ``av.Packet`` objects into RTP without re-encoding, so the same track
carries the Pi's hardware-encoded stream and, in simulation, the software encoder's.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any

import av
from aiortc import MediaStreamTrack

from firmware.hardware.protocols import Camera
from firmware.media.encoder import VIDEO_TIME_BASE, H264StreamEncoder


class EncodedCameraTrack(MediaStreamTrack):
    """Paces capture at the configured fps and returns one H.264 packet per frame."""

    kind = "video"

    def __init__(self, camera: Camera, encoder: H264StreamEncoder, fps: int) -> None:
        super().__init__()
        self._camera = camera
        self._encoder = encoder
        self._period = 1.0 / fps
        self._clock_start: float | None = None
        self._index = 0
        self._pending: deque[av.Packet[Any]] = deque()
        self.frames_sent = 0

    def _capture_and_encode(self, pts: int) -> list[av.Packet[Any]]:
        return self._encoder.encode(self._camera.capture(), pts)

    async def recv(self) -> av.Packet[Any]:
        loop = asyncio.get_running_loop()
        while not self._pending:
            now = time.monotonic()
            if self._clock_start is None:
                self._clock_start = now
            due = self._clock_start + self._index * self._period
            if due > now:
                await asyncio.sleep(due - now)
            elif now - due > 1.0:  # fell far behind (suspended host): skip ahead
                self._index = int((now - self._clock_start) / self._period)
            pts = round(self._index * self._period / VIDEO_TIME_BASE)
            self._index += 1
            packets = await loop.run_in_executor(None, self._capture_and_encode, pts)
            self._pending.extend(packets)
        self.frames_sent += 1
        return self._pending.popleft()

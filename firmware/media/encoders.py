"""The appliance's video encoders, split from where their packets go (as picamera2 does:
``encoders/`` feeding ``outputs/``).

An encoder runs as long as the appliance does, streaming or not, and hands every
encoded access unit to each of its outputs (:mod:`firmware.media.outputs`): the WebRTC
track while a stream is up, the local recorder always (R17: through an outage the
footage is kept and back-filled later). Two encoders sit behind one interface:

* :class:`SoftwareVideoEncoder` (simulation, and a Pi 5, which has no H.264 block):
  captures frames at the configured rate and encodes them with libx264;
* :class:`firmware.hardware.pi_encoder.PiVideoEncoder` (Pi 4): picamera2's hardware
  H.264 encoder, fed by the camera without a copy through Python.

Both follow :meth:`StreamOutput.effective` (size and frame rate of the adaptation rung,
a new encoder with an IDR when they change) and its target bitrate (changed while
running, no keyframe), and both make the next frame an IDR on request (PLI).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import av

from clinicam.frametrace import now_us
from clinicam.h264 import VIDEO_TIME_BASE, H264StreamEncoder
from firmware.hardware.protocols import Camera
from firmware.media.output import StreamOutput, StreamSettings

_LOGGER = logging.getLogger(__name__)
PrivacyCard = Callable[[int, int], av.VideoFrame]


@dataclass(frozen=True)
class EncodedFrame:
    """One encoded access unit and when its picture was captured and encoded."""

    packet: av.Packet[Any]  # Annex-B H.264, pts in 1/90000 s
    captured_us: int
    encoded_us: int
    wall_time: float  # UTC seconds at capture (the archive's clock)

    @property
    def is_keyframe(self) -> bool:
        return bool(self.packet.is_keyframe)


class EncodedOutput(Protocol):
    """Where an encoder's access units go; ``put`` is called on the event loop."""

    def put(self, frame: EncodedFrame) -> None: ...


class VideoEncoder(Protocol):
    outputs: list[EncodedOutput]

    def request_keyframe(self) -> None: ...

    async def run(self) -> None: ...


class SoftwareVideoEncoder:
    """Captures at the configured rate, encodes with libx264, feeds every output."""

    def __init__(
        self,
        camera: Camera,
        output: StreamOutput,
        *,
        private: Callable[[], bool],
        privacy_card: PrivacyCard,
    ) -> None:
        self._camera = camera
        self._output = output
        self._private = private
        self._privacy_card = privacy_card
        self.outputs: list[EncodedOutput] = []
        self._version: tuple[int, int] = (-1, -1)
        self._settings: StreamSettings = output.settings
        self._encoder: H264StreamEncoder | None = None
        self._cards: dict[tuple[int, int], av.VideoFrame] = {}
        self._pts = 0

    @property
    def settings(self) -> StreamSettings:
        """What is being encoded now (the adaptation rung's size and frame rate)."""
        return self._settings

    @property
    def bitrate_kbps(self) -> int | None:
        return self._encoder.bitrate_kbps if self._encoder is not None else None

    def request_keyframe(self) -> None:
        """The next frame is an IDR (a receiver lost pictures or skipped to catch up)."""
        if self._encoder is not None:
            self._encoder.request_keyframe()

    def _reconfigure(self) -> None:
        s, self._version = self._output.effective()
        self._settings = s
        if self._camera.size != (s.width, s.height):
            self._camera.configure_stream(s.width, s.height, s.fps)
        keyint = max(1, round(s.fps * s.keyframe_interval_s))
        self._encoder = H264StreamEncoder(s.width, s.height, s.fps, s.bitrate_kbps, keyint)

    def _frame(self) -> av.VideoFrame:
        s = self._settings
        if self._private():
            key = (s.width, s.height)
            if key not in self._cards:
                self._cards[key] = self._privacy_card(s.width, s.height)
            return self._cards[key]
        frame = self._camera.capture()
        if (frame.width, frame.height) != (s.width, s.height):
            frame = frame.reformat(width=s.width, height=s.height, format="yuv420p")
        return frame

    def _capture_and_encode(self, encoder: H264StreamEncoder, pts: int) -> list[EncodedFrame]:
        captured, wall = now_us(), time.time()
        packets = encoder.encode(self._frame(), pts)
        encoded = now_us()
        return [EncodedFrame(p, captured, encoded, wall) for p in packets]

    async def run(self) -> None:
        """Encode until cancelled; a failing capture is logged and retried."""
        loop = asyncio.get_running_loop()
        clock_start: float | None = None
        index = 0
        while True:
            if self._version != self._output.effective()[1] or self._encoder is None:
                self._reconfigure()
                clock_start, index = None, 0
            assert self._encoder is not None
            self._encoder.set_bitrate(self._output.target_bitrate_kbps(self._settings.bitrate_kbps))
            period = 1.0 / self._settings.fps
            now = time.monotonic()
            if clock_start is None:
                clock_start = now
            due = clock_start + index * period
            if due > now:
                await asyncio.sleep(due - now)
            else:
                behind = int((now - due) / period)
                if behind:  # capture/encode could not keep up: skip ticks, count them
                    self._output.frames_dropped += behind
                    index += behind
            index += 1
            self._pts += round(period / VIDEO_TIME_BASE)
            try:
                frames = await loop.run_in_executor(
                    None, self._capture_and_encode, self._encoder, self._pts
                )
            except (OSError, RuntimeError, ValueError):
                _LOGGER.exception("capture or encode failed; trying again")
                await asyncio.sleep(period)
                continue
            deliver(self.outputs, frames)


def deliver(outputs: list[EncodedOutput], frames: list[EncodedFrame]) -> None:
    """Hand ``frames`` to every output; one failing output never stops the others."""
    for frame in frames:
        for out in list(outputs):
            try:
                out.put(frame)
            except Exception:
                _LOGGER.exception("output %r failed", out)

"""A WebRTC video track that sends already-encoded H.264 packets.

aiortc packs ``av.Packet`` objects into RTP without re-encoding, so the same track
carries the Pi's hardware-encoded stream and, in simulation, the software encoder's.
Settings changes (resolution, fps) take effect at the next frame with a fresh encoder
(starting on an IDR); the bitrate follows the link without one (R17,
:mod:`firmware.media.adaptation`); in privacy mode a privacy card replaces the
camera's frames. A receiver's keyframe request (PLI) reaches the encoder through
:meth:`EncodedCameraTrack.request_keyframe`. With ``trace`` on, every access unit
carries its capture, encoded and sent times (:mod:`clinicam.frametrace`).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import av
from aiortc import MediaStreamTrack, RTCRtpSender

from clinicam.frametrace import insert_sei, now_us, trace_sei
from clinicam.h264 import VIDEO_TIME_BASE, H264StreamEncoder
from clinicam.rtcp_feedback import watch_feedback
from firmware.hardware.protocols import Camera
from firmware.media.output import StreamOutput, StreamSettings

PrivacyCard = Callable[[int, int], av.VideoFrame]


class EncodedCameraTrack(MediaStreamTrack):
    """Paces capture at the configured fps and returns one H.264 packet per frame."""

    kind = "video"

    def __init__(
        self,
        camera: Camera,
        output: StreamOutput,
        *,
        private: Callable[[], bool],
        privacy_card: PrivacyCard,
        trace: bool = True,
    ) -> None:
        super().__init__()
        self._trace = trace
        self._camera = camera
        self._output = output
        self._private = private
        self._privacy_card = privacy_card
        self._version: tuple[int, int] = (-1, -1)
        self._settings: StreamSettings = output.settings
        self._encoder: H264StreamEncoder | None = None
        self._clock_start: float | None = None
        self._index = 0
        self._pts = 0
        self._pending: deque[tuple[av.Packet[Any], int, int]] = deque()
        self._cards: dict[tuple[int, int], av.VideoFrame] = {}

    def _reconfigure(self) -> None:
        s, self._version = self._output.effective()
        self._settings = s
        if self._camera.size != (s.width, s.height):
            self._camera.configure_stream(s.width, s.height, s.fps)
        keyint = max(1, round(s.fps * s.keyframe_interval_s))
        self._encoder = H264StreamEncoder(s.width, s.height, s.fps, s.bitrate_kbps, keyint)
        self._clock_start = None
        self._index = 0

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

    def follow_link(self, sender: RTCRtpSender) -> None:
        """Let the receiver's feedback on ``sender`` steer this stream (R17)."""
        link = self._output.follow_link()
        if link is not None:
            watch_feedback(sender, link.on_remb, link.on_report)

    def request_keyframe(self) -> None:
        """The next frame is an IDR (a receiver lost pictures or skipped to catch up)."""
        if self._encoder is not None:
            self._encoder.request_keyframe()

    def _capture_and_encode(
        self, encoder: H264StreamEncoder, pts: int
    ) -> list[tuple[av.Packet[Any], int, int]]:
        captured = now_us()
        packets = encoder.encode(self._frame(), pts)
        encoded = now_us()
        return [(packet, captured, encoded) for packet in packets]

    def _stamped(self, packet: av.Packet[Any], captured: int, encoded: int) -> av.Packet[Any]:
        """``packet`` with its stage stamps in an SEI message, sent now."""
        data = insert_sei(bytes(packet), trace_sei(captured, encoded, now_us()))
        stamped = av.Packet(data)
        stamped.pts, stamped.dts, stamped.time_base = packet.pts, packet.dts, packet.time_base
        stamped.is_keyframe = packet.is_keyframe
        return stamped

    async def recv(self) -> av.Packet[Any]:
        loop = asyncio.get_running_loop()
        while not self._pending:
            if self._version != self._output.effective()[1] or self._encoder is None:
                self._reconfigure()
            assert self._encoder is not None
            self._encoder.set_bitrate(self._output.target_bitrate_kbps(self._settings.bitrate_kbps))
            period = 1.0 / self._settings.fps
            now = time.monotonic()
            if self._clock_start is None:
                self._clock_start = now
            due = self._clock_start + self._index * period
            if due > now:
                await asyncio.sleep(due - now)
            else:
                behind = int((now - due) / period)
                if behind:  # capture/encode could not keep up: skip ticks, count them
                    self._output.frames_dropped += behind
                    self._index += behind
            self._index += 1
            self._pts += round(period / VIDEO_TIME_BASE)
            packets = await loop.run_in_executor(
                None, self._capture_and_encode, self._encoder, self._pts
            )
            self._pending.extend(packets)
        packet, captured, encoded = self._pending.popleft()
        if self._trace:
            packet = self._stamped(packet, captured, encoded)
        self._output.count(packet.size)
        return packet

"""A WebRTC video track that sends the encoder's H.264 access units as they come.

aiortc packs ``av.Packet`` objects into RTP without re-encoding, so the same track
carries the Pi's hardware-encoded stream and, in simulation, the software encoder's
(:mod:`firmware.media.encoders`). The track is one of the encoder's outputs while a
stream is up: a short queue that keeps the newest frames (a stalled network path never
holds old video) and asks for a keyframe after dropping, since the receiver cannot
decode past a gap. A receiver's keyframe request (PLI) reaches the encoder through
:meth:`EncodedCameraTrack.request_keyframe`; the receiver's link feedback steers the
encoder through :meth:`EncodedCameraTrack.follow_link`. With ``trace`` on, every access
unit carries its capture, encoded and sent times (:mod:`clinicam.frametrace`).
"""

from __future__ import annotations

import asyncio
from typing import Any

import av
from aiortc import MediaStreamTrack, RTCRtpSender

from clinicam.frametrace import insert_sei, now_us, trace_sei
from clinicam.rtcp_feedback import watch_feedback
from firmware.media.encoders import EncodedFrame, VideoEncoder
from firmware.media.output import StreamOutput

QUEUE_FRAMES = 3  # ≈200 ms at 15 fps: more means the sender is behind; start over at an IDR


class EncodedCameraTrack(MediaStreamTrack):
    """The encoder's access units, in order, newest kept when the sender falls behind."""

    kind = "video"

    def __init__(self, encoder: VideoEncoder, output: StreamOutput, *, trace: bool = True) -> None:
        super().__init__()
        self._encoder = encoder
        self._output = output
        self._trace = trace
        self._queue: asyncio.Queue[EncodedFrame] = asyncio.Queue(maxsize=QUEUE_FRAMES)
        self._need_keyframe = True
        self.flushes = 0
        encoder.outputs.append(self)

    def put(self, frame: EncodedFrame) -> None:
        """From the encoder (on the event loop)."""
        if self.readyState != "live":
            return
        if self._need_keyframe and not frame.is_keyframe:
            return
        if self._queue.full():  # the sender is behind: what is queued is stale
            while not self._queue.empty():
                self._queue.get_nowait()
            self.flushes += 1
            if not frame.is_keyframe:
                self._need_keyframe = True
                self._encoder.request_keyframe()
                return
        self._need_keyframe = False
        self._queue.put_nowait(frame)

    def stop(self) -> None:
        if self in self._encoder.outputs:
            self._encoder.outputs.remove(self)
        super().stop()

    def follow_link(self, sender: RTCRtpSender) -> None:
        """Let the receiver's feedback on ``sender`` steer this stream (R17)."""
        link = self._output.follow_link()
        if link is not None:
            watch_feedback(sender, link.on_remb, link.on_report)

    def request_keyframe(self) -> None:
        """The next frame is an IDR (a receiver lost pictures or skipped to catch up)."""
        self._encoder.request_keyframe()

    def _stamped(self, frame: EncodedFrame) -> av.Packet[Any]:
        """The frame's packet with its stage stamps in an SEI message, sent now."""
        packet = frame.packet
        data = insert_sei(bytes(packet), trace_sei(frame.captured_us, frame.encoded_us, now_us()))
        stamped = av.Packet(data)
        stamped.pts, stamped.dts, stamped.time_base = packet.pts, packet.dts, packet.time_base
        stamped.is_keyframe = packet.is_keyframe
        return stamped

    async def recv(self) -> av.Packet[Any]:
        if self._need_keyframe:
            self._encoder.request_keyframe()  # a new receiver starts with a picture
        frame = await self._queue.get()
        packet = self._stamped(frame) if self._trace else frame.packet
        self._output.count(packet.size)
        return packet

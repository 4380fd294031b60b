"""Two latency fixes for aiortc's RTP path, for an interactive camera rather than a film.

1. **Frames leave aiortc's receive buffer when they are complete.** aiortc's
   ``JitterBuffer`` only knows a frame is whole when the first packet of the *next*
   frame arrives, which holds every frame back one frame interval (33 ms at 30 fps,
   66 ms at 15 fps). The RTP marker bit already says "last packet of this frame"
   (RFC 6184 §5.1 for H.264, RFC 7741 for VP8); :class:`MarkerJitterBuffer` releases
   a frame as soon as all its packets up to the marked one are in.

2. **The browser shows frames as soon as they are decoded.** Chromium holds decoded
   frames back by its jitter estimate (50–250 ms measured here under CPU load) unless
   the sender says otherwise with the playout-delay RTP header extension
   (``http://www.webrtc.org/experiments/rtp-hdrext/playout-delay``): minimum 0 and a
   small maximum switch its low-latency renderer on. aiortc neither negotiates nor
   writes that extension; :func:`negotiate_playout_delay` adds it to what aiortc
   answers and :func:`send_playout_delay` writes it on every packet of one sender.

3. **A packet that never comes does not stop the picture.** aiortc's buffer waits for a
   missing packet until 512 later ones have arrived: on a 3G link at 150 kbit/s that is
   half a minute of frozen picture whenever a packet and its retransmission are both
   lost. :class:`MarkerJitterBuffer` gives up on a gap after :data:`GIVE_UP_S` (a NACK
   round trip on a slow link and a little more), drops the frames it left incomplete,
   and asks for a keyframe (PLI): a moment of artefacts instead of a long freeze.

4. **A voice is decoded as it arrives.** aiortc holds every incoming audio packet until
   four later ones are in (80 ms) before decoding it. An Opus packet is a whole frame,
   and the room's mixer keeps its own small buffer against arrival jitter
   (:mod:`server.media.audio`): :class:`ArrivalAudioBuffer` hands each packet on at
   once and drops one that arrives after a newer one (too late to be played).

All rely on aiortc internals, reached through :mod:`clinicam.aiortc_compat` like the
archive tap's: the installers raise ``RuntimeError`` if they are not as expected, so an
aiortc upgrade fails loudly rather than silently losing the gain.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from aiortc import RTCRtpReceiver, RTCRtpSender
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtp import RtpPacket
from aiortc.utils import uint16_add

from clinicam.aiortc_compat import (
    OpenJitterBuffer,
    jitter_buffer_is_video,
    packet_payload,
    receiver_decoding,
    receiver_jitter_buffer,
    replace_jitter_buffer,
    sender_started,
)
from clinicam.frametrace import now_us
from server.media.rtp_extensions import Writer, accept_video_extension, extra_extensions

GIVE_UP_S = 0.4
PLAYOUT_DELAY_URI = "http://www.webrtc.org/experiments/rtp-hdrext/playout-delay"
PLAYOUT_DELAY_ID = 6  # aiortc uses 1-3; ids are shared across media types with BUNDLE
PLAYOUT_DELAY_STEP_MS = 10  # the extension counts in 10 ms units, 12 bits each
PLAYOUT_DELAY_MAX_MS = 4095 * PLAYOUT_DELAY_STEP_MS


class MarkerJitterBuffer(OpenJitterBuffer):
    """aiortc's video jitter buffer, releasing a frame at its marker bit.

    Everything else (capacity, reordering, overflow, PLI on loss) is aiortc's own; a
    frame without a marked last packet is still released the old way, when the next
    frame starts.
    """

    def __init__(
        self,
        capacity: int,
        prefetch: int = 0,
        is_video: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(capacity, prefetch, is_video)
        self._first_arrival: dict[int, int] = {}  # RTP timestamp → µs its first packet came
        self._first_seen: dict[int, float] = {}  # the same on ``clock``
        self._clock = clock
        self.gaps_skipped = 0

    def add(self, packet: Any) -> tuple[bool, JitterFrame | None]:
        if packet.timestamp not in self._first_arrival:
            if len(self._first_arrival) >= self.capacity:
                self._first_arrival.clear()  # frames that never completed
                self._first_seen.clear()
            self._first_arrival[packet.timestamp] = now_us()
            self._first_seen[packet.timestamp] = self._clock()
        pli, frame = super().add(packet)
        if frame is not None or self.origin is None:
            return pli, frame
        if self.packet_at(0) is not None and not self._gap_ahead():
            return pli, frame  # a frame still coming in, nothing missing
        # Blocked by a hole. The oldest frame waiting decides, not when the block began:
        # on a lossy link holes queue up behind each other, and a give-up timed from the
        # block's start would make each wait its turn (measured on 3G: seconds of backlog).
        if self._oldest_wait_s() < GIVE_UP_S or not self._skip_gap():
            return pli, frame
        self.gaps_skipped += 1
        return True, self.complete_frame(packet.sequence_number)  # PLI: a keyframe, please

    def _oldest_wait_s(self) -> float:
        """How long the oldest packet in the buffer has waited (its frame's first one)."""
        assert self.origin is not None
        for count in range(self.capacity):
            packet = self.packet_at(count)
            if packet is not None:
                seen = self._first_seen.get(packet.timestamp)
                return 0.0 if seen is None else self._clock() - seen
        return 0.0

    def _gap_ahead(self) -> bool:
        """A packet is missing before the newest one (so something waits behind a hole)."""
        assert self.origin is not None
        seen_hole = False
        for count in range(self.capacity):
            packet = self.packet_at(count)
            if packet is None:
                seen_hole = True
            elif seen_hole:
                return True
        return False

    def _skip_gap(self) -> bool:
        """Drop everything before the first frame that surely starts after the hole: a
        packet whose present predecessor belongs to another frame. False if none yet."""
        assert self.origin is not None
        previous: Any = None
        seen_hole = False
        for count in range(self.capacity):
            packet = self.packet_at(count)
            if packet is None:
                seen_hole = True
            elif seen_hole and previous is not None and previous.timestamp != packet.timestamp:
                self.remove(count)
                return True
            previous = packet
        return False

    def complete_frame(self, sequence_number: int) -> JitterFrame | None:
        if self.origin is None:
            return None
        self._drop_leading_padding()
        packets: list[Any] = []
        for count in range(self.capacity):
            packet = self.packet_at(count)
            if packet is None:
                return None  # a gap: wait for the missing packet (or its NACKed resend)
            if packets and packet.timestamp != packets[0].timestamp:
                return self._release(packets)  # aiortc's rule: the next frame began
            packets.append(packet)
            if packet.marker:
                return self._release(packets)
        return None

    def _drop_leading_padding(self) -> None:
        """Packets without payload (bandwidth probes) never start a frame of their own.

        Browsers send them with the timestamp of the frame just sent, so after that frame
        left at its marker they would otherwise become an empty "frame", and an empty
        packet tells the decoder to drain: it would stop decoding.
        """
        for _ in range(self.capacity):
            if self.origin is None:
                return
            packet: Any = self.packet_at(0)
            if packet is None or packet_payload(packet):
                return
            self.remove(1)

    def _release(self, packets: list[Any]) -> JitterFrame:
        timestamp = packets[0].timestamp
        frame = JitterFrame(data=b"".join(packet_payload(p) for p in packets), timestamp=timestamp)
        frame.arrived_us = self._first_arrival.pop(timestamp, None)  # type: ignore[attr-defined]
        self._first_seen.pop(timestamp, None)
        self.remove(len(packets))
        return frame


def release_frames_at_marker(receiver: RTCRtpReceiver) -> None:
    """Give a video ``receiver`` a :class:`MarkerJitterBuffer` before any RTP arrives."""
    current = receiver_jitter_buffer(receiver)
    running = receiver_decoding(receiver)
    if isinstance(current, MarkerJitterBuffer):
        return
    if running:
        raise RuntimeError("the receiver is already running: replace its buffer earlier")
    if not jitter_buffer_is_video(current):
        raise ValueError("only video frames have a marker bit to release on")
    replace_jitter_buffer(receiver, MarkerJitterBuffer(current.capacity, is_video=True))


RESYNC_AFTER = 50  # "late" packets in a row: the sender restarted its numbering


class ArrivalAudioBuffer(JitterBuffer):
    """Audio packets to the decoder as they arrive, in order; late ones are dropped."""

    def __init__(self, capacity: int) -> None:
        super().__init__(capacity, prefetch=0, is_video=False)
        self._newest: int | None = None
        self._late_in_a_row = 0
        self.late = 0  # packets dropped because a newer one had been decoded

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        if self._newest is not None:
            ahead = uint16_add(packet.sequence_number, -self._newest)
            if (ahead == 0 or ahead >= 0x8000) and self._late_in_a_row < RESYNC_AFTER:
                self._late_in_a_row += 1
                self.late += 1
                return False, None
        self._newest = packet.sequence_number
        self._late_in_a_row = 0
        return False, JitterFrame(data=packet_payload(packet), timestamp=packet.timestamp)


def release_audio_on_arrival(receiver: RTCRtpReceiver) -> None:
    """Give an audio ``receiver`` an :class:`ArrivalAudioBuffer` before any RTP arrives."""
    current = receiver_jitter_buffer(receiver)
    running = receiver_decoding(receiver)
    if isinstance(current, ArrivalAudioBuffer):
        return
    if running:
        raise RuntimeError("the receiver is already running: replace its buffer earlier")
    if jitter_buffer_is_video(current):
        raise ValueError("video frames span packets: they need the marker buffer")
    replace_jitter_buffer(receiver, ArrivalAudioBuffer(current.capacity))


def negotiate_playout_delay() -> None:
    """Make aiortc accept the playout-delay extension when a browser offers it.

    Accepting it is harmless for senders that do not write it: the browser then keeps
    its usual behaviour. Idempotent.
    """
    accept_video_extension(PLAYOUT_DELAY_URI, PLAYOUT_DELAY_ID)


def playout_delay_value(min_ms: int, max_ms: int) -> bytes:
    """The extension's 3 bytes: 12-bit minimum and maximum, in 10 ms units."""
    if not 0 <= min_ms <= max_ms <= PLAYOUT_DELAY_MAX_MS:
        raise ValueError(f"playout delay needs 0 <= min <= max <= {PLAYOUT_DELAY_MAX_MS} ms")
    low, high = min_ms // PLAYOUT_DELAY_STEP_MS, max_ms // PLAYOUT_DELAY_STEP_MS
    return bytes([low >> 4, ((low & 0x0F) << 4) | (high >> 8), high & 0xFF])


def playout_delay_writer(min_ms: int = 0, max_ms: int = 0) -> Writer:
    """The writer of a fixed playout delay for :class:`ExtraExtensionsMap`: every packet."""
    value = playout_delay_value(min_ms, max_ms)
    return lambda _values: value


def send_playout_delay(sender: RTCRtpSender, min_ms: int = 0, max_ms: int = 0) -> None:
    """Write the playout-delay extension on every RTP packet ``sender`` sends.

    Only takes effect if the extension was negotiated (:func:`negotiate_playout_delay`
    before the answer, and a browser that offers it). Call before the connection is
    up: aiortc configures the map when the sender starts.
    """
    if sender_started(sender):
        raise RuntimeError("the sender is already running: set the playout delay earlier")
    extra_extensions(sender).add(PLAYOUT_DELAY_URI, playout_delay_writer(min_ms, max_ms))

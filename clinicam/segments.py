"""Write H.264 access units into timestamped MPEG-TS segments, without re-encoding.

Shared by the server's archive (what it receives) and the appliance's local recorder
(what it encodes, kept through an outage and back-filled later, R17).

Why MPEG-TS: WebRTC delivers Annex-B access units (start codes, SPS/PPS inline before
every IDR), which is exactly what MPEG-TS carries. The muxer needs no codec extradata
up front, every packet keeps its own 90 kHz timestamp, and a file cut short is still
readable up to the cut. The only change the muxer makes to the bytes is an access unit
delimiter NAL (``00 00 00 01 09 f0``) in front of each frame that lacks one.

Segments start at an IDR (with SPS/PPS, cached ones are put in front of an IDR that
arrives without them), so each one decodes on its own and a time-range export can
start at any segment. A new segment starts at the first IDR after ``segment_seconds``;
the camera's keyframe interval (1 s by default) bounds how much longer a segment gets.

Wall-clock time comes from the RTP clock: ``clock()`` is read at the first frame, and
every later frame is placed at that instant plus its RTP distance (32-bit wraparound
unwrapped). That keeps frame spacing exact, unlike stamping each frame on arrival
with network jitter. When the RTP clock and ``clock()`` disagree by more than
``max_clock_skew_s`` (the sender restarted, or drift added up over days), the
timeline is re-anchored on ``clock()``; the open segment is closed and the next one
starts at the next IDR.

Crash safety: a segment is written to ``<name>.ts.partial``, then closed, fsynced and
renamed to ``<name>.ts`` (and the directory fsynced) before ``on_segment`` hears of
it. A ``.partial`` file left by a crash was never indexed and can be deleted, which
:func:`remove_partial_segments` does. ``feed`` runs on the event loop; the only
blocking work is a packet write per frame and the fsync once per segment.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path

import av
from av.container import OutputContainer
from av.stream import Stream

from clinicam.files import fsync_directory, fsync_file

_LOGGER = logging.getLogger(__name__)

TIME_BASE = Fraction(1, 90_000)
CLOCK_RATE = 90_000
SEGMENT_SUFFIX = ".ts"
PARTIAL_SUFFIX = ".partial"

NAL_IDR = 5
NAL_SPS = 7
NAL_PPS = 8
NAL_AUD = 9

_START_CODE = b"\x00\x00\x01"
_RTP_WRAP = 1 << 32
_DEFAULT_FRAME_TICKS = CLOCK_RATE // 25
_MAX_FRAME_TICKS = CLOCK_RATE  # a longer pause is a gap, not a frame duration


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class SegmentInfo:
    """One closed segment on disk."""

    path: Path
    start_utc: datetime  # tz-aware UTC of the first frame
    end_utc: datetime  # of the last frame + one frame duration
    frames: int
    keyframes: int
    size: int  # bytes on disk


def _nal_spans(annexb: bytes) -> Iterator[tuple[int, int]]:
    """(start, end) of each NAL unit (header byte included, start codes excluded)."""
    position = annexb.find(_START_CODE)
    while position >= 0:
        start = position + 3
        following = annexb.find(_START_CODE, start)
        if following < 0:
            end = len(annexb)
        else:
            end = following
            while end > start and annexb[end - 1] == 0:  # a 4-byte start code's zero
                end -= 1
        if end > start:
            yield start, end
        position = following


def nal_units(annexb: bytes) -> list[bytes]:
    """The NAL units of an Annex-B access unit, without start codes."""
    return [annexb[start:end] for start, end in _nal_spans(annexb)]


def nal_unit_types(annexb: bytes) -> list[int]:
    """``nal_unit_type`` of each NAL unit in an Annex-B access unit (5 IDR, 7 SPS, 8 PPS)."""
    return [annexb[start] & 0x1F for start, _ in _nal_spans(annexb)]


def ticks_to_timedelta(ticks: int) -> timedelta:
    return timedelta(microseconds=ticks * 1_000_000 // CLOCK_RATE)


def segment_name(start_utc: datetime) -> str:
    """``20261124T031500.123Z.ts`` for a segment whose first frame is at ``start_utc``."""
    utc = start_utc.astimezone(UTC)
    return f"{utc:%Y%m%dT%H%M%S}.{utc.microsecond // 1000:03d}Z{SEGMENT_SUFFIX}"


def remove_partial_segments(folder: Path) -> list[Path]:
    """Delete segments a crash left half-written (never indexed); returns what was removed."""
    removed = []
    for path in sorted(folder.glob(f"*{SEGMENT_SUFFIX}{PARTIAL_SUFFIX}")):
        path.unlink(missing_ok=True)
        removed.append(path)
    if removed:
        _LOGGER.info("removed %d half-written segments in %s", len(removed), folder)
    return removed


class RtpTimeline:
    """Map a 90 kHz RTP timestamp to UTC, unwrapping 32-bit wraparound.

    ``place`` returns the frame's extended (unwrapped) timestamp, its UTC time, and
    whether the timeline was re-anchored on ``clock()`` for this frame.
    """

    def __init__(self, clock: Callable[[], datetime], max_skew: timedelta) -> None:
        self._clock = clock
        self._max_skew = max_skew
        self._last_rtp: int | None = None
        self._extended = 0
        self._anchor_extended = 0
        self._anchor_utc = datetime.min.replace(tzinfo=UTC)

    def place(self, rtp_timestamp: int) -> tuple[int, datetime, bool]:
        now = self._clock()
        if self._last_rtp is None:
            self._last_rtp = rtp_timestamp
            self._reanchor(now)
            return self._extended, now, False
        delta = (rtp_timestamp - self._last_rtp + _RTP_WRAP // 2) % _RTP_WRAP - _RTP_WRAP // 2
        self._last_rtp = rtp_timestamp
        self._extended += delta
        utc = self._anchor_utc + ticks_to_timedelta(self._extended - self._anchor_extended)
        if abs(utc - now) <= self._max_skew:
            return self._extended, utc, False
        _LOGGER.warning(
            "RTP clock is %.1f s away from the wall clock (sender restarted?): re-anchoring",
            (utc - now).total_seconds(),
        )
        self._reanchor(now)
        return self._extended, now, True

    def _reanchor(self, now: datetime) -> None:
        if now.tzinfo is None:
            raise ValueError("clock() must return a timezone-aware datetime")
        self._anchor_extended = self._extended
        self._anchor_utc = now


class _OpenSegment:
    """The segment being written: a ``.partial`` MPEG-TS file and its counters."""

    def __init__(self, folder: Path, start_utc: datetime, first_tick: int) -> None:
        self.start_utc = start_utc
        self.first_tick = first_tick
        self.final_path = _unused_path(folder / segment_name(start_utc))
        self.partial_path = self.final_path.with_name(self.final_path.name + PARTIAL_SUFFIX)
        self.frames = 0
        self.keyframes = 0
        self._last_pts = -1
        self._frame_ticks = _DEFAULT_FRAME_TICKS
        self._container: OutputContainer = av.open(str(self.partial_path), "w", format="mpegts")
        self._stream: Stream = self._container.add_mux_stream("h264", time_base=TIME_BASE)

    def elapsed_ticks(self, tick: int) -> int:
        return tick - self.first_tick

    def write(self, annexb: bytes, tick: int, keyframe: bool) -> None:
        pts = max(tick - self.first_tick, self._last_pts + 1)  # the muxer needs rising dts
        if self.frames and pts - self._last_pts <= _MAX_FRAME_TICKS:
            self._frame_ticks = pts - self._last_pts
        packet = av.Packet(annexb)
        packet.stream = self._stream
        packet.pts = packet.dts = pts
        packet.time_base = TIME_BASE
        packet.is_keyframe = keyframe
        self._container.mux(packet)
        self._last_pts = pts
        self.frames += 1
        self.keyframes += keyframe

    def finish(self) -> SegmentInfo:
        """Close, fsync and rename into place."""
        self._container.close()
        fsync_file(self.partial_path)
        os.replace(self.partial_path, self.final_path)
        fsync_directory(self.final_path.parent)
        return SegmentInfo(
            path=self.final_path,
            start_utc=self.start_utc,
            end_utc=self.start_utc + ticks_to_timedelta(self._last_pts + self._frame_ticks),
            frames=self.frames,
            keyframes=self.keyframes,
            size=self.final_path.stat().st_size,
        )

    def abort(self) -> None:
        try:
            self._container.close()
        except (OSError, av.FFmpegError):
            _LOGGER.debug("closing a failed segment %s", self.partial_path, exc_info=True)
        self.partial_path.unlink(missing_ok=True)


def _unused_path(path: Path) -> Path:
    """``path``, or ``name-1.ts``… if a segment (or its partial file) already has the name."""
    candidate, counter = path, 0
    while candidate.exists() or candidate.with_name(candidate.name + PARTIAL_SUFFIX).exists():
        counter += 1
        candidate = path.with_name(f"{path.stem}-{counter}{path.suffix}")
    return candidate


class SegmentWriter:
    """Feed access units of one live stream; closed segments go to ``on_segment``."""

    def __init__(
        self,
        folder: Path,
        *,
        segment_seconds: float = 10.0,
        on_segment: Callable[[SegmentInfo], None],
        clock: Callable[[], datetime] = utc_now,
        max_clock_skew_s: float = 5.0,
    ) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self._folder = folder
        self._segment_ticks = round(segment_seconds * CLOCK_RATE)
        self._on_segment = on_segment
        self._timeline = RtpTimeline(clock, timedelta(seconds=max_clock_skew_s))
        self._segment: _OpenSegment | None = None
        self._parameter_sets: dict[int, bytes] = {}  # latest SPS and PPS NAL units
        self.frames_dropped = 0

    def feed(self, annexb: bytes, rtp_timestamp: int) -> None:
        """One access unit: a whole frame, Annex-B with start codes."""
        types = nal_unit_types(annexb)
        tick, utc, reanchored = self._timeline.place(rtp_timestamp)
        if not types:
            self.frames_dropped += 1
            _LOGGER.debug("dropped a frame without Annex-B start codes (%d bytes)", len(annexb))
            return
        if NAL_SPS in types or NAL_PPS in types:
            self._remember_parameter_sets(annexb)
        keyframe = NAL_IDR in types
        if self._segment is not None and (
            reanchored or (keyframe and self._segment.elapsed_ticks(tick) >= self._segment_ticks)
        ):
            self._finish_segment()
        if self._segment is None:
            decodable = self._decodable_start(annexb, types) if keyframe else None
            if decodable is None:
                self.frames_dropped += 1
                return
            annexb = decodable
            self._segment = _OpenSegment(self._folder, utc, tick)
        self._write(annexb, tick, keyframe)

    def close(self) -> None:
        """Finish the current segment (``on_segment`` is called for it)."""
        if self._segment is not None:
            self._finish_segment()

    def _write(self, annexb: bytes, tick: int, keyframe: bool) -> None:
        assert self._segment is not None
        try:
            self._segment.write(annexb, tick, keyframe)
        except Exception:
            segment, self._segment = self._segment, None  # restart at the next IDR
            segment.abort()
            raise

    def _finish_segment(self) -> None:
        assert self._segment is not None
        segment, self._segment = self._segment, None
        try:
            info = segment.finish()
        except Exception:
            segment.abort()
            raise
        _LOGGER.debug("segment %s: %d frames, %d bytes", info.path.name, info.frames, info.size)
        try:
            self._on_segment(info)
        except Exception:
            _LOGGER.exception("on_segment failed for %s (the file is kept)", info.path)

    def _remember_parameter_sets(self, annexb: bytes) -> None:
        for unit in nal_units(annexb):
            if unit[0] & 0x1F in (NAL_SPS, NAL_PPS):
                self._parameter_sets[unit[0] & 0x1F] = unit

    def _decodable_start(self, annexb: bytes, types: list[int]) -> bytes | None:
        """The IDR with SPS/PPS in front (cached ones if it came without); None if unknown."""
        missing = [kind for kind in (NAL_SPS, NAL_PPS) if kind not in types]
        if not missing:
            return annexb
        if any(kind not in self._parameter_sets for kind in missing):
            _LOGGER.debug("IDR without SPS/PPS and none seen yet: waiting for the next one")
            return None
        units = nal_units(annexb)
        at = 1 if types[0] == NAL_AUD else 0  # an access unit delimiter stays first
        units[at:at] = [self._parameter_sets[kind] for kind in missing]
        return b"".join(b"\x00\x00\x00\x01" + unit for unit in units)

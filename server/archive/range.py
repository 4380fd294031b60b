"""Answer "this patient, this interval" with one playable MP4, by remuxing the archive.

The segments overlapping the interval are demuxed in time order and their packets
copied into an MP4 (``movflags=+faststart`` so a browser can start playing before
the whole file has arrived): no decoding, no encoding, so an export costs file I/O
rather than CPU, and the footage is bit-for-bit what the camera sent.

A stream copy can only start at a keyframe, so the MP4 begins at the last IDR at or
before ``start`` (up to one keyframe interval early) and ends with the last frame
whose time is before ``end``. MP4 time 0 is the first frame; a gap between two
recording runs stays a real gap in time (the picture holds the last frame), so the
MP4 timeline maps linearly onto wall-clock time and pts always increase.

Frame times come from the segment index: a segment's first packet is at its
``start_utc`` and later packets follow by their 90 kHz distance (WebRTC H.264 has
no B-frames, so pts is the presentation and decoding order). The output is written
to a ``.partial`` name and renamed when complete.

``reencode_range`` decodes and re-encodes the same frames with libx264. It exists
only as the benchmark's baseline (bench/archive_range.py) and is not used to serve
requests.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
from av.container import OutputContainer
from av.stream import Stream
from av.video.stream import VideoStream

from clinicam.segments import (
    CLOCK_RATE,
    NAL_IDR,
    PARTIAL_SUFFIX,
    TIME_BASE,
    SegmentInfo,
    nal_unit_types,
    ticks_to_timedelta,
)

_LOGGER = logging.getLogger(__name__)

_MP4_OPTIONS = {"movflags": "+faststart"}
# Our segments open with SPS/PPS/IDR, so the probe finds size and extradata in the first
# packet; FFmpeg's default probing reads far more and is most of the cost per segment.
_SEGMENT_PROBE = {"probesize": "32", "analyzeduration": "0"}
_DEFAULT_FRAME_TICKS = CLOCK_RATE // 25
_MAX_FRAME_TICKS = CLOCK_RATE


class NothingArchived(Exception):
    """No archived footage overlaps the requested interval."""


@dataclass(frozen=True)
class RangeResult:
    path: Path
    start_utc: datetime  # of the first frame (a keyframe, at or before the requested start)
    end_utc: datetime  # of the last frame + one frame duration
    frames: int
    segments_used: int


@dataclass(frozen=True)
class _TimedPacket:
    packet: av.Packet[Any]
    utc: datetime
    segment: int  # index into the selected segments


def overlapping_segments(
    segments: Sequence[SegmentInfo], start: datetime, end: datetime
) -> list[SegmentInfo]:
    """Segments with footage in ``[start, end)``, sorted by start."""
    return sorted(
        (s for s in segments if s.start_utc < end and s.end_utc > start),
        key=lambda s: s.start_utc,
    )


def remux_range(
    segments: Sequence[SegmentInfo], start: datetime, end: datetime, out_path: Path
) -> RangeResult:
    """Stream-copy the footage of ``[start, end)`` into the MP4 ``out_path``.

    Raises ``NothingArchived`` if no footage overlaps, ``ValueError`` for an empty or
    naive interval.
    """
    return _export(segments, start, end, out_path, _RemuxWriter)


def reencode_range(
    segments: Sequence[SegmentInfo], start: datetime, end: datetime, out_path: Path
) -> RangeResult:
    """BENCHMARK BASELINE ONLY: like :func:`remux_range` but decode + libx264 re-encode.

    The same frames (from the keyframe at or before ``start``) are decoded and encoded
    again (libx264 ultrafast, the cheapest re-encode), to show what the stream copy
    saves. Never use it to serve requests: it costs CPU and loses quality.
    """
    return _export(segments, start, end, out_path, _ReencodeWriter)


class _Writer:
    """Puts timed packets into an MP4 with pts relative to the first one."""

    def __init__(self, output: OutputContainer) -> None:
        self.output = output
        self.frames = 0
        self.first_utc: datetime | None = None
        self.last_tick = -1
        self.frame_ticks = _DEFAULT_FRAME_TICKS
        self.segments: set[int] = set()

    def adopt(self, template: VideoStream) -> None:
        """Called with the first segment's stream while its file is open."""
        raise NotImplementedError

    def write(self, timed: _TimedPacket) -> None:
        if self.first_utc is None:
            self.first_utc = timed.utc
        tick = _ticks_between(self.first_utc, timed.utc)
        tick = max(tick, self.last_tick + 1)
        if self.frames and tick - self.last_tick <= _MAX_FRAME_TICKS:
            self.frame_ticks = tick - self.last_tick
        self.emit(timed.packet, tick)
        self.last_tick = tick
        self.frames += 1
        self.segments.add(timed.segment)

    def emit(self, packet: av.Packet[Any], tick: int) -> None:
        raise NotImplementedError

    def finish(self) -> None:
        raise NotImplementedError

    def end_utc(self) -> datetime:
        assert self.first_utc is not None
        return self.first_utc + ticks_to_timedelta(self.last_tick + self.frame_ticks)


class _RemuxWriter(_Writer):
    """Stream copy. Muxing lags one packet behind so each packet gets its duration."""

    def __init__(self, output: OutputContainer) -> None:
        super().__init__(output)
        self._stream: Stream | None = None
        self._pending: av.Packet[Any] | None = None

    def adopt(self, template: VideoStream) -> None:
        if self._stream is None:
            self._stream = self.output.add_stream_from_template(template)

    def emit(self, packet: av.Packet[Any], tick: int) -> None:
        assert self._stream is not None
        self._flush_pending(tick)
        packet.stream = self._stream
        packet.pts = packet.dts = tick
        packet.time_base = TIME_BASE
        self._pending = packet

    def finish(self) -> None:
        self._flush_pending(self.last_tick + self.frame_ticks)

    def _flush_pending(self, next_tick: int) -> None:
        if self._pending is not None:
            assert self._pending.pts is not None
            self._pending.duration = next_tick - self._pending.pts
            self.output.mux(self._pending)
            self._pending = None


class _ReencodeWriter(_Writer):
    """Baseline: decode every packet and encode it again with libx264."""

    def __init__(self, output: OutputContainer) -> None:
        super().__init__(output)
        self._decoder = av.CodecContext.create("h264", "r")
        self._stream: VideoStream | None = None

    def adopt(self, template: VideoStream) -> None:
        if self._stream is not None:
            return
        rate = template.average_rate or template.guessed_rate or Fraction(25)
        stream = self.output.add_stream("libx264", rate=rate)
        stream.width = template.codec_context.width
        stream.height = template.codec_context.height
        stream.pix_fmt = "yuv420p"
        stream.time_base = TIME_BASE
        stream.codec_context.time_base = TIME_BASE
        stream.codec_context.options = {"preset": "ultrafast"}
        self._stream = stream

    def emit(self, packet: av.Packet[Any], tick: int) -> None:
        packet.pts = packet.dts = tick
        packet.time_base = TIME_BASE
        self._encode(self._decoder.decode(packet))

    def finish(self) -> None:
        self._encode(self._decoder.decode(None))
        assert self._stream is not None
        self.output.mux(self._stream.encode(None))

    def _encode(self, frames: Sequence[Any]) -> None:
        assert self._stream is not None
        for frame in frames:
            frame.time_base = TIME_BASE
            frame.pict_type = av.video.frame.PictureType.NONE
            self.output.mux(self._stream.encode(frame))


class _MarkingWriter(_ReencodeWriter):
    """Re-encode with every frame passed through ``mark`` (a per-viewer watermark)."""

    mark: Callable[[Any], Any] = staticmethod(lambda frame: frame)

    def _encode(self, frames: Sequence[Any]) -> None:
        super()._encode([self.mark(frame) for frame in frames])


def watermarked_range(
    segments: Sequence[SegmentInfo],
    start: datetime,
    end: datetime,
    out_path: Path,
    mark: Callable[[Any], Any],
) -> RangeResult:
    """Like :func:`remux_range`, but decoded, marked and re-encoded: only for sites that
    switched the viewer watermark on (it costs CPU and a generation of quality)."""

    class Writer(_MarkingWriter):
        pass

    Writer.mark = staticmethod(mark)
    return _export(segments, start, end, out_path, Writer)


def _export(
    segments: Sequence[SegmentInfo],
    start: datetime,
    end: datetime,
    out_path: Path,
    writer_type: Callable[[OutputContainer], _Writer],
) -> RangeResult:
    _check_interval(start, end)
    chosen = overlapping_segments(segments, start, end)
    if not chosen:
        raise NothingArchived(f"no footage between {start.isoformat()} and {end.isoformat()}")
    with (
        _atomic_output(out_path) as partial,
        av.open(str(partial), "w", format="mp4", container_options=_MP4_OPTIONS) as output,
    ):
        writer = writer_type(output)
        for timed in _kept_packets(chosen, start, end, writer.adopt):
            writer.write(timed)
        if writer.first_utc is None:
            raise NothingArchived(f"the segments overlapping {start}..{end} have no frames")
        writer.finish()
    _LOGGER.info(
        "exported %d frames from %d segments to %s", writer.frames, len(writer.segments), out_path
    )
    return RangeResult(
        path=out_path,
        start_utc=writer.first_utc,
        end_utc=writer.end_utc(),
        frames=writer.frames,
        segments_used=len(writer.segments),
    )


def _check_interval(start: datetime, end: datetime) -> None:
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("start and end must be timezone-aware")
    if end <= start:
        raise ValueError(f"empty interval: {start.isoformat()} .. {end.isoformat()}")


@contextmanager
def _atomic_output(out_path: Path) -> Iterator[Path]:
    """A ``.partial`` path to write to, renamed to ``out_path`` only on success."""
    partial = out_path.with_name(out_path.name + PARTIAL_SUFFIX)
    try:
        yield partial
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    os.replace(partial, out_path)


def _kept_packets(
    chosen: Sequence[SegmentInfo],
    start: datetime,
    end: datetime,
    adopt: Callable[[VideoStream], None],
) -> Iterator[_TimedPacket]:
    """Packets from the last IDR at or before ``start`` to the last one before ``end``."""
    lead_in: list[_TimedPacket] = []  # the GOP that leads up to ``start``
    started = False
    for timed in _timed_packets(chosen, adopt):
        if timed.utc >= end:
            break
        if started:
            yield timed
            continue
        keyframe = NAL_IDR in nal_unit_types(bytes(timed.packet))
        if timed.utc <= start:
            if keyframe:
                lead_in = [timed]
            elif lead_in:
                lead_in.append(timed)
            continue
        if lead_in or keyframe:
            started = True
            yield from lead_in
            yield timed
            lead_in = []
    if not started:
        yield from lead_in  # the last frames before ``start`` are still on screen at ``start``


def _timed_packets(
    chosen: Sequence[SegmentInfo], adopt: Callable[[VideoStream], None]
) -> Iterator[_TimedPacket]:
    """Every video packet of the segments, with its wall-clock time, always later than the
    one before: where a back-filled segment overlaps the live archive (it starts at the
    keyframe before the outage), the overlap is played once."""
    last: datetime | None = None
    for index, segment in enumerate(chosen):
        with av.open(str(segment.path), options=_SEGMENT_PROBE) as source:
            stream = source.streams.video[0]
            adopt(stream)
            first_pts: int | None = None
            for packet in source.demux(stream):
                if packet.pts is None or not packet.size:
                    continue  # the demuxer's end-of-stream marker
                if first_pts is None:
                    first_pts = packet.pts
                offset = _ticks_to_seconds(packet.pts - first_pts, packet.time_base)
                utc = segment.start_utc + offset
                if last is not None and utc <= last:
                    continue
                last = utc
                yield _TimedPacket(packet, utc, index)


def _ticks_to_seconds(ticks: int, time_base: Fraction | None) -> timedelta:
    base = time_base or TIME_BASE
    return timedelta(microseconds=ticks * base.numerator * 1_000_000 // base.denominator)


def _ticks_between(first: datetime, later: datetime) -> int:
    return (later - first) // timedelta(microseconds=1) * CLOCK_RATE // 1_000_000

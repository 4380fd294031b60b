"""Write a recorded call into short, self-contained MP4 segments (O4).

Frames of the neutral recording layout (yuv420p) and the full audio mix (48 kHz mono
s16) come in; every ``segment_seconds`` the open segment is closed and a new one
starts with a fresh encoder, so each segment begins with a keyframe and plays on its
own in a browser (H.264 + AAC in MP4).

Crash safety, as in :mod:`clinicam.segments`: a segment is written to
``<name>.mp4.partial``; once complete it is closed, fsynced and renamed, the folder
fsynced, and only then handed to ``on_segment`` (which files it). A crash loses the
open segment only; :func:`remove_partial_segments` clears what it leaves behind.

Timing: video is stamped by the caller's clock (seconds since the recording started),
audio by its sample count; where the mix paused (skipped ticks, nobody attached) the
audio is padded with silence so that voices stay with their pictures.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
from av.container import OutputContainer

from clinicam.files import fsync_directory, fsync_file
from server.db import utcnow

_LOGGER = logging.getLogger(__name__)

AUDIO_RATE = 48_000
VIDEO_TIME_BASE = Fraction(1, 90_000)
AUDIO_TIME_BASE = Fraction(1, AUDIO_RATE)
SEGMENT_SUFFIX = ".mp4"
PARTIAL_SUFFIX = ".partial"
MAX_AUDIO_GAP_S = 0.1  # audio behind the clock by more than this is padded with silence


@dataclass(frozen=True)
class ClosedSegment:
    """A finished segment file, ready to be filed."""

    path: Path
    seq: int
    start_utc: datetime
    end_utc: datetime
    frames: int


def remove_partial_segments(folder: Path) -> list[Path]:
    """Delete unfinished segments a crash left in ``folder``; returns what was removed."""
    removed = []
    if folder.is_dir():
        for leftover in folder.glob(f"*{PARTIAL_SUFFIX}"):
            leftover.unlink(missing_ok=True)
            removed.append(leftover)
    return removed


class _Segment:
    """One open MP4: a video and an audio stream, their encoders and counters."""

    def __init__(self, path: Path, width: int, height: int, fps: int, kbps: int) -> None:
        self.partial = path.with_name(path.name + PARTIAL_SUFFIX)
        self.path = path
        self.output: OutputContainer = av.open(str(self.partial), "w", format="mp4")
        video = self.output.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.time_base = video.codec_context.time_base = VIDEO_TIME_BASE
        video.codec_context.bit_rate = kbps * 1000
        video.codec_context.options = {
            "preset": "ultrafast",
            "tune": "zerolatency",  # no look-ahead: a frame is out as soon as it is in
            "x264-params": f"keyint={fps * 2}:threads=1",
        }
        audio = self.output.add_stream("aac", rate=AUDIO_RATE, layout="mono")
        audio.bit_rate = 64_000
        self.video, self.audio = video, audio
        self.frames = 0
        self.samples = 0
        self.last_pts = -1

    def mux(self, packets: Any) -> None:
        for packet in packets:
            self.output.mux(packet)


class SegmentedRecording:
    """One call's recording: frames and audio in, closed segments out (not thread-safe:
    one caller at a time)."""

    def __init__(
        self,
        folder: Path,
        on_segment: Callable[[ClosedSegment], None],
        *,
        width: int = 640,
        height: int = 360,
        fps: int = 10,
        bitrate_kbps: int = 400,
        segment_seconds: float = 10.0,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.started_utc = clock()
        self._on_segment = on_segment
        self._size = (width, height)
        self._fps = fps
        self._kbps = bitrate_kbps
        self._segment_seconds = segment_seconds
        self._segment: _Segment | None = None
        self._segment_t0 = 0.0  # seconds since the recording started, at the segment's start
        self._seq = 0
        self.closed: list[ClosedSegment] = []

    def add_video(self, frame: av.VideoFrame, elapsed_s: float) -> None:
        """A composed frame, ``elapsed_s`` seconds after the recording started."""
        segment = self._segment
        if segment is not None and elapsed_s - self._segment_t0 >= self._segment_seconds:
            self._close_segment(elapsed_s)
            segment = None
        if segment is None:
            segment = self._open_segment(elapsed_s)
        pts = round((elapsed_s - self._segment_t0) / VIDEO_TIME_BASE)
        pts = max(pts, segment.last_pts + 1)
        if (
            frame.width != self._size[0]
            or frame.height != self._size[1]
            or frame.format.name != ("yuv420p")
        ):
            frame = frame.reformat(*self._size, format="yuv420p")
        frame.pts, frame.time_base = pts, VIDEO_TIME_BASE
        segment.last_pts = pts
        segment.mux(segment.video.encode(frame))
        segment.frames += 1

    def add_audio(self, samples: np.ndarray, elapsed_s: float) -> None:
        """A chunk of the full mix (s16 mono at 48 kHz) that ended ``elapsed_s`` seconds
        after the recording started; before the first frame of a segment it is dropped."""
        segment = self._segment
        if segment is None:
            return
        start_s = elapsed_s - len(samples) / AUDIO_RATE - self._segment_t0
        behind = start_s - segment.samples / AUDIO_RATE
        if behind > MAX_AUDIO_GAP_S:  # the mix paused: silence keeps voices with pictures
            self._write_audio(segment, np.zeros(round(behind * AUDIO_RATE), dtype=np.int16))
        self._write_audio(segment, samples)

    @staticmethod
    def _write_audio(segment: _Segment, samples: np.ndarray) -> None:
        if not len(samples):
            return
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(samples, dtype=np.int16).reshape(1, -1),
            format="s16",
            layout="mono",
        )
        frame.sample_rate = AUDIO_RATE
        frame.pts, frame.time_base = segment.samples, AUDIO_TIME_BASE
        segment.samples += len(samples)
        segment.mux(segment.audio.encode(frame))

    def _open_segment(self, elapsed_s: float) -> _Segment:
        name = f"{self.started_utc:%Y%m%dT%H%M%S}-{self._seq:05d}{SEGMENT_SUFFIX}"
        self._segment = _Segment(self.folder / name, *self._size, self._fps, self._kbps)
        self._segment_t0 = elapsed_s
        return self._segment

    def _close_segment(self, elapsed_s: float) -> None:
        segment, self._segment = self._segment, None
        if segment is None:
            return
        segment.mux(segment.video.encode(None))
        segment.mux(segment.audio.encode(None))
        segment.output.close()
        fsync_file(segment.partial)
        os.replace(segment.partial, segment.path)
        fsync_directory(self.folder)
        start = self.started_utc + timedelta(seconds=self._segment_t0)
        closed = ClosedSegment(
            segment.path,
            self._seq,
            start,
            self.started_utc + timedelta(seconds=max(elapsed_s, self._segment_t0 + 0.001)),
            segment.frames,
        )
        self._seq += 1
        self.closed.append(closed)
        self._on_segment(closed)

    def pause(self, elapsed_s: float) -> None:
        """Nobody is in the call: close the open segment (the next frame opens a new one)."""
        self._close_segment(elapsed_s)

    def close(self, elapsed_s: float) -> None:
        """The call ended: finish the open segment."""
        self._close_segment(elapsed_s)

"""The appliance's local recording (R17): what the encoder made, kept through an outage.

An output of the encoder (:mod:`firmware.media.encoders`) that writes every access unit
into MPEG-TS segments under ``<state_dir>/recording/``, the same format the server
archives (:mod:`clinicam.segments`), whether or not the stream reaches the server. The
folder is bounded by size and age: when full, the **oldest** segment goes (never the
newest), and the count of what went is reported in telemetry. After an outage the
back-filler (:mod:`firmware.media.backfill`) sends the server the segments its archive
lacks.

Each segment's file name is its start time (UTC); its time line comes from the
capture wall clock of each frame, so a segment covers exactly the time it shows. Files
are written by one worker thread (an SD card's fsync can take tens of milliseconds,
which the event loop carrying the live stream must not wait for); if the card falls
behind by more than :data:`QUEUE_FRAMES`, frames are dropped and counted, and the
recording resumes at the next keyframe.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from clinicam.segments import SEGMENT_SUFFIX, SegmentInfo, SegmentWriter, remove_partial_segments
from firmware.config import RecorderConfig
from firmware.media.encoders import EncodedFrame

_LOGGER = logging.getLogger(__name__)
TICKS_PER_S = 90_000
QUEUE_FRAMES = 150  # ≈10 s at 15 fps


@dataclass(frozen=True)
class LocalSegment:
    path: Path
    start_utc: datetime
    end_utc: datetime
    size: int


def segment_times(path: Path) -> tuple[datetime, datetime] | None:
    """Start and end of a kept segment, from its side file (None if unknown)."""
    side = path.with_suffix(".span")
    try:
        start, end = side.read_text().split()
        return datetime.fromisoformat(start), datetime.fromisoformat(end)
    except (OSError, ValueError):
        return None


class LocalRecorder:
    """Segments of the encoded stream in a bounded folder, oldest dropped first."""

    def __init__(self, folder: Path, config: RecorderConfig) -> None:
        self.folder = folder
        self._config = config
        folder.mkdir(parents=True, exist_ok=True)
        for leftover in remove_partial_segments(folder):
            _LOGGER.info("removed an unfinished local segment %s", leftover.name)
        for orphan in folder.glob(f"*{SEGMENT_SUFFIX}"):  # closed, but its times were lost
            if segment_times(orphan) is None:
                orphan.unlink(missing_ok=True)
        self._frame_utc = datetime.now(UTC)
        self._writer = SegmentWriter(
            folder,
            segment_seconds=config.segment_s,
            on_segment=self._closed,
            clock=lambda: self._frame_utc,
            max_clock_skew_s=2.0,
        )
        self.max_bytes = config.max_mb * 1024 * 1024
        self.dropped_segments = 0
        self.dropped_bytes = 0
        self.dropped_frames = 0
        self._queue: queue.Queue[EncodedFrame | None] = queue.Queue(maxsize=QUEUE_FRAMES)
        self._thread = threading.Thread(target=self._work, name="local-recorder", daemon=True)
        self._thread.start()

    def put(self, frame: EncodedFrame) -> None:
        """From the encoder, on the event loop: one access unit (never blocks)."""
        try:
            self._queue.put_nowait(frame)
        except queue.Full:
            self.dropped_frames += 1

    def put_waiting(self, frame: EncodedFrame) -> None:
        """Off the event loop: wait for room rather than drop (imports, tests)."""
        self._queue.put(frame)

    def flush(self) -> None:
        """Wait until every frame handed over so far is written."""
        self._queue.join()

    def _work(self) -> None:
        while (frame := self._queue.get()) is not None:
            self._frame_utc = datetime.fromtimestamp(frame.wall_time, UTC)
            ticks = round(frame.wall_time * TICKS_PER_S) & 0xFFFFFFFF
            try:
                self._writer.feed(bytes(frame.packet), ticks)
            except Exception:
                _LOGGER.exception("local recording failed for one frame; it restarts at an IDR")
            finally:
                self._queue.task_done()
        self._writer.close()
        self._queue.task_done()

    def close(self) -> None:
        """Write what is queued, finish the open segment, stop the worker."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def _closed(self, info: SegmentInfo) -> None:
        side = info.path.with_suffix(".span")
        side.write_text(f"{info.start_utc.isoformat()} {info.end_utc.isoformat()}\n")
        self.enforce_bounds()

    def segments(self) -> list[LocalSegment]:
        """The kept segments, oldest first."""
        out = []
        for path in sorted(self.folder.glob(f"*{SEGMENT_SUFFIX}")):
            times = segment_times(path)
            if times is not None:
                out.append(LocalSegment(path, *times, path.stat().st_size))
        return sorted(out, key=lambda s: s.start_utc)

    def enforce_bounds(self, now: float | None = None) -> None:
        """Drop the oldest segments until the folder is within size and age."""
        kept = self.segments()
        limit = self.max_bytes
        oldest_allowed = datetime.fromtimestamp(now if now is not None else time.time(), UTC)
        oldest_allowed -= timedelta(minutes=self._config.max_age_min)
        total = sum(s.size for s in kept)
        while kept and (total > limit or kept[0].end_utc < oldest_allowed):
            gone = kept.pop(0)
            total -= gone.size
            self.remove(gone)
            self.dropped_segments += 1
            self.dropped_bytes += gone.size
            _LOGGER.warning("local recording full: dropped the oldest segment %s", gone.path.name)

    def remove(self, segment: LocalSegment) -> None:
        segment.path.unlink(missing_ok=True)
        segment.path.with_suffix(".span").unlink(missing_ok=True)

    def figures(self) -> dict[str, int]:
        kept = self.segments()
        return {
            "segments": len(kept),
            "bytes": sum(s.size for s in kept),
            "dropped_segments": self.dropped_segments,
            "dropped_bytes": self.dropped_bytes,
            "dropped_frames": self.dropped_frames,
        }

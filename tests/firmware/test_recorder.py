"""The appliance's local recording: segments of what the encoder made, in a folder that
is bounded by size and age, dropping the oldest footage first and saying so."""

from __future__ import annotations

import itertools
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import av

from firmware.config import RecorderConfig
from firmware.media.encoders import EncodedFrame
from firmware.media.recorder import LocalRecorder
from tests.archive import FPS, encode_clip


def _record(recorder: LocalRecorder, units: list[bytes], start: datetime) -> None:
    for index, unit in enumerate(units):
        wall = (start + timedelta(seconds=index / FPS)).timestamp()
        recorder.put_waiting(EncodedFrame(av.Packet(unit), 0, 0, wall))


def test_segments_carry_their_times_and_a_crash_leaves_nothing_half_known(tmp_path: Path) -> None:
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=2)
    recorder = LocalRecorder(tmp_path, RecorderConfig(segment_s=5.0))
    _record(recorder, encode_clip(21), start)
    recorder.flush()
    kept = recorder.segments()
    assert len(kept) == 4, "the open segment is not listed until it closes"
    assert kept[0].start_utc == start
    assert all(
        b.start_utc - a.end_utc < timedelta(seconds=0.1) for a, b in itertools.pairwise(kept)
    )
    recorder.close()
    assert len(recorder.segments()) == 5
    (tmp_path / "orphan.ts").write_bytes(b"closed, but its times were never written")
    (tmp_path / "open.ts.partial").write_bytes(b"cut short by a power cut")
    again = LocalRecorder(tmp_path, RecorderConfig(segment_s=5.0))
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix in (".ts", ".partial")) == sorted(
        s.path.name for s in again.segments()
    )


def test_a_full_folder_drops_the_oldest_never_the_newest(tmp_path: Path) -> None:
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=2)
    units = encode_clip(60)
    recorder = LocalRecorder(tmp_path, RecorderConfig(segment_s=5.0, max_mb=8))
    _record(recorder, units[: 6 * FPS], start)
    recorder.flush()
    per_segment = max(s.size for s in recorder.segments())
    budget = 3 * per_segment + per_segment // 2  # room for three and a half segments
    recorder.max_bytes = budget
    _record(recorder, units[6 * FPS :], start + timedelta(seconds=6))
    recorder.close()
    kept = recorder.segments()
    assert sum(s.size for s in kept) <= budget
    assert kept[-1].end_utc >= start + timedelta(seconds=59), "the newest footage is kept"
    assert recorder.dropped_segments >= 8 and recorder.figures()["dropped_segments"] >= 8


def test_footage_older_than_the_age_limit_goes(tmp_path: Path) -> None:
    old = datetime.now(UTC) - timedelta(hours=3)
    recorder = LocalRecorder(tmp_path, RecorderConfig(segment_s=5.0, max_age_min=60))
    _record(recorder, encode_clip(11), old)
    recorder.close()
    assert recorder.segments() == [] and recorder.dropped_segments == 3
    recorder.enforce_bounds(now=time.time())

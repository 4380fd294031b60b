"""remux_range: one playable MP4 of an interval, cut at keyframes, packets copied untouched.

The archive: a 60 s run (six 10 s segments, frame i at BASE + i/25 s), then a gap,
then a second run from 80 s to 100 s after the sender restarted.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import av
import pytest

from clinicam.segments import NAL_AUD, SegmentInfo, nal_units
from server.archive.range import NothingArchived, RangeResult, reencode_range, remux_range
from tests.archive import (
    BASE_UTC,
    FPS,
    HEIGHT,
    TICKS_PER_FRAME,
    WIDTH,
    avcc_nal_units,
    encode_clip,
    read_frame_index,
    write_archive,
)

SECOND_RUN_S = 80


@dataclass(frozen=True)
class Archive:
    segments: list[SegmentInfo]
    units: list[bytes]  # frame i of the first run; frame i of the second run is units[i] too


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Archive:
    units = encode_clip(60.0)
    folder = tmp_path_factory.mktemp("archive")
    first = write_archive(folder, units)
    second = write_archive(
        folder, units, frames=range(20 * FPS), start=at(SECOND_RUN_S), first_rtp=987_654_321
    )
    assert len(first) == 6 and len(second) == 2
    return Archive(first + second, units)


def at(seconds: float) -> datetime:
    return BASE_UTC + timedelta(seconds=seconds)


@dataclass
class Mp4:
    samples: list[bytes]
    pts: list[int]
    keyframes: list[bool]
    duration_s: float
    frame_indices: list[int]
    first_frame_is_key: bool
    size: tuple[int, int]  # as the MP4 header declares it


def read_mp4(path: Path) -> Mp4:
    with av.open(str(path)) as container:
        assert container.format.name.startswith("mov")
        stream = container.streams.video[0]
        packets = [p for p in container.demux(stream) if p.size]
        assert stream.duration is not None and stream.time_base is not None
        duration = float(stream.duration * stream.time_base)
        size = (stream.codec_context.width, stream.codec_context.height)
    with av.open(str(path)) as container:
        frames = list(container.decode(video=0))
    return Mp4(
        samples=[bytes(p) for p in packets],
        pts=[p.pts for p in packets if p.pts is not None],
        keyframes=[p.is_keyframe for p in packets],
        duration_s=duration,
        frame_indices=[read_frame_index(f) for f in frames],
        first_frame_is_key=bool(frames) and frames[0].key_frame,
        size=size,
    )


def assert_copied(mp4: Mp4, originals: list[bytes]) -> None:
    """Every sample is the original access unit (plus the TS delimiter), byte for byte."""
    assert len(mp4.samples) == len(originals)
    for sample, original in zip(mp4.samples, originals, strict=True):
        units = avcc_nal_units(sample)
        assert units[0][0] & 0x1F == NAL_AUD
        assert units[1:] == nal_units(original)


def test_a_range_inside_the_archive(archive: Archive, tmp_path: Path) -> None:
    out = tmp_path / "visit.mp4"
    result = remux_range(archive.segments, at(15.4), at(35), out)

    assert result == RangeResult(out, at(15), at(35), 500, 3)  # from the IDR at 15 s
    mp4 = read_mp4(out)
    assert mp4.size == (WIDTH, HEIGHT)
    assert mp4.first_frame_is_key and mp4.keyframes[0]
    assert mp4.frame_indices == list(range(375, 875))  # fully decodes, every frame once
    assert 20.0 <= mp4.duration_s <= 21.0
    assert mp4.pts[0] == 0 and all(b - a == TICKS_PER_FRAME for a, b in itertools.pairwise(mp4.pts))
    assert_copied(mp4, archive.units[375:875])
    head = out.read_bytes()[:4096]
    assert b"moov" in head and head.index(b"moov") < out.read_bytes().index(b"mdat")  # faststart
    assert list(tmp_path.iterdir()) == [out]


def test_a_range_on_keyframes_and_the_end_is_exclusive(archive: Archive, tmp_path: Path) -> None:
    result = remux_range(archive.segments, at(15), at(35), tmp_path / "a.mp4")
    assert (result.start_utc, result.end_utc, result.frames) == (at(15), at(35), 500)
    short = remux_range(archive.segments, at(15), at(15.5), tmp_path / "b.mp4")
    assert short.frames == 13  # 15.00, 15.04, …, 15.48
    assert read_mp4(short.path).frame_indices == list(range(375, 388))


def test_a_range_with_no_footage(archive: Archive, tmp_path: Path) -> None:
    out = tmp_path / "none.mp4"
    with pytest.raises(NothingArchived):
        remux_range(archive.segments, at(65), at(75), out)  # in the gap
    with pytest.raises(NothingArchived):
        remux_range(archive.segments, at(-100), at(-10), out)  # before the archive
    with pytest.raises(NothingArchived):
        remux_range([], at(0), at(10), out)
    with pytest.raises(ValueError):
        remux_range(archive.segments, at(20), at(10), out)
    assert list(tmp_path.iterdir()) == []


def test_a_range_across_the_gap_between_two_runs(archive: Archive, tmp_path: Path) -> None:
    result = remux_range(archive.segments, at(50), at(90), tmp_path / "gap.mp4")
    assert (result.start_utc, result.end_utc) == (at(50), at(90))
    assert (result.frames, result.segments_used) == (500, 2)
    mp4 = read_mp4(result.path)
    assert mp4.frame_indices == [*range(1250, 1500), *range(250)]
    assert all(b > a for a, b in itertools.pairwise(mp4.pts))
    jump = mp4.pts[250] - mp4.pts[249]  # 59.96 s → 80 s stays a real gap
    assert jump == round((SECOND_RUN_S - 59.96) * 90_000)
    assert_copied(mp4, archive.units[1250:1500] + archive.units[:250])


def test_a_range_starting_in_the_gap_starts_with_the_next_run(
    archive: Archive, tmp_path: Path
) -> None:
    result = remux_range(archive.segments, at(70), at(85), tmp_path / "late.mp4")
    assert (result.start_utc, result.frames, result.segments_used) == (at(80), 125, 1)
    assert read_mp4(result.path).frame_indices == list(range(125))


def test_reencode_baseline_covers_the_same_frames(archive: Archive, tmp_path: Path) -> None:
    copied = remux_range(archive.segments, at(19.5), at(21), tmp_path / "copy.mp4")
    encoded = reencode_range(archive.segments, at(19.5), at(21), tmp_path / "encoded.mp4")
    assert (encoded.start_utc, encoded.end_utc, encoded.frames) == (
        copied.start_utc,
        copied.end_utc,
        copied.frames,
    )
    mp4 = read_mp4(encoded.path)
    assert mp4.frame_indices == list(range(475, 525))
    assert mp4.samples[1:] != [bytes(s) for s in read_mp4(copied.path).samples[1:]]

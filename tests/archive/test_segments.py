"""SegmentWriter: IDR-aligned, contiguous, byte-exact MPEG-TS segments on a 90 kHz timeline."""

from __future__ import annotations

import itertools
import logging
import re
import shutil
from datetime import datetime, timedelta
from pathlib import Path

import av
import pytest

from clinicam.segments import (
    NAL_AUD,
    NAL_IDR,
    NAL_PPS,
    NAL_SPS,
    PARTIAL_SUFFIX,
    SegmentInfo,
    SegmentWriter,
    nal_unit_types,
    nal_units,
    remove_partial_segments,
)
from tests.archive import (
    BASE_UTC,
    FPS,
    TICKS_PER_FRAME,
    FakeClock,
    encode_clip,
    feed_frames,
    read_frame_index,
    write_archive,
)

AUD = b"\x00\x00\x00\x01\x09\xf0"  # the delimiter the MPEG-TS muxer puts before each frame


@pytest.fixture(scope="module")
def clip() -> list[bytes]:
    return encode_clip(30.0)


def demuxed(path: Path) -> list[av.Packet]:
    with av.open(str(path)) as container:
        return [p for p in container.demux(video=0) if p.size]


def decoded_indices(path: Path) -> list[int]:
    with av.open(str(path)) as container:
        return [read_frame_index(frame) for frame in container.decode(video=0)]


def at(seconds: float) -> datetime:
    return BASE_UTC + timedelta(seconds=seconds)


def test_the_clip_is_what_a_webrtc_sender_sends(clip: list[bytes]) -> None:
    assert len(clip) == 30 * FPS
    assert all(unit.startswith(b"\x00\x00\x00\x01") for unit in clip)
    keyframes = [i for i, unit in enumerate(clip) if NAL_IDR in nal_unit_types(unit)]
    assert keyframes == list(range(0, 30 * FPS, 25))
    assert all(nal_unit_types(clip[i])[:2] == [NAL_SPS, NAL_PPS] for i in keyframes)


def test_frames_before_the_first_keyframe_are_dropped_and_segments_start_at_an_idr(
    clip: list[bytes], tmp_path: Path
) -> None:
    segments: list[SegmentInfo] = []
    clock = FakeClock()
    writer = SegmentWriter(tmp_path, segment_seconds=10.0, on_segment=segments.append, clock=clock)
    feed_frames(writer, clock, clip, frames=range(5, len(clip)))  # joined mid-GOP
    writer.close()

    assert writer.frames_dropped == 20  # frames 5..24, until the IDR at frame 25 (1 s)
    assert [s.start_utc for s in segments] == [at(1), at(11), at(21)]
    assert [s.frames for s in segments] == [250, 250, 225]
    assert [s.keyframes for s in segments] == [10, 10, 9]
    for segment in segments:
        assert re.fullmatch(r"\d{8}T\d{6}\.\d{3}Z\.ts", segment.path.name)
        assert segment.size == segment.path.stat().st_size > 0
        first = bytes(demuxed(segment.path)[0])
        assert {NAL_SPS, NAL_PPS, NAL_IDR} <= set(nal_unit_types(first))
    assert segments[0].path.name == "20261124T031501.000Z.ts"
    assert list(tmp_path.glob(f"*{PARTIAL_SUFFIX}")) == []


def test_segments_are_contiguous_and_decode_on_their_own(clip: list[bytes], tmp_path: Path) -> None:
    segments = write_archive(tmp_path, clip)
    assert len(segments) == 3
    for earlier, later in itertools.pairwise(segments):
        assert earlier.end_utc == later.start_utc
    assert segments[-1].end_utc == at(30)
    first_frames = [0, 250, 500]
    for segment, first in zip(segments, first_frames, strict=True):
        indices = decoded_indices(segment.path)  # each file alone, no state from the previous
        assert indices == list(range(first, first + segment.frames))


def test_packet_bytes_are_preserved_exactly(clip: list[bytes], tmp_path: Path) -> None:
    segments = write_archive(tmp_path, clip)
    out = [packet for segment in segments for packet in demuxed(segment.path)]
    assert len(out) == len(clip)
    for original, packet in zip(clip, out, strict=True):
        # Only the muxer's access unit delimiter is added: no re-encoding, no rewriting.
        assert bytes(packet) == AUD + original
    pts = [p.pts for p in demuxed(segments[0].path)]
    assert [b - a for a, b in itertools.pairwise(pts)] == [TICKS_PER_FRAME] * 249


def test_rtp_timestamp_wraparound(clip: list[bytes], tmp_path: Path) -> None:
    first_rtp = (1 << 32) - 5 * 90_000  # wraps 5 s in
    segments = write_archive(tmp_path, clip, first_rtp=first_rtp)
    assert [s.start_utc for s in segments] == [at(0), at(10), at(20)]
    assert [s.end_utc for s in segments] == [at(10), at(20), at(30)]
    pts = [p.pts for p in demuxed(segments[0].path)]
    assert pts == sorted(pts) and pts[-1] - pts[0] == 249 * TICKS_PER_FRAME


def test_unwrapped_aiortc_timestamps_beyond_32_bits(clip: list[bytes], tmp_path: Path) -> None:
    segments: list[SegmentInfo] = []
    clock = FakeClock()
    writer = SegmentWriter(tmp_path, on_segment=segments.append, clock=clock)
    for index, unit in enumerate(clip):  # aiortc's TimestampMapper keeps counting past 2**32
        clock.now = BASE_UTC + timedelta(seconds=index / FPS)
        writer.feed(unit, (1 << 32) - 90_000 + index * TICKS_PER_FRAME)
    writer.close()
    assert [s.start_utc for s in segments] == [at(0), at(10), at(20)]
    assert segments[-1].end_utc == at(30)


def test_a_sender_restart_reanchors_on_the_wall_clock(clip: list[bytes], tmp_path: Path) -> None:
    segments: list[SegmentInfo] = []
    clock = FakeClock()
    writer = SegmentWriter(tmp_path, on_segment=segments.append, clock=clock)
    feed_frames(writer, clock, clip, frames=range(0, 300))  # 12 s
    # The sender restarts: new random RTP origin; the next frame is an IDR 0.04 s later.
    feed_frames(writer, clock, clip, frames=range(300, 500), first_rtp=123_456_789)
    writer.close()

    assert [s.start_utc for s in segments] == [at(0), at(10), at(12)]
    assert [s.frames for s in segments] == [250, 50, 200]
    assert segments[1].end_utc == at(12)
    assert decoded_indices(segments[2].path) == list(range(300, 500))


def test_an_idr_without_parameter_sets_gets_the_cached_ones(
    clip: list[bytes], tmp_path: Path
) -> None:
    bare = list(clip)
    for index in range(25, len(bare), 25):  # only the very first IDR carries SPS/PPS
        units = [u for u in nal_units(bare[index]) if u[0] & 0x1F not in (NAL_SPS, NAL_PPS)]
        bare[index] = b"".join(b"\x00\x00\x00\x01" + u for u in units)
    segments = write_archive(tmp_path, bare)

    assert len(segments) == 3
    for segment, first in zip(segments, [0, 250, 500], strict=True):
        head = bytes(demuxed(segment.path)[0])
        assert nal_unit_types(head)[:3] == [NAL_AUD, NAL_SPS, NAL_PPS]
        assert NAL_IDR in nal_unit_types(head)
        assert decoded_indices(segment.path)[:3] == [first, first + 1, first + 2]


def test_an_open_segment_is_a_partial_file_that_can_be_removed(
    clip: list[bytes], tmp_path: Path
) -> None:
    segments: list[SegmentInfo] = []
    clock = FakeClock()
    writer = SegmentWriter(tmp_path, on_segment=segments.append, clock=clock)
    feed_frames(writer, clock, clip, frames=range(0, 100))
    partial = list(tmp_path.glob(f"*{PARTIAL_SUFFIX}"))
    assert len(partial) == 1 and segments == []
    assert list(tmp_path.glob("*.ts")) == []  # nothing final until the segment closes

    leftover = tmp_path / f"20261124T000000.000Z.ts{PARTIAL_SUFFIX}"
    shutil.copy(partial[0], leftover)  # what a crash would leave behind
    writer.close()
    assert remove_partial_segments(tmp_path) == [leftover]
    assert [p.name for p in tmp_path.iterdir()] == [segments[0].path.name]


def test_a_failing_on_segment_does_not_stop_archiving(
    clip: list[bytes], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[SegmentInfo] = []

    def broken_index(info: SegmentInfo) -> None:
        calls.append(info)
        raise OSError("database down")

    clock = FakeClock()
    writer = SegmentWriter(tmp_path, on_segment=broken_index, clock=clock)
    with caplog.at_level(logging.ERROR, logger="clinicam.segments"):
        feed_frames(writer, clock, clip)
        writer.close()
    assert len(calls) == 3
    assert all(info.path.exists() for info in calls)
    assert sum("on_segment failed" in r.getMessage() for r in caplog.records) == 3

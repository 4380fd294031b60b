"""Answering a 60-second range request from a one-hour archive: stream copy vs re-encode.

1. Build the archive the way the server does: ``SegmentWriter`` turns H.264 access
   units into 10 s MPEG-TS segments (fsync and rename included). To be quick, 10 s of
   camera-like 1280×720 video (gradient, moving disc, sensor noise) is encoded once
   with libx264 ultrafast at 25 fps, 2.5 Mbit/s, an IDR every second with SPS/PPS (the
   appliance's defaults), and fed again and again with advancing RTP timestamps: one
   hour, 360 segments, ~1 GB (``--quick``: ten minutes).
2. ``remux_range`` for a 60 s interval in the middle of the archive, not aligned to a
   keyframe or a segment: the median of several runs with the segments in the page
   cache (just written), and the median with the segments dropped from the cache
   first (``posix_fadvise(DONTNEED)``, a request for old footage).
3. In the same run, ``reencode_range`` of the same interval (decode + libx264
   ultrafast re-encode, the cheapest re-encoding export), and the ratio.

    python bench/archive_range.py [--quick]

Last line: JSON with range_60s_ms, reencode_60s_ms, ratio (and the cold-cache median).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.video.codeccontext import VideoCodecContext

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.timing import timed  # noqa: E402
from clinicam.segments import SegmentInfo, SegmentWriter  # noqa: E402
from server.archive.range import RangeResult, reencode_range, remux_range  # noqa: E402

WIDTH, HEIGHT, FPS = 1280, 720, 25
CLIP_SECONDS = 10
TICKS_PER_FRAME = 90_000 // FPS
RANGE_SECONDS = 60
BASE_UTC = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)


def camera_frames(count: int) -> list[av.VideoFrame]:
    """yuv420p frames: a tinted gradient, a moving disc and sensor noise."""
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    base = 60 + 60 * xx / WIDTH + 60 * yy / HEIGHT
    noise = [rng.normal(0, 2.0, (HEIGHT, WIDTH)) for _ in range(8)]
    chroma = np.concatenate(
        [np.full((HEIGHT // 4, WIDTH), 118, np.uint8), np.full((HEIGHT // 4, WIDTH), 136, np.uint8)]
    )
    frames = []
    for i in range(count):
        cx = WIDTH * (0.2 + 0.6 * i / count)
        disc = ((xx - cx) ** 2 + (yy - HEIGHT / 2) ** 2) < (HEIGHT / 5) ** 2
        luma = np.clip(np.where(disc, 200.0, base) + noise[i % len(noise)], 16, 235)
        planes = np.concatenate([luma.astype(np.uint8), chroma])
        frames.append(av.VideoFrame.from_ndarray(planes, format="yuv420p"))
    return frames


def encode_clip() -> list[bytes]:
    """CLIP_SECONDS of Annex-B access units, one per frame, SPS/PPS before every IDR."""
    codec = av.CodecContext.create("libx264", "w")
    assert isinstance(codec, VideoCodecContext)
    codec.width, codec.height, codec.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    codec.framerate = Fraction(FPS, 1)
    codec.time_base = Fraction(1, FPS)
    codec.bit_rate = 2_500_000
    codec.options = {
        "preset": "ultrafast",
        "tune": "zerolatency",
        "profile": "baseline",
        "x264-params": f"keyint={FPS}:min-keyint={FPS}:scenecut=0:repeat-headers=1",
    }
    units = []
    for pts, frame in enumerate(camera_frames(CLIP_SECONDS * FPS)):
        frame.pts = pts
        units.extend(bytes(packet) for packet in codec.encode(frame))
    units.extend(bytes(packet) for packet in codec.encode(None))
    return units


def build_archive(folder: Path, clip: list[bytes], seconds: int) -> list[SegmentInfo]:
    """``seconds`` of live stream through SegmentWriter: the clip over and over."""
    segments: list[SegmentInfo] = []
    now = BASE_UTC
    writer = SegmentWriter(
        folder, segment_seconds=10.0, on_segment=segments.append, clock=lambda: now
    )
    for index in range(seconds * FPS):
        now = BASE_UTC + timedelta(seconds=index / FPS)
        writer.feed(clip[index % len(clip)], index * TICKS_PER_FRAME % (1 << 32))
    writer.close()
    return segments


def drop_from_page_cache(segments: list[SegmentInfo]) -> None:
    for segment in segments:
        descriptor = os.open(segment.path, os.O_RDONLY)
        try:
            os.posix_fadvise(descriptor, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(descriptor)


@dataclass
class RangeRun:
    """A 60 s range cut from the middle of an archive: remux timings and one re-encode."""

    result: RangeResult
    start: datetime
    warm_ms: list[float]  # segments in the page cache
    cold_ms: list[float]  # segments dropped from it first
    reencode_ms: float
    mp4_mb: float


def measure_ranges(
    clip: list[bytes], archive_seconds: int, runs: int, *, cold_runs: int = 0
) -> RangeRun:
    """Write an archive of ``clip``, then time remuxing and re-encoding one range of it."""
    with tempfile.TemporaryDirectory(prefix="clinicam-archive-bench-") as tmp:
        folder, out = Path(tmp) / "segments", Path(tmp) / "range.mp4"
        started = time.perf_counter()
        segments = build_archive(folder, clip, archive_seconds)
        size_mb = sum(s.size for s in segments) / 1e6
        print(
            f"archive: {archive_seconds // 60} min, {len(segments)} segments, {size_mb:.0f} MB, "
            f"written in {time.perf_counter() - started:.1f} s"
        )
        start = BASE_UTC + timedelta(seconds=archive_seconds / 2 + 3.52)  # mid-GOP, mid-segment
        end = start + timedelta(seconds=RANGE_SECONDS)

        def remux() -> RangeResult:
            return remux_range(segments, start, end, out)

        result = remux()  # warm-up, and the page cache holds what it reads
        warm = timed(remux, runs)
        cold = timed(remux, cold_runs, before=lambda: drop_from_page_cache(segments))
        mp4_mb = out.stat().st_size / 1e6
        reencode = timed(lambda: reencode_range(segments, start, end, out), 1)
    return RangeRun(result, start, warm, cold, reencode[0], mp4_mb)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10-minute archive (under a minute)")
    args = parser.parse_args()
    archive_seconds, runs = (600, 7) if args.quick else (3600, 15)

    load = os.getloadavg()[0]
    print(
        f"load average before the run: {load:.2f} on {os.cpu_count()} CPUs (other work skews this)"
    )
    started = time.perf_counter()
    clip = encode_clip()
    took = time.perf_counter() - started
    print(f"encoded {len(clip)} frames of {WIDTH}x{HEIGHT} once in {took:.1f} s")

    run = measure_ranges(clip, archive_seconds, runs, cold_runs=max(3, runs // 3))
    result, start = run.result, run.start
    warm, cold, mp4_mb = run.warm_ms, run.cold_ms, run.mp4_mb
    range_ms, cold_ms, reencode_ms = (
        statistics.median(warm),
        statistics.median(cold),
        run.reencode_ms,
    )
    lead_in = (start - result.start_utc).total_seconds()
    print(
        f"range request {RANGE_SECONDS} s: {result.frames} frames from {result.segments_used} "
        f"segments, starts {lead_in:.2f} s early at the IDR, MP4 {mp4_mb:.1f} MB"
    )
    print(f"remux_range, segments in page cache: median {range_ms:.1f} ms ({runs} runs)")
    print(f"remux_range, segments dropped from cache: median {cold_ms:.1f} ms ({len(cold)} runs)")
    print(f"reencode_range (decode + libx264 ultrafast), same range: {reencode_ms:.0f} ms")
    print(f"ratio reencode / remux: {reencode_ms / range_ms:.1f}x")
    result_json = {
        "range_60s_ms": round(range_ms, 1),
        "range_60s_cold_ms": round(cold_ms, 1),
        "reencode_60s_ms": round(reencode_ms, 1),
        "ratio": round(reencode_ms / range_ms, 1),
    }
    print(json.dumps(result_json))


if __name__ == "__main__":
    main()

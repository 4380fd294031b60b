"""Shared fixtures-by-hand for the archive tests: a synthetic H.264 clip and a fake clock.

Each frame carries its index twice: as a grey level (different pictures, so the
encoder really codes changes) and as 12 black/white blocks along the top edge, which
survive lossy coding and let a test read back which frame a decoder produced.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from clinicam.segments import SegmentInfo, SegmentWriter

WIDTH, HEIGHT, FPS, GOP = 320, 240, 25, 25
TICKS_PER_FRAME = 90_000 // FPS
BASE_UTC = datetime(2026, 11, 24, 3, 15, tzinfo=UTC)
_BITS, _BLOCK = 12, 16


def numbered_frame(index: int, width: int = WIDTH, height: int = HEIGHT) -> av.VideoFrame:
    """A yuv420p picture showing ``index`` as a grey level and as binary blocks."""
    luma = np.full((height, width), 40 + (index * 7) % 160, np.uint8)
    for bit in range(_BITS):
        value = 235 if index >> bit & 1 else 16
        luma[0:_BLOCK, bit * _BLOCK : (bit + 1) * _BLOCK] = value
    chroma = np.full((height // 2, width), 128, np.uint8)
    return av.VideoFrame.from_ndarray(np.concatenate([luma, chroma]), format="yuv420p")


def read_frame_index(frame: av.VideoFrame) -> int:
    """The index :func:`numbered_frame` drew into ``frame``."""
    luma = frame.to_ndarray(format="gray")
    centre = _BLOCK // 2
    return sum(1 << bit for bit in range(_BITS) if luma[centre, bit * _BLOCK + centre] > 128)


def encode_clip(seconds: float, gop: int = GOP) -> list[bytes]:
    """Annex-B access units (SPS/PPS before every IDR, one per frame) of a numbered clip."""
    codec = av.CodecContext.create("libx264", "w")
    assert isinstance(codec, av.video.codeccontext.VideoCodecContext)
    codec.width, codec.height, codec.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    codec.time_base = Fraction(1, FPS)
    codec.framerate = Fraction(FPS, 1)
    codec.options = {
        "preset": "ultrafast",
        "tune": "zerolatency",
        "profile": "baseline",
        "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0:repeat-headers=1",
    }
    units: list[bytes] = []
    for index in range(round(seconds * FPS)):
        frame = numbered_frame(index)
        frame.pts = index
        units.extend(bytes(packet) for packet in codec.encode(frame))
    units.extend(bytes(packet) for packet in codec.encode(None))
    assert len(units) == round(seconds * FPS)
    return units


class FakeClock:
    """A wall clock the test moves along with the frames it feeds."""

    def __init__(self, now: datetime = BASE_UTC) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def feed_frames(
    writer: SegmentWriter,
    clock: FakeClock,
    units: list[bytes],
    *,
    frames: range | None = None,
    start: datetime = BASE_UTC,
    first_rtp: int = 0,
) -> None:
    """Feed ``units[i]`` (i in ``frames``, default all) as if frame i came at start + i/FPS."""
    for index in frames if frames is not None else range(len(units)):
        clock.now = start + timedelta(seconds=index / FPS)
        writer.feed(units[index], (first_rtp + index * TICKS_PER_FRAME) % (1 << 32))


def write_archive(
    folder: Path,
    units: list[bytes],
    *,
    frames: range | None = None,
    start: datetime = BASE_UTC,
    first_rtp: int = 0,
) -> list[SegmentInfo]:
    """``units`` (or those in ``frames``) as 10 s segments in ``folder``; the closed segments."""
    segments: list[SegmentInfo] = []
    clock = FakeClock(start)
    writer = SegmentWriter(folder, segment_seconds=10.0, on_segment=segments.append, clock=clock)
    feed_frames(writer, clock, units, frames=frames, start=start, first_rtp=first_rtp)
    writer.close()
    return segments


def avcc_nal_units(sample: bytes) -> list[bytes]:
    """NAL units of an MP4 sample (4-byte big-endian length prefixes)."""
    units, position = [], 0
    while position < len(sample):
        length = int.from_bytes(sample[position : position + 4], "big")
        units.append(sample[position + 4 : position + 4 + length])
        position += 4 + length
    return units

"""A capture-time barcode burnt into frames, for measuring glass-to-glass latency.

Off by default (it covers part of the picture). When on, the bottom-left corner of
each frame carries 24 blocks, one bit each (white = 1), of the wall-clock capture
time in milliseconds modulo 2**24 (about 4.6 hours), most significant bit first.
Blocks are 1/40 of the frame width, so they survive scaling into a composite tile
and two H.264 encodes; a reader samples block centres and thresholds at mid-grey.
"""

from __future__ import annotations

import time

import av
import numpy as np

BITS = 24
WHITE, BLACK = 235, 16


def block_size(width: int) -> int:
    """Square blocks of 1/40 of the width (exact for 640, 1280, 1920, 3840)."""
    return max(2, width // 40)


def encode_ms(now_ms: int) -> list[int]:
    value = now_ms % (1 << BITS)
    return [(value >> (BITS - 1 - i)) & 1 for i in range(BITS)]


def decode_bits(bits: list[int]) -> int:
    value = 0
    for bit in bits:
        value = (value << 1) | bit
    return value


def stamp(frame: av.VideoFrame, now_ms: int | None = None) -> av.VideoFrame:
    """A copy of ``frame`` (yuv420p) with the capture-time barcode in its corner."""
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    planes = frame.to_ndarray(format="yuv420p")
    width, height = frame.width, frame.height
    b = block_size(width)
    for i, bit in enumerate(encode_ms(ms)):
        planes[height - b : height, i * b : (i + 1) * b] = WHITE if bit else BLACK
    # neutral chroma under the blocks so colour effects cannot shift the luma reading
    u0, v0 = height, height + height // 4
    half_w = width // 2
    for base in (u0, v0):
        rows = planes[base : base + height // 4].reshape(-1, half_w)
        rows[(height - b) // 2 : height // 2, : BITS * b // 2] = 128
    out = av.VideoFrame.from_ndarray(np.ascontiguousarray(planes, dtype=np.uint8), format="yuv420p")
    return out


def read_bits(luma: np.ndarray) -> int:
    """Decode the barcode from a luma plane of the frame at any scale (aspect kept)."""
    height, width = luma.shape
    b = width / 40
    y = int(height - b / 2)
    return decode_bits([int(luma[y, int((i + 0.5) * b)] > 128) for i in range(BITS)])

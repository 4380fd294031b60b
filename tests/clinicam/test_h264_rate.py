"""The software encoder follows a new bitrate on the next frames, down and back up (to
its ceiling), without a keyframe: what link adaptation needs from it."""

from __future__ import annotations

import av
import numpy as np

from clinicam.h264 import VBV_BUFFER_S, H264StreamEncoder

FPS = 15


def _frames(count: int) -> list[av.VideoFrame]:
    rng = np.random.default_rng(7)
    base = rng.integers(0, 255, (540 // 6, 640 // 8), dtype=np.uint8).repeat(6, 0).repeat(8, 1)
    return [
        av.VideoFrame.from_ndarray(np.roll(base, 3 * i, axis=1), format="yuv420p")
        for i in range(count)
    ]


def _kbps(sizes: list[int]) -> float:
    return sum(sizes) * 8 * FPS / len(sizes) / 1000


def test_bitrate_follows_down_and_back_up_without_keyframes() -> None:
    encoder = H264StreamEncoder(640, 360, FPS, 2000, 10 * FPS)
    sizes: list[int] = []
    keyframes: list[int] = []
    for i, frame in enumerate(_frames(8 * FPS)):
        if i == 2 * FPS:
            encoder.set_bitrate(300)
        if i == 5 * FPS:
            encoder.set_bitrate(1500)
        packets = encoder.encode(frame, i * 6000)
        sizes.append(sum(p.size for p in packets))
        keyframes += [i for p in packets if p.is_keyframe]
    high, low, back = sizes[FPS : 2 * FPS], sizes[3 * FPS : 5 * FPS], sizes[6 * FPS :]
    assert _kbps(high) > 1400, _kbps(high)
    # x264 undershoots 300 kbit/s on this synthetic picture: 213–223 on a quiet machine,
    # 199 once on a loaded CI machine; following means well below 2000 and near 300.
    assert 150 < _kbps(low) < 420, _kbps(low)
    assert 1000 < _kbps(back) < 1900, _kbps(back)
    assert keyframes == [0], "a rate change costs no keyframe"


def test_the_ceiling_caps_the_rate_and_every_frame() -> None:
    encoder = H264StreamEncoder(640, 360, FPS, 400, 2 * FPS)
    encoder.set_bitrate(5000)
    assert encoder.bitrate_kbps == 400
    sizes = [sum(p.size for p in encoder.encode(f, i * 6000)) for i, f in enumerate(_frames(60))]
    assert _kbps(sizes[FPS:]) < 520
    # VBV: no frame (keyframes included) is larger than the buffer.
    assert max(sizes) * 8 <= 400_000 * VBV_BUFFER_S * 1.1

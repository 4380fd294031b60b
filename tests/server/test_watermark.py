"""The per-viewer watermark (R15): visible, per viewer, and only when switched on."""

from __future__ import annotations

from datetime import UTC, datetime

import av
import numpy as np

from server.config import LiveViewConfig
from server.media.composite import CompositeMixer
from server.media.compositor import TileSource
from server.media.layout import compute_layout, standard_windows
from server.media.watermark import Watermark

WHEN = datetime(2026, 11, 24, 10, 2, tzinfo=UTC)


def _grey(width: int, height: int, level: int = 60) -> av.VideoFrame:
    planes = np.full((height * 3 // 2, width), 128, dtype=np.uint8)
    planes[:height] = level
    return av.VideoFrame.from_ndarray(planes, format="yuv420p")


def test_the_mark_names_the_viewer_and_brightens_only_its_text() -> None:
    mark = Watermark("Dr. Ada", 640, 360)
    assert mark.text(WHEN) == "Dr. Ada · 2026-11-24 10:02 UTC"
    frame = _grey(640, 360)
    marked = mark.apply(frame, WHEN)
    before = frame.to_ndarray(format="yuv420p")[:360]
    after = marked.to_ndarray(format="yuv420p")[:360]
    changed = after != before
    assert 0.003 < changed.mean() < 0.2  # text, not the whole picture
    assert (after >= before).all()  # only brighter: blended towards white
    assert (before == 60).all()  # the input frame is untouched
    other = Watermark("Dr. Bob", 640, 360).apply(frame, WHEN).to_ndarray(format="yuv420p")
    assert (other[:360] != after).any()  # another viewer, another mark


def _mixer(watermark: bool) -> CompositeMixer:
    config = LiveViewConfig(width=320, height=180, fps=5)
    windows = standard_windows(["ada", "bob"])
    sources = {w: TileSource(_grey(160, 90, 100), 0.0, w) for w in windows}
    return CompositeMixer(
        config,
        lambda main: compute_layout(windows, main, 320, 180),
        lambda: sources,
        watermark=(lambda user: user.title()) if watermark else None,
    )


def _run(mixer: CompositeMixer, variants: list[str]) -> dict[str, np.ndarray]:
    """A few ticks; the last decoded picture of each variant."""
    packets: dict[str, list[av.Packet]] = {v: [] for v in variants}
    for tick in range(8):
        for variant, out in mixer._tick(variants, mixer._sources(), tick * 18000).items():
            packets[variant] += [packet for packet, _trace in out]
    pictures = {}
    for variant, stream in packets.items():
        codec = av.CodecContext.create("h264", "r")
        frames = [f for p in stream for f in codec.decode(p)]
        assert frames, variant
        pictures[variant] = frames[-1].to_ndarray(format="gray").astype(int)
    return pictures


async def test_watermark_off_shares_one_encode_on_gives_each_viewer_their_own() -> None:
    plain = _mixer(False)
    ada, bob = plain.new_track("live", "ada"), plain.new_track("live", "bob")
    shared = plain._variant(ada)
    assert plain._variant(bob) == shared  # one shared encode
    reference = _run(plain, [shared])[shared]

    marked = _mixer(True)
    ada, bob = marked.new_track("live", "ada"), marked.new_track("live", "bob")
    variants = sorted({marked._variant(ada), marked._variant(bob)})
    assert len(variants) == 2
    decoded = _run(marked, variants)
    pictures = [decoded[v] for v in variants]
    assert np.abs(pictures[0] - pictures[1]).max() > 40
    assert (pictures[0] - reference).max() > 40
    await plain.close()
    await marked.close()

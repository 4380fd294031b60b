"""Compositor cost, a naive Pillow baseline, and how many experts one server carries.

1. ``Compositor.compose`` for the seven-window 1280×720 layout (four experts): one
   1920×1080 live source, four 640×480 webcams, a 1024×768 presentation and the
   relevance chart. The live and webcam frames are new objects every iteration, as
   in real use (so the scaled-tile cache only helps the presentation and the chart);
   the all-cached case (nothing new) is reported beside it.
2. In the same run, a naive Pillow compositor of the same layout (``to_image``,
   resize, paste, labels, back to yuv420p), and the ratio naive / ours.
3. Capacity: for n = 2, 3, … experts (n + 3 windows), every expert picks a different
   main window (the worst case: n variants per tick). A tick composes the n variants
   and H.264-encodes each (libx264 ultrafast/zerolatency/baseline, 1280×720, one
   encoder per variant, one thread each) on a pool of two threads; encoding of a
   variant starts as soon as it is composed. The largest n whose mean tick takes
   ≤ 40 ms (25 fps) on the machine's two cores is ``max_experts_25fps``;
   ``cpu_per_expert`` is the process CPU time per tick divided by n at that n.
   Decoding the incoming streams is not part of the tick (FACTS.md: 3.4 ms per
   1080p frame, ~0.5 ms per 640×480 webcam).

Sources are synthetic camera-like pictures (gradients, a moving shape, sensor
noise), generated as yuv420p planes.

    python bench/compositor.py [--quick]

Last line: JSON with median_ms, naive_median_ms, ratio, max_experts_25fps, cpu_per_expert.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.video.codeccontext import VideoCodecContext
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.timing import timed  # noqa: E402
from server.media.chart import render_relevance_chart  # noqa: E402
from server.media.compositor import Compositor, TileSource, fit, fit_text, font  # noqa: E402
from server.media.layout import (  # noqa: E402
    LIVE,
    PRESENTATION,
    RELEVANCE,
    Layout,
    compute_layout,
    expert_window,
    standard_windows,
)

WIDTH, HEIGHT, FPS = 1280, 720, 25
TICK_MS = 1000 / FPS
NAMES = [f"dr{i:02d}" for i in range(16)]
RELEVANCE_VALUES = {"melanoma": 0.82, "basal cell": 0.35, "eczema": 0.12, "psoriasis": 0.5}
CAPTION = "demonstration model — not for clinical use; trained on synthetic data"


def camera_frames(width: int, height: int, count: int, seed: int) -> list[av.VideoFrame]:
    """``count`` yuv420p frames: a tinted gradient, a moving disc and a little noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = 60 + 120 * xx / width * 0.5 + 60 * yy / height
    u = np.full((height // 2, width // 2), 118 + seed * 7 % 20, dtype=np.uint8)
    v = np.full((height // 2, width // 2), 136 - seed * 5 % 20, dtype=np.uint8)
    frames = []
    for i in range(count):
        cx = width * (0.3 + 0.4 * i / max(1, count))
        disc = ((xx - cx) ** 2 + (yy - height / 2) ** 2) < (height / 5) ** 2
        luma = np.where(disc, 200.0, base) + rng.normal(0, 2.0, (height, width))
        planes = np.concatenate(
            [np.clip(luma, 16, 235).astype(np.uint8), u.reshape(-1, width), v.reshape(-1, width)]
        )
        frames.append(av.VideoFrame.from_ndarray(planes, format="yuv420p"))
    return frames


class Scene:
    """Sources for n experts; :meth:`tick` hands out new live/webcam frame objects."""

    def __init__(self, n_experts: int, pool: int) -> None:
        self.experts = [expert_window(name) for name in NAMES[:n_experts]]
        self.windows = standard_windows(NAMES[:n_experts])
        self.pools = {LIVE: camera_frames(1920, 1080, pool, 0)}
        for i, window in enumerate(self.experts):
            self.pools[window] = camera_frames(640, 480, pool, i + 1)
        self.presentation = camera_frames(1024, 768, 1, 99)[0]
        self.chart = render_relevance_chart(RELEVANCE_VALUES, 960, 540, caption=CAPTION)
        self.index = 0

    def tick(self, *, new_frames: bool = True) -> dict[str, TileSource]:
        if new_frames:
            self.index += 1
        sources = {
            window: TileSource(pool[self.index % len(pool)], 0.02, window.split(":")[-1])
            for window, pool in self.pools.items()
        }
        sources[LIVE] = TileSource(sources[LIVE].frame, 0.02, "Patient — Hill Clinic")
        sources[PRESENTATION] = TileSource(self.presentation, 0.5, "Presentation")
        sources[RELEVANCE] = TileSource(self.chart, 3.0, "Decision support — not a diagnosis")
        return sources


def naive_compose(layout: Layout, sources: dict[str, TileSource]) -> av.VideoFrame:
    """The same layout through Pillow: RGB convert, resize, paste, labels, back to yuv420p."""
    canvas = Image.new("RGB", (layout.width, layout.height), (5, 5, 5))
    draw = ImageDraw.Draw(canvas)
    for window, rect in layout.tiles:
        source = sources[window]
        if source.frame is not None:
            x, y, w, h = fit(source.frame.width, source.frame.height, rect.w, rect.h)
            picture = source.frame.to_image().resize(  # type: ignore[no-untyped-call]
                (w, h), Image.Resampling.BILINEAR
            )
            canvas.paste(picture, (rect.x + x, rect.y + y))
        size = min(20, max(10, rect.h // 12))
        text = fit_text(source.label, size, rect.w - 16)
        box = draw.textbbox((rect.x + 8, rect.y + 6), text, font=font(size))
        draw.rectangle(box, fill=(20, 20, 20))
        draw.text((rect.x + 8, rect.y + 6), text, fill=(235, 235, 235), font=font(size))
    main = layout.tiles[0][1]
    draw.rectangle(
        [main.x, main.y, main.x + main.w - 1, main.y + main.h - 1], outline=(80, 160, 255), width=2
    )
    out: av.VideoFrame = av.VideoFrame.from_image(canvas)  # type: ignore[no-untyped-call]
    return out.reformat(format="yuv420p")


def encoder() -> VideoCodecContext:
    codec = av.CodecContext.create("libx264", "w")
    assert isinstance(codec, VideoCodecContext)
    codec.width, codec.height, codec.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    codec.framerate = Fraction(FPS, 1)
    codec.time_base = Fraction(1, FPS)
    codec.bit_rate = 2_000_000
    codec.thread_count = 1
    codec.options = {"preset": "ultrafast", "tune": "zerolatency", "profile": "baseline"}
    return codec


def capacity_run(n: int, ticks: int, pool: ThreadPoolExecutor) -> tuple[float, float, float]:
    """(mean wall ms, p95 wall ms, mean CPU ms) per tick of n experts with n distinct mains."""
    scene = Scene(n, pool=4)
    mains = [LIVE, PRESENTATION, RELEVANCE, *scene.experts][:n]
    layouts = [compute_layout(scene.windows, main, WIDTH, HEIGHT) for main in mains]
    encoders = [encoder() for _ in mains]
    compositor = Compositor(WIDTH, HEIGHT)
    walls, cpus = [], []

    def encode(codec: VideoCodecContext, frame: av.VideoFrame, pts: int) -> int:
        frame.pts = pts
        return sum(packet.size for packet in codec.encode(frame))

    for tick in range(ticks + 5):
        start, cpu = time.perf_counter(), time.process_time()
        sources = scene.tick()
        jobs: list[Future[int]] = []
        for layout, codec in zip(layouts, encoders, strict=True):
            frame = compositor.compose(layout, sources)
            jobs.append(pool.submit(encode, codec, frame, tick))
        for job in jobs:
            job.result()
        if tick >= 5:  # the first ticks warm up the encoders
            walls.append((time.perf_counter() - start) * 1000)
            cpus.append((time.process_time() - cpu) * 1000)
    walls.sort()
    return statistics.fmean(walls), walls[int(0.95 * (len(walls) - 1))], statistics.fmean(cpus)


def sweep(ticks: int, limit: int) -> Iterator[tuple[int, float, float, float]]:
    with ThreadPoolExecutor(max_workers=2) as pool:
        for n in range(2, limit + 1):
            mean, p95, cpu = capacity_run(n, ticks, pool)
            yield n, mean, p95, cpu
            if mean > TICK_MS:
                return


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples (under a minute)")
    args = parser.parse_args()
    iterations, naive_iterations, ticks = (60, 15, 15) if args.quick else (300, 60, 60)

    load = os.getloadavg()[0]
    print(
        f"load average before the run: {load:.2f} on {os.cpu_count()} CPUs (other work skews this)"
    )
    scene = Scene(4, pool=3 if args.quick else 6)
    layout = compute_layout(scene.windows, LIVE, WIDTH, HEIGHT)
    compositor = Compositor(WIDTH, HEIGHT)
    fresh = timed(lambda: compositor.compose(layout, scene.tick()), iterations, warmup=3)
    cached_sources = scene.tick()
    cached = timed(lambda: compositor.compose(layout, cached_sources), iterations, warmup=3)
    naive = timed(lambda: naive_compose(layout, scene.tick()), naive_iterations, warmup=1)
    median, cached_median, naive_median = (statistics.median(s) for s in (fresh, cached, naive))
    print(f"compose, 7 windows 1280x720, new live+webcam frames: median {median:.2f} ms")
    print(f"compose, 7 windows 1280x720, all tiles cached:      median {cached_median:.2f} ms")
    print(f"naive Pillow compose of the same layout:             median {naive_median:.2f} ms")
    print(f"ratio naive / ours: {naive_median / median:.1f}x")

    best, cpu_per_expert = 0, 0.0
    for n, mean, p95, cpu in sweep(ticks, limit=16):
        ok = mean <= TICK_MS
        print(
            f"{n} experts ({n + 3} windows, {n} variants): tick mean {mean:.1f} ms, "
            f"p95 {p95:.1f} ms, CPU {cpu:.1f} ms ({cpu / n:.1f} ms/expert) "
            f"{'ok' if ok else 'over'} at {FPS} fps"
        )
        if ok:
            best, cpu_per_expert = n, cpu / n
    print(f"largest n at >= {FPS} fps on this machine: {best}")
    if cpu_per_expert:
        budget = int(2 * TICK_MS / cpu_per_expert)
        print(f"CPU budget alone (2 cores x {TICK_MS:.0f} ms / {cpu_per_expert:.1f} ms): {budget}")
    result = {
        "median_ms": round(median, 3),
        "cached_median_ms": round(cached_median, 3),
        "naive_median_ms": round(naive_median, 3),
        "ratio": round(naive_median / median, 1),
        "max_experts_25fps": best,
        "cpu_per_expert": round(cpu_per_expert, 2),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()

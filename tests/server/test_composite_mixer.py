"""The mixer composes when the patient's frame arrives, at most at its rate, and keeps
the live frame's stage stamps on what it sends."""

from __future__ import annotations

import asyncio

import av
import numpy as np
import pytest

from clinicam.frametrace import FrameTrace
from server.config import LiveViewConfig
from server.media import composite
from server.media.composite import CompositeMixer
from server.media.compositor import TileSource
from server.media.layout import compute_layout, standard_windows

WINDOWS = standard_windows(["ada"])


def _frame() -> av.VideoFrame:
    return av.VideoFrame.from_ndarray(np.full((90, 160), 90, np.uint8), format="gray").reformat(
        format="yuv420p"
    )


def _mixer(arrivals: set[asyncio.Event], trace: FrameTrace | None = None) -> CompositeMixer:
    sources = {w: TileSource(_frame(), 0.0, w) for w in WINDOWS}
    sources["live"] = TileSource(_frame(), 0.0, "live", trace)
    mixer = CompositeMixer(
        LiveViewConfig(width=320, height=180, fps=1),
        lambda main: compute_layout(WINDOWS, main, 320, 180),
        lambda: sources,
        live_arrivals=arrivals,
    )
    mixer.rate_share = 0.1  # a tick every 10 s: anything sooner was a live frame's arrival
    return mixer


async def _ticks_after(mixer: CompositeMixer, seconds: float) -> int:
    before = mixer.ticks
    await asyncio.sleep(seconds)
    return mixer.ticks - before


async def test_a_live_frame_is_composed_on_arrival_not_at_the_next_tick(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(composite, "MIN_INTERVAL_SHARE", 0.0)  # no rate cap in this test
    arrivals: set[asyncio.Event] = set()
    mixer = _mixer(arrivals)
    mixer.new_track("live", "ada")
    try:
        await asyncio.sleep(0.5)
        assert mixer.ticks == 1, "the first composite is made at once"
        assert await _ticks_after(mixer, 1.0) == 0, "nothing new: wait for the tick"
        for event in arrivals:
            event.set()  # the live feed got a frame
        assert await _ticks_after(mixer, 1.5) == 1
    finally:
        await mixer.close()
    assert not arrivals, "a closed mixer stops listening to the feed"


async def test_arrivals_never_push_the_rate_above_the_cap() -> None:
    arrivals: set[asyncio.Event] = set()
    mixer = _mixer(arrivals)  # the cap: 0.8 × the 10 s period
    mixer.new_track("live", "ada")
    try:
        await asyncio.sleep(0.5)
        for _ in range(10):
            for event in arrivals:
                event.set()
            await asyncio.sleep(0.2)
        assert mixer.ticks == 1
    finally:
        await mixer.close()


async def test_what_is_sent_carries_the_live_frames_stamps() -> None:
    trace = FrameTrace({"captured": 1_000, "decoded": 2_000})
    mixer = _mixer(set(), trace)
    track = mixer.new_track("live", "ada")
    try:
        async with asyncio.timeout(5):
            packet = await track.recv()
        assert packet.is_keyframe
        newest = mixer.latency.summary()["newest"]
        assert newest is not None and newest["live_age_ms"] > 0
        assert set(mixer.latency.summary()["steps"]) == {
            "captured→decoded",
            "decoded→composed",
            "composed→composite_encoded",
            "composite_encoded→composite_sent",
        }
    finally:
        await mixer.close()

"""The portrait composite (a phone held upright): geometry and legible labels."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest

from server.media.compositor import Compositor, TileSource
from server.media.layout import (
    LIVE,
    PRESENTATION,
    Rect,
    compute_layout,
    portrait_layout,
    portrait_size,
    standard_windows,
    station_windows,
)
from tests.server.test_compositor import solid

PHONE_CSS_PX = 343  # the composite's width on a 375 px phone, less the page's margins
LEGIBLE_CSS_PX = 11  # the smallest text a phone's reader is asked to read


def _experts(n: int) -> list[str]:
    return [f"dr{i}" for i in range(n)]


def _overlaps(a: Rect, b: Rect) -> bool:
    return a.x < b.x + b.w and b.x < a.x + a.w and a.y < b.y + b.h and b.y < a.y + a.h


def test_the_portrait_frame_is_upright_even_and_no_larger_than_the_configured_one() -> None:
    assert portrait_size(1280, 720) == (720, 1080)
    for width, height in ((1280, 720), (640, 360), (1920, 1080), (854, 480)):
        w, h = portrait_size(width, height)
        assert w < h and w % 2 == 0 == h % 2
        assert w * h <= width * height


@pytest.mark.parametrize("n", range(1, 9))
@pytest.mark.parametrize("main", [LIVE, PRESENTATION, "expert:dr0"])
def test_the_main_window_is_on_top_across_the_full_width(n: int, main: str) -> None:
    width, height = portrait_size(1280, 720)
    windows = standard_windows(_experts(n))
    layout = portrait_layout(windows, main, width, height)
    assert (layout.width, layout.height) == (width, height)
    assert layout.windows[0] == main and sorted(layout.windows) == sorted(windows)
    top = layout.rect(main)
    assert top is not None
    assert (top.x, top.y, top.w) == (0, 0, width)
    assert top.h >= width * 9 / 16 - 2, "the main window is at least 16:9"
    for window, rect in layout.tiles[1:]:
        assert rect.y >= top.h, f"{window} is below the main window"
        assert rect.area < top.area
        assert rect.w >= width / 4, f"{window}: a strip of at most four across"
    for (_, a), (_, b) in itertools.combinations(layout.tiles, 2):
        assert not _overlaps(a, b)
    for _, rect in layout.tiles:
        assert rect.x >= 0 and rect.x + rect.w <= width
        assert rect.y >= 0 and rect.y + rect.h <= height
        assert all(v % 2 == 0 for v in (rect.x, rect.y, rect.w, rect.h))
    bottom = max(r.y + r.h for _, r in layout.tiles)
    assert bottom == height, "the grid reaches the bottom: no band of background below"


def test_four_experts_make_a_two_column_strip_under_the_main_window() -> None:
    layout = portrait_layout(standard_windows(_experts(4)), LIVE, 720, 1080)
    subs = [r for _, r in layout.tiles[1:]]
    assert {r.w for r in subs} == {360} and {r.h for r in subs} == {202}
    assert sorted({r.x for r in subs}) == [0, 360]
    assert layout.tiles[0][1] == Rect(0, 0, 720, 1080 - 3 * 202)
    assert layout.window_at(10, 10) == LIVE
    assert layout.window_at(370, 1080 - 202 + 5) == layout.tiles[-1][0]


def test_the_station_windows_and_a_single_window_fit_too() -> None:
    windows = station_windows(["ada", "bob"], shared=True)
    layout = portrait_layout(windows, PRESENTATION, 720, 1080)
    assert layout.rect(PRESENTATION) == Rect(0, 0, 720, 1080 - 2 * 202)
    alone = portrait_layout([LIVE], LIVE, 720, 1080)
    assert alone.tiles == ((LIVE, Rect(0, 0, 720, 1080)),)


def test_bad_portrait_layouts_are_refused() -> None:
    with pytest.raises(ValueError, match="not one of"):
        portrait_layout([LIVE], PRESENTATION, 720, 1080)
    with pytest.raises(ValueError, match="even"):
        portrait_layout([LIVE], LIVE, 721, 1080)
    with pytest.raises(ValueError, match="too small"):
        portrait_layout(standard_windows(_experts(30)), LIVE, 64, 96)


def test_portrait_labels_are_legible_on_a_phone_and_landscape_ones_are_not() -> None:
    windows = standard_windows(_experts(4))
    portrait = portrait_layout(windows, LIVE, 720, 1080)
    assert portrait.label_px * PHONE_CSS_PX / portrait.width >= LEGIBLE_CSS_PX
    landscape = compute_layout(windows, LIVE, 1280, 720)
    assert landscape.label_px == 0  # by tile height, as before: at most 20 px of 1280
    assert 20 * PHONE_CSS_PX / landscape.width < LEGIBLE_CSS_PX / 2


def _text_rows(frame_y: np.ndarray, rect: Rect) -> int:
    """Rows of ``rect`` with label text in them (white on the grey test picture)."""
    tile = frame_y[rect.y : rect.y + rect.h, rect.x : rect.x + rect.w]
    return int((tile > 200).any(axis=1).sum())


def test_the_compositor_draws_portrait_labels_at_the_layouts_size() -> None:
    windows = standard_windows(["ada", "bob"])
    layout = portrait_layout(windows, LIVE, 720, 1080)
    grey = solid(640, 360, (90, 90, 90))
    srcs = {w: TileSource(grey, 0.0, "Dr Ada Lovelace") for w in windows}
    compositor = Compositor(720, 1080)
    sub = layout.tiles[1][1]
    small = compositor.compose(dataclasses.replace(layout, label_px=0), srcs)
    large = compositor.compose(layout, srcs)
    rows_small = _text_rows(small.to_ndarray()[:1080], sub)
    rows_large = _text_rows(large.to_ndarray()[:1080], sub)
    assert rows_small > 0
    assert rows_large >= rows_small * 1.3, (rows_small, rows_large)
    assert rows_large * PHONE_CSS_PX / 720 >= 0.6 * LEGIBLE_CSS_PX  # glyph rows, not the em

"""The relevance chart: bar heights, the no-result message, validation."""

from __future__ import annotations

import math

import av
import numpy as np
import pytest

from server.media.chart import BAR_RGB, chart_geometry, label_band, render_relevance_chart

CAPTION = "demonstration model — not for clinical use; trained on synthetic data"
RELEVANCE = {"melanoma": 0.82, "basal cell carcinoma": 0.35, "eczema": 0.1, "psoriasis": 0.5}


def rgb(frame: av.VideoFrame) -> np.ndarray:
    assert frame.format.name == "yuv420p"
    return frame.to_ndarray(format="rgb24").astype(np.int32)


def bar_heights(pixels: np.ndarray, n_bars: int) -> list[int]:
    geo = chart_geometry(n_bars, pixels.shape[1], pixels.shape[0])
    _, top, _, bottom = geo.plot
    heights = []
    for x0, x1 in geo.bars:
        column = pixels[top - 2 : bottom + 2, (x0 + x1) // 2]
        is_bar = np.abs(column - np.array(BAR_RGB)).max(axis=1) <= 16
        heights.append(int(is_bar.sum()))
    return heights


def test_bar_heights_follow_the_values() -> None:
    frame = render_relevance_chart(RELEVANCE, 640, 360, caption=CAPTION)
    assert (frame.width, frame.height) == (640, 360)
    heights = bar_heights(rgb(frame), len(RELEVANCE))
    values = list(RELEVANCE.values())
    assert sorted(range(4), key=lambda i: heights[i]) == sorted(range(4), key=lambda i: values[i])
    geo = chart_geometry(4, 640, 360)
    full = geo.plot[3] - geo.plot[1]
    for height, value in zip(heights, values, strict=True):
        assert abs(height - value * full) <= 3


def test_zero_and_full_bars() -> None:
    pixels = rgb(render_relevance_chart({"a": 0.0, "b": 1.0}, 320, 180, caption=CAPTION))
    zero, full = bar_heights(pixels, 2)
    assert zero <= 1
    geo = chart_geometry(2, 320, 180)
    assert abs(full - (geo.plot[3] - geo.plot[1])) <= 2


def test_none_shows_a_message() -> None:
    empty = rgb(render_relevance_chart({}, 640, 360, caption=CAPTION))
    waiting = rgb(render_relevance_chart(None, 640, 360, caption=CAPTION))
    geo = chart_geometry(0, 640, 360)
    left, top, right, bottom = geo.plot
    middle = (slice((top + bottom) // 2 - 12, (top + bottom) // 2 + 12), slice(left, right))
    assert not np.array_equal(empty[middle], waiting[middle])
    assert waiting[middle].min(axis=2).max() > 200  # light text
    # title and caption are the same on both
    assert np.array_equal(empty[:20], waiting[:20])
    assert np.array_equal(empty[-12:], waiting[-12:])


def test_title_and_caption_are_drawn() -> None:
    pixels = rgb(render_relevance_chart(RELEVANCE, 640, 360, caption=CAPTION))
    background = pixels[2, 2]
    band = label_band(360)  # kept free for the composite's tile label
    assert np.abs(pixels[:band] - background).max() == 0
    assert np.abs(pixels[band : band + 30] - background).max() > 100  # title
    assert np.abs(pixels[-20:] - background).max() > 60  # caption


def test_values_change_the_picture() -> None:
    a = render_relevance_chart({"x": 0.2}, 320, 180, caption="")
    b = render_relevance_chart({"x": 0.7}, 320, 180, caption="")
    assert not np.array_equal(a.to_ndarray(), b.to_ndarray())


@pytest.mark.parametrize("bad", [-0.01, 1.01, math.nan, math.inf, -math.inf])
def test_invalid_values_raise_naming_the_category(bad: float) -> None:
    with pytest.raises(ValueError, match="eczema"):
        render_relevance_chart({"melanoma": 0.5, "eczema": bad}, 320, 180, caption=CAPTION)


def test_invalid_sizes_raise() -> None:
    with pytest.raises(ValueError):
        render_relevance_chart(None, 321, 180, caption=CAPTION)
    with pytest.raises(ValueError):
        render_relevance_chart(None, 32, 20, caption=CAPTION)

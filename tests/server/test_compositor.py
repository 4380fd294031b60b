"""The compositor, checked on real pixels of real yuv420p frames."""

from __future__ import annotations

import av
import numpy as np
import pytest

from server.media.compositor import Compositor, TileSource, fit, has_glyph, safe_text
from server.media.layout import LIVE, PRESENTATION, RELEVANCE, Layout, compute_layout

EXPERTS = ["expert:ada", "expert:bob", "expert:cyd", "expert:dee"]
WINDOWS = [*EXPERTS, PRESENTATION, LIVE, RELEVANCE]
COLOURS = {
    "expert:ada": (200, 40, 40),
    "expert:bob": (40, 200, 40),
    "expert:cyd": (40, 40, 200),
    "expert:dee": (200, 200, 40),
    PRESENTATION: (200, 40, 200),
    LIVE: (40, 200, 200),
    RELEVANCE: (230, 140, 60),
}
SIZES = {LIVE: (1920, 1080), PRESENTATION: (1024, 768), RELEVANCE: (960, 540)}
TOLERANCE = 12


def solid(
    width: int, height: int, rgb: tuple[int, int, int], fmt: str = "yuv420p"
) -> av.VideoFrame:
    pixels = np.empty((height, width, 3), dtype=np.uint8)
    pixels[:] = rgb
    frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
    return frame if fmt == "rgb24" else frame.reformat(format=fmt)


def sources(age_s: float = 0.1) -> dict[str, TileSource]:
    return {
        window: TileSource(solid(*SIZES.get(window, (640, 480)), rgb), age_s, window.title())
        for window, rgb in COLOURS.items()
    }


def rgb(frame: av.VideoFrame) -> np.ndarray:
    assert frame.format.name == "yuv420p"
    return frame.to_ndarray(format="rgb24").astype(np.int32)


def close(pixel: np.ndarray, expected: tuple[int, int, int]) -> bool:
    return bool(np.abs(pixel - np.array(expected)).max() <= TOLERANCE)


@pytest.fixture
def layout() -> Layout:
    return compute_layout(WINDOWS, LIVE)


def test_each_tile_shows_its_source(layout: Layout) -> None:
    out = Compositor().compose(layout, sources())
    assert (out.width, out.height) == (1280, 720)
    pixels = rgb(out)
    for window, rect in layout.tiles:
        centre = pixels[rect.y + rect.h // 2, rect.x + rect.w // 2]
        assert close(centre, COLOURS[window]), (window, centre)


def test_sources_of_any_format_and_size(layout: Layout) -> None:
    src = sources()
    src[LIVE] = TileSource(solid(1280, 720, COLOURS[LIVE], "rgb24"), 0.0, "Patient")
    src["expert:ada"] = TileSource(solid(322, 242, COLOURS["expert:ada"], "nv12"), 0.0, "Ada")
    pixels = rgb(Compositor().compose(layout, src))
    for window in (LIVE, "expert:ada"):
        rect = layout.rect(window)
        assert rect is not None
        assert close(pixels[rect.y + rect.h // 2, rect.x + rect.w // 2], COLOURS[window])


def test_aspect_ratio_is_kept_with_bars_of_background(layout: Layout) -> None:
    src = sources()
    src["expert:ada"] = TileSource(solid(1600, 400, COLOURS["expert:ada"]), 0.0, "")  # 4:1
    pixels = rgb(Compositor().compose(layout, src))
    background = pixels[715, 5]  # an unused cell
    assert background.max() < 40
    # 4:3 webcam in a 320×180 tile: 240×180 picture, 40 px pillarbox bars each side
    bob = layout.rect("expert:bob")
    assert bob is not None and (bob.w, bob.h) == (320, 180)
    cy = bob.y + bob.h // 2
    assert close(pixels[cy, bob.x + 20], tuple(background))
    assert close(pixels[cy, bob.x + bob.w - 20], tuple(background))
    assert close(pixels[cy, bob.x + 45], COLOURS["expert:bob"])
    assert close(pixels[cy, bob.x + bob.w - 45], COLOURS["expert:bob"])
    # 4:1 source: 320×80 picture, letterbox bars of 50 px above and below
    ada = layout.rect("expert:ada")
    assert ada is not None
    cx = ada.x + ada.w // 2
    assert close(pixels[ada.y + 25, cx], tuple(background))
    assert close(pixels[ada.y + ada.h - 25, cx], tuple(background))
    assert close(pixels[ada.y + ada.h // 2, cx], COLOURS["expert:ada"])
    # a 16:9 source fills the 16:9 main tile
    main = layout.rect(LIVE)
    assert main is not None
    assert close(pixels[main.y + main.h - 10, main.x + main.w - 10], COLOURS[LIVE])


def test_fit_centres_on_even_pixels() -> None:
    assert fit(640, 480, 320, 180) == (40, 0, 240, 180)
    assert fit(1920, 1080, 960, 540) == (0, 0, 960, 540)
    x, y, w, h = fit(333, 1000, 214, 120)
    assert all(v % 2 == 0 for v in (x, y, w, h)) and w <= 214 and h == 120


def test_labels_are_drawn_in_the_top_left_corner(layout: Layout) -> None:
    compositor = Compositor()
    with_labels = rgb(compositor.compose(layout, sources()))
    unlabelled = {w: TileSource(s.frame, s.age_s, "") for w, s in sources().items()}
    without = rgb(compositor.compose(layout, unlabelled))
    for window, rect in layout.tiles:
        corner = (slice(rect.y + 4, rect.y + 20), slice(rect.x + 4, rect.x + 44))
        assert not np.array_equal(with_labels[corner], without[corner]), window
        assert with_labels[corner].min(axis=2).max() > 200, window  # white text
        centre = (rect.y + rect.h // 2, rect.x + rect.w // 2)
        assert np.array_equal(with_labels[centre], without[centre])


def test_missing_glyphs_fall_back() -> None:
    if has_glyph(16, "—"):  # DejaVu Sans installed (install.sh does): names as written
        assert safe_text("Patient — Hill Clinic", 16) == "Patient — Hill Clinic"
        assert safe_text("Dr. Zoë Müller", 16) == "Dr. Zoë Müller"
    else:  # Pillow's bundled font only: the nearest characters it has
        assert safe_text("Patient — Hill Clinic", 16) == "Patient - Hill Clinic"
        assert safe_text("Dr. Zoë Müller", 16) == "Dr. Zoe Muller"
    assert safe_text("\U0001f9ea", 16) == "?"  # a test tube emoji: in neither font


def saturation(pixels: np.ndarray) -> float:
    return float((pixels.max(axis=-1) - pixels.min(axis=-1)).mean())


def test_stalled_source_is_greyed(layout: Layout) -> None:
    compositor = Compositor(stall_after_s=2.0)
    fresh_src = sources(age_s=0.5)
    fresh = rgb(compositor.compose(layout, fresh_src))
    stalled_src = dict(fresh_src)
    stalled_src[LIVE] = TileSource(fresh_src[LIVE].frame, 2.5, "Patient")
    stalled = rgb(compositor.compose(layout, stalled_src))
    main = layout.rect(LIVE)
    assert main is not None
    patch = (slice(main.y + 300, main.y + 500), slice(main.x + 50, main.x + 300))
    assert saturation(stalled[patch]) < 10 < saturation(fresh[patch]) - 50
    assert 60 < stalled[patch].mean() < 200  # grey, not black
    centre = stalled[main.y + main.h // 2 - 10 : main.y + main.h // 2 + 10, main.x + main.w // 2]
    assert centre.max() > 200  # the "reconnecting" notice
    # the other tiles are unchanged
    sub = layout.rect("expert:ada")
    assert sub is not None
    assert np.array_equal(fresh[sub.y + 90, sub.x + 160], stalled[sub.y + 90, sub.x + 160])


def test_sources_without_frames_show_a_dark_waiting_tile(layout: Layout) -> None:
    src = sources()
    src["expert:bob"] = TileSource(None, float("inf"), "Dr. Bob")
    del src[PRESENTATION]
    pixels = rgb(Compositor().compose(layout, src))
    for window in ("expert:bob", PRESENTATION):
        rect = layout.rect(window)
        assert rect is not None
        assert pixels[rect.y + rect.h * 3 // 4, rect.x + rect.w // 4].max() < 40, window
        middle = pixels[
            rect.y + rect.h // 2 - 6 : rect.y + rect.h // 2 + 6, rect.x : rect.x + rect.w
        ]
        assert middle.max() > 200, window  # "waiting…"
        assert pixels[rect.y + 8 : rect.y + 20, rect.x + 4 : rect.x + 40].max() > 200  # label


def test_main_tile_has_a_highlighted_border(layout: Layout) -> None:
    pixels = rgb(Compositor().compose(layout, sources()))
    main = layout.rect(LIVE)
    assert main is not None
    border = pixels[main.y + 300, main.x]
    inside = pixels[main.y + 300, main.x + 4]
    assert close(border, (80, 160, 255))
    assert close(inside, COLOURS[LIVE])
    assert close(pixels[main.y + main.h - 1, main.x + 300], (80, 160, 255))


def test_cache_reuses_unchanged_frames_and_sees_new_ones(layout: Layout) -> None:
    compositor = Compositor()
    src = sources()
    first = compositor.compose(layout, src)
    second = compositor.compose(layout, src)
    assert first is not second
    assert np.array_equal(first.to_ndarray(), second.to_ndarray())
    # a new frame object for the live window (other colour) changes only that tile
    src[LIVE] = TileSource(solid(1920, 1080, (240, 240, 240)), 0.0, LIVE.title())
    third = rgb(compositor.compose(layout, src))
    main = layout.rect(LIVE)
    assert main is not None
    assert close(third[main.y + main.h // 2, main.x + main.w // 2], (240, 240, 240))
    assert np.array_equal(third[700, 1100], rgb(second)[700, 1100])
    # the same frame in another tile size (the live window as a sub) is scaled again
    swapped = compute_layout(WINDOWS, "expert:ada")
    pixels = rgb(compositor.compose(swapped, src))
    for window, rect in swapped.tiles:
        expected = (240, 240, 240) if window == LIVE else COLOURS[window]
        assert close(pixels[rect.y + rect.h // 2, rect.x + rect.w // 2], expected), window


def test_compose_never_returns_the_same_object(layout: Layout) -> None:
    compositor = Compositor()
    src = sources()
    frames = [compositor.compose(layout, src) for _ in range(5)]
    assert len({id(f) for f in frames}) == 5
    frames[0].pts = 1234  # an encoder stamping one frame does not touch the next
    assert compositor.compose(layout, src).pts != 1234


def test_layout_size_must_match() -> None:
    with pytest.raises(ValueError):
        Compositor(640, 360).compose(compute_layout(WINDOWS, LIVE), {})
    with pytest.raises(ValueError):
        Compositor(641, 360)
    out = Compositor(640, 360).compose(compute_layout(WINDOWS, LIVE, 640, 360), sources())
    assert (out.width, out.height, out.format.name) == (640, 360, "yuv420p")


def test_badges_sit_in_the_main_windows_top_right_corner_in_their_colour(layout: Layout) -> None:
    from server.media.badges import Badge

    badges = [Badge("● Recording", (200, 24, 24)), Badge("Privacy on", (90, 60, 170))]
    plain = rgb(Compositor().compose(layout, sources()))
    out = rgb(Compositor().compose(layout, sources(), badges))
    main = layout.rect(LIVE)
    assert main is not None
    changed = np.abs(out - plain).max(axis=2) > TOLERANCE
    ys, xs = np.nonzero(changed)
    assert ys.size, "no badge was drawn"
    assert xs.min() > main.x + main.w // 2 and xs.max() < main.x + main.w, "top right of main"
    assert ys.min() >= main.y and ys.max() < main.y + main.h // 2
    # A sixteenth of the frame's height: readable from two metres.
    first = changed[: ys.min() + 720 // 16, :]
    assert first.any(axis=1).sum() >= 720 // 16 - 8
    # Box colours: the first badge red, the second (below it) violet.
    box_x = xs.max() - 3
    top = out[ys.min() + 3, box_x]
    assert top[0] > 150 and top[1] < 80 and top[2] < 80, top
    second = out[ys.max() - 3, box_x]
    assert second[2] > second[1] + 50 and second[0] > second[1], second
    assert not changed[: main.y + main.h, : main.x + main.w // 2].any(), "the label side is kept"


def test_badges_that_do_not_fit_are_left_out() -> None:
    from server.media.badges import Badge

    tiny = compute_layout([LIVE, PRESENTATION], LIVE, 96, 64)
    frame = Compositor(96, 64).compose(tiny, {}, [Badge("● Recording", (200, 24, 24))])
    assert frame.width == 96  # nothing drawn outside, nothing raised

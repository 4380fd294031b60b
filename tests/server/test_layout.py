"""The composite's window layout (R11): counts, geometry and hit testing."""

from __future__ import annotations

import itertools

import pytest

from server.media.layout import (
    LIVE,
    PRESENTATION,
    RELEVANCE,
    Layout,
    Rect,
    cells_for,
    compute_layout,
    expert_window,
    standard_windows,
)


def experts(n: int) -> list[str]:
    return standard_windows([f"dr{i}" for i in range(n)])


def overlaps(a: Rect, b: Rect) -> bool:
    return a.x < b.x + b.w and b.x < a.x + a.w and a.y < b.y + b.h and b.y < a.y + a.h


def test_standard_windows_are_experts_then_shared_views() -> None:
    assert standard_windows(["ada", "bob"]) == [
        "expert:ada",
        "expert:bob",
        PRESENTATION,
        LIVE,
        RELEVANCE,
    ]
    assert expert_window("ada") == "expert:ada"


@pytest.mark.parametrize(("n_experts", "n_windows"), [(2, 5), (3, 6), (4, 7), (6, 9), (8, 11)])
def test_one_window_per_expert_plus_three(n_experts: int, n_windows: int) -> None:
    windows = experts(n_experts)
    layout = compute_layout(windows, LIVE)
    assert len(layout.tiles) == n_windows
    assert sorted(layout.windows) == sorted(windows)  # every window exactly once
    assert layout.tiles[0][0] == LIVE  # main first
    subs = [name for name in windows if name != LIVE]
    assert list(layout.windows[1:]) == subs  # then the subs in window order


def test_four_experts_give_one_main_and_six_subs() -> None:
    layout = compute_layout(experts(4), PRESENTATION)
    main = layout.rect(PRESENTATION)
    assert main == Rect(0, 0, 960, 540)
    subs = [rect for name, rect in layout.tiles[1:]]
    assert len(subs) == 6
    assert all((r.w, r.h) == (320, 180) for r in subs)
    # right column top to bottom, then the bottom row right to left
    assert [(r.x, r.y) for r in subs] == [
        (960, 0),
        (960, 180),
        (960, 360),
        (960, 540),
        (640, 540),
        (320, 540),
    ]


@pytest.mark.parametrize("n_experts", range(2, 9))
@pytest.mark.parametrize(("width", "height"), [(1280, 720), (1920, 1080), (854, 480)])
def test_geometry_is_sound(n_experts: int, width: int, height: int) -> None:
    windows = experts(n_experts)
    layout = compute_layout(windows, windows[0], width, height)
    assert (layout.width, layout.height) == (width, height)
    rects = [rect for _, rect in layout.tiles]
    for rect in rects:
        assert all(v % 2 == 0 for v in (rect.x, rect.y, rect.w, rect.h)), rect
        assert rect.w > 0 and rect.h > 0
        assert rect.x >= 0 and rect.y >= 0
        assert rect.x + rect.w <= width and rect.y + rect.h <= height
    for a, b in itertools.combinations(rects, 2):
        assert not overlaps(a, b), (a, b)
    main = rects[0]
    assert all(main.area > 2 * r.area for r in rects[1:])  # strictly (much) largest
    # cells keep the output's aspect ratio (within rounding)
    for rect in rects[1:]:
        assert abs(rect.w / rect.h - width / height) < 0.05
    # the tiles reach the right and bottom edges of the frame
    assert max(r.x + r.w for r in rects) == width
    assert max(r.y + r.h for r in rects) == height


def test_window_at_maps_tile_centres_back_and_unused_cells_to_none() -> None:
    for n in range(2, 9):
        layout = compute_layout(experts(n), LIVE)
        for name, rect in layout.tiles:
            assert layout.window_at(rect.x + rect.w // 2, rect.y + rect.h // 2) == name
            assert layout.window_at(rect.x, rect.y) == name
            assert layout.window_at(rect.x + rect.w - 1, rect.y + rect.h - 1) == name
        c = cells_for(n + 3)
        unused = 2 * c - 1 - (n + 2)
        if unused:  # the leftmost bottom cells stay empty
            assert layout.window_at(5, layout.height - 5) is None
        assert layout.window_at(-1, 0) is None
        assert layout.window_at(layout.width, 0) is None


def test_grid_sizes() -> None:
    # 2c − 1 ≥ S sub windows, and c ≥ 3 so that the main window is the largest
    assert [cells_for(n) for n in (1, 2, 4, 5, 6, 7, 8, 9, 10, 11, 12)] == [
        3,
        3,
        3,
        3,
        3,
        4,
        4,
        5,
        5,
        6,
        6,
    ]
    layout = compute_layout(experts(8), LIVE)
    assert layout.rect(LIVE) is not None
    assert cells_for(11) == 6
    single = compute_layout(experts(1), LIVE)  # the demo's one expert: main is 2×2 cells
    main = single.rect(LIVE)
    assert main is not None and all(main.area > r.area for w, r in single.tiles if w != LIVE)


def test_changing_main_swaps_it_and_keeps_the_rest_in_order() -> None:
    windows = experts(4)
    a = compute_layout(windows, LIVE)
    b = compute_layout(windows, "expert:dr2")
    assert a.main == LIVE and b.main == "expert:dr2"
    assert b.rect("expert:dr2") == a.rect(LIVE)  # same main rect
    assert b.tiles[0][0] == "expert:dr2"
    assert list(b.windows[1:]) == [w for w in windows if w != "expert:dr2"]
    assert [r for _, r in a.tiles[1:]] == [r for _, r in b.tiles[1:]]  # same sub slots
    assert b.rect(LIVE) is not None and b.rect(LIVE) != a.rect(LIVE)
    assert a.rect("nobody") is None


@pytest.mark.parametrize(
    ("windows", "main", "size"),
    [
        ([], LIVE, (1280, 720)),
        ([LIVE, LIVE, RELEVANCE], LIVE, (1280, 720)),
        ([LIVE, RELEVANCE], PRESENTATION, (1280, 720)),
        ([LIVE, RELEVANCE], LIVE, (1281, 720)),
        ([LIVE, RELEVANCE], LIVE, (1280, 721)),
        (experts(8), LIVE, (64, 64)),
        ([LIVE, RELEVANCE], LIVE, (0, 0)),
    ],
)
def test_invalid_layouts_raise(windows: list[str], main: str, size: tuple[int, int]) -> None:
    with pytest.raises(ValueError):
        compute_layout(windows, main, *size)


def test_layout_is_a_value() -> None:
    windows = experts(3)
    assert compute_layout(windows, LIVE) == compute_layout(windows, LIVE)
    assert isinstance(compute_layout(windows, LIVE), Layout)

"""Window layout of the composite video (R11): one main window and a ring of subs.

Windows are named by string ids: ``"expert:<username>"`` for each expert's webcam,
plus :data:`PRESENTATION`, :data:`LIVE` (the patient camera) and :data:`RELEVANCE`.
With ``S`` sub windows the output is split into a ``c × c`` grid of cells, ``c`` being
the smallest size ≥ 2 with ``2c − 1 ≥ S`` (:func:`cells_for`). Every cell has the
output's aspect ratio, so a 1280×720 output gives 16:9 cells:

* the main window spans the top-left ``(c−1) × (c−1)`` cells;
* the subs, in window order (the main skipped), fill the right column top to bottom
  and then the bottom row **right to left**, i.e. they run around the main window's
  corner as one continuous "L"; cells left over (bottom left) stay background.

Cell edges are ``i·width/c`` rounded to an even number, so all rects are even
(yuv420p chroma is half size), tiles share edges without overlapping, and together
they cover the frame up to its right and bottom edges.

Four experts: 7 windows, ``c = 4``: a 960×540 main and six 320×180 subs at 1280×720.

A viewer on a phone held upright gets a **portrait** composite instead
(:func:`portrait_size`, :func:`portrait_layout`): 720×1080 for a 1280×720 configuration,
the main window across the full width on top, the subs below as a grid of 16:9 cells
(two columns, more only when the rows would squeeze the main window below 16:9), and
labels of at least :data:`PORTRAIT_LABEL_SHARE` of the width, so that they stay legible
when the frame is shown 343 CSS px wide.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

PRESENTATION = "presentation"
LIVE = "live"
RELEVANCE = "relevance"
EXPERT_PREFIX = "expert:"
STATION_PREFIX = "station:"  # the clinic station's composite: "station:<main window>"
MIN_CELL = 16  # smallest cell edge in pixels that still shows something
LANDSCAPE = "landscape"  # the viewer's screen shape (what they say with their WebRTC offer)
PORTRAIT = "portrait"
SHAPES = (LANDSCAPE, PORTRAIT)
PORTRAIT_LABEL_SHARE = 1 / 30  # a portrait frame's labels: 24 px at 720 px wide
_CELL_ASPECT = 9 / 16  # portrait sub cells: the windows' usual (landscape) shape


def expert_window(username: str) -> str:
    """The window id of ``username``'s webcam."""
    return f"{EXPERT_PREFIX}{username}"


def standard_windows(experts: Sequence[str]) -> list[str]:
    """All windows of a consultation in layout order: experts, presentation, live, relevance."""
    return [*(expert_window(name) for name in experts), PRESENTATION, LIVE, RELEVANCE]


def station_windows(experts: Sequence[str], *, shared: bool = False) -> list[str]:
    """What the clinic station shows (R16): the experts, a small self-view of the patient
    camera, the presentation only when an expert shared it with the clinic, and never the
    decision-support view."""
    windows = [expert_window(name) for name in experts]
    return [*windows, PRESENTATION, LIVE] if shared else [*windows, LIVE]


def station_main(window: str) -> str:
    """The mixer's variant key for a station composite whose main window is ``window``."""
    return f"{STATION_PREFIX}{window}"


@dataclass(frozen=True)
class Rect:
    """A rectangle of output pixels; all four numbers are even (yuv420p)."""

    x: int
    y: int
    w: int
    h: int

    def contains(self, x: int, y: int) -> bool:
        return self.x <= x < self.x + self.w and self.y <= y < self.y + self.h

    @property
    def area(self) -> int:
        return self.w * self.h


@dataclass(frozen=True)
class Layout:
    """Where each window goes in one composite frame."""

    width: int
    height: int
    main: str
    tiles: tuple[tuple[str, Rect], ...]  # main first, then the subs in window order
    label_px: int = 0  # the labels' smallest size in pixels (0: by each tile's height)

    def rect(self, window: str) -> Rect | None:
        """The tile of ``window``, or ``None`` if it is not in this layout."""
        for name, rect in self.tiles:
            if name == window:
                return rect
        return None

    def window_at(self, x: int, y: int) -> str | None:
        """The window whose tile contains output pixel ``(x, y)``; ``None`` for background."""
        for name, rect in self.tiles:
            if rect.contains(x, y):
                return name
        return None

    @property
    def windows(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.tiles)


def cells_for(n_windows: int) -> int:
    """Grid size ``c`` for ``n_windows`` windows: the smallest ``c ≥ 3`` with ``2c − 1 ≥ S``.

    At least 3 so that the main window (``(c−1)×(c−1)`` cells) is always the largest.
    """
    if n_windows < 1:
        raise ValueError("a layout needs at least one window")
    subs = n_windows - 1
    c = 3
    while 2 * c - 1 < subs:
        c += 1
    return c


def _edges(total: int, cells: int) -> list[int]:
    """Cell boundaries ``0 … total``, each ``i·total/cells`` rounded to an even number."""
    return [2 * round(i * total / cells / 2) for i in range(cells)] + [total]


def _sub_cells(c: int) -> list[tuple[int, int]]:
    """(column, row) of the sub cells in fill order: right column down, bottom row leftwards."""
    right = [(c - 1, row) for row in range(c)]
    bottom = [(col, c - 1) for col in range(c - 2, -1, -1)]
    return right + bottom


def _check_windows(windows: Sequence[str], main: str, width: int, height: int) -> None:
    """What every layout needs: windows, each once, the main one among them, an even size."""
    if not windows:
        raise ValueError("a layout needs at least one window")
    if len(set(windows)) != len(windows):
        raise ValueError(f"duplicate window ids in {list(windows)}")
    if main not in windows:
        raise ValueError(f"main window {main!r} is not one of {list(windows)}")
    if width % 2 or height % 2:
        raise ValueError(f"output size {width}x{height} must be even (yuv420p)")


def compute_layout(
    windows: Sequence[str], main: str, width: int = 1280, height: int = 720
) -> Layout:
    """The layout of ``windows`` (in order) with ``main`` in the main window."""
    _check_windows(windows, main, width, height)
    c = cells_for(len(windows))
    if width < MIN_CELL * c or height < MIN_CELL * c:
        raise ValueError(
            f"output size {width}x{height} is too small for {len(windows)} windows "
            f"({c}x{c} cells of at least {MIN_CELL} px)"
        )
    xs, ys = _edges(width, c), _edges(height, c)

    def cell(col: int, row: int) -> Rect:
        return Rect(xs[col], ys[row], xs[col + 1] - xs[col], ys[row + 1] - ys[row])

    tiles = [(main, Rect(0, 0, xs[c - 1], ys[c - 1]))]
    subs = [name for name in windows if name != main]
    tiles += [(name, cell(col, row)) for name, (col, row) in zip(subs, _sub_cells(c), strict=False)]
    return Layout(width=width, height=height, main=main, tiles=tuple(tiles))


def portrait_size(width: int, height: int) -> tuple[int, int]:
    """The portrait frame for a configured (landscape) output: as wide as the configured
    frame is high, 2:3 (720×1080 for 1280×720), both even."""
    narrow = min(width, height)
    return narrow, 2 * round(narrow * 3 / 4)


def _portrait_grid(subs: int, width: int, height: int) -> tuple[int, int, int]:
    """``(columns, rows, cell height)`` of the subs' grid below a full-width main window:
    the fewest columns (≥ 2) that leave the main window at least 16:9."""
    main_min = 2 * round(width * _CELL_ASPECT / 2)
    columns = 2
    while True:
        rows = -(-subs // columns)
        cell_h = 2 * int(width / columns * _CELL_ASPECT / 2)
        if cell_h < MIN_CELL or width // columns < MIN_CELL:
            raise ValueError(
                f"output size {width}x{height} is too small for {subs + 1} windows in portrait"
            )
        if height - rows * cell_h >= main_min:
            return columns, rows, cell_h
        columns += 1


def portrait_layout(windows: Sequence[str], main: str, width: int, height: int) -> Layout:
    """The portrait layout of ``windows`` with ``main`` on top at full width and the others
    below it, row by row, left to right (window order); the main window takes the height
    the grid leaves (at least 16:9)."""
    _check_windows(windows, main, width, height)
    label_px = round(width * PORTRAIT_LABEL_SHARE)
    subs = [name for name in windows if name != main]
    if not subs:
        return Layout(width, height, main, ((main, Rect(0, 0, width, height)),), label_px)
    columns, rows, cell_h = _portrait_grid(len(subs), width, height)
    top = height - rows * cell_h
    xs = _edges(width, columns)
    tiles = [(main, Rect(0, 0, width, top))]
    for i, name in enumerate(subs):
        row, col = divmod(i, columns)
        tiles.append((name, Rect(xs[col], top + row * cell_h, xs[col + 1] - xs[col], cell_h)))
    return Layout(width, height, main, tuple(tiles), label_px)

"""One composite yuv420p frame from the newest frame of each window (R10).

Everything stays in yuv420p: each source is scaled straight into its tile's size by
swscale (a :class:`VideoReformatter` kept per window and tile size, ``FAST_BILINEAR``,
one thread) and its three planes are copied with numpy into the output frame's
planes. That is ≈1–2 ms for seven windows at 1280×720, where a Pillow round trip (RGB
convert, resize, paste, convert back) costs ≈30–40 ms; ``bench/compositor.py``
measures both.

* Sources keep their aspect ratio, centred in their tile (letter- or pillarbox on
  the dark background).
* Scaled planes are cached per window: a source that has not produced a new frame
  (same :class:`av.VideoFrame` object, so the relevance chart nearly always) is not
  scaled again, for any tile size it is shown at. The cache keeps the frame
  referenced, so identity cannot be confused by a recycled ``id``.
* Labels are white text on a darkened box in each tile's top-left corner, rendered
  once per (text, size) with the font chain of :mod:`clinicam.fonts` and blended as a
  luma patch.
* A stalled source (no frame for ``stall_after_s``) shows its last frame greyed with
  "reconnecting…"; a source with no frame yet shows a dark tile with "waiting…".
* Every text is drawn in the viewer's language (``compose(…, locale=…)``): labels and
  badges that are marked messages (:class:`clinicam.i18n.Text`) are translated, the
  notices too, and a source drawn per language (the relevance chart, a shared item's
  caption) gives the frame of that language (:attr:`TileSource.localized`).
* The main tile has a 2 px highlighted border.

A :class:`Compositor` is not thread-safe: use one per thread (or per tick loop).
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import av
import numpy as np
from av.video.reformatter import VideoReformatter
from PIL import Image, ImageDraw, ImageFont

from clinicam.fonts import draw_text, text_length, ui_font
from clinicam.fonts import has_glyph as chain_has_glyph
from clinicam.frametrace import FrameTrace
from clinicam.i18n import ENGLISH, N_, Translator, translate
from server.media.badges import Badge, draw_badges
from server.media.layout import Layout, Rect

BACKGROUND_Y = 20
EMPTY_TILE_Y = 30
TEXT_Y = 235
BORDER_YUV = (142, 182, 86)  # light blue, RGB (80, 160, 255) in BT.601 limited range
LABEL_MARGIN = 4
WAITING_TEXT = N_("waiting…")
RECONNECTING_TEXT = N_("reconnecting…")
_SUBSTITUTES = {"—": "-", "–": "-", "−": "-", "…": "...", "‘": "'", "’": "'", "“": '"', "”": '"'}


@dataclass(frozen=True)
class TileSource:
    """What to show in one window: the newest frame, its age and a label."""

    frame: av.VideoFrame | None  # newest frame of that source, any size/format; None = none yet
    age_s: float  # seconds since that frame arrived (inf if none)
    label: str  # a marked message (clinicam.i18n.Text) is shown in the viewer's language
    trace: FrameTrace | None = None  # stage stamps of ``frame`` (the appliance's live view)
    localized: Callable[[str], av.VideoFrame] | None = None  # locale → ``frame`` drawn in it

    def frame_in(self, locale: str) -> av.VideoFrame | None:
        """The frame to show a viewer reading ``locale``."""
        return self.localized(locale) if self.localized is not None else self.frame


# --- text -----------------------------------------------------------------------------


def font(size: int) -> ImageFont.FreeTypeFont:
    """The label font at ``size`` px: the first of :func:`clinicam.fonts.font_chain`."""
    return ui_font(size)


def has_glyph(size: int, char: str) -> bool:
    """Whether a font of the chain draws ``char`` (rather than its "missing glyph" box)."""
    return chain_has_glyph(size, char)


def safe_text(text: str, size: int) -> str:
    """``text`` with characters the font lacks replaced ("—" → "-", "é" → "e", else "?")."""
    out = []
    for char in text:
        if has_glyph(size, char):
            out.append(char)
            continue
        swap = _SUBSTITUTES.get(char)
        if swap is None:
            base = unicodedata.normalize("NFKD", char)[:1]
            swap = base if base and base != char and has_glyph(size, base) else "?"
        out.append(swap if all(has_glyph(size, c) for c in swap) else "?")
    return "".join(out)


def fit_text(text: str, size: int, max_width: float) -> str:
    """:func:`safe_text`, shortened with "..." until it is at most ``max_width`` px wide."""
    text = safe_text(text, size)
    if text_length(text, size) <= max_width:
        return text
    while text and text_length(text + "...", size) > max_width:
        text = text[:-1]
    return text.rstrip() + "..." if text else ""


@dataclass(frozen=True, eq=False)
class _Patch:
    """A label box: text coverage 0..255 in luma and (half size) chroma resolution."""

    alpha: np.ndarray  # (h, w) uint16
    chroma_alpha: np.ndarray  # (h/2, w/2) uint16

    @property
    def w(self) -> int:
        return int(self.alpha.shape[1])

    @property
    def h(self) -> int:
        return int(self.alpha.shape[0])


@functools.lru_cache(maxsize=512)
def _patch(text: str, size: int, max_width: int) -> _Patch | None:
    text = fit_text(text, size, max_width - 2 * LABEL_MARGIN)
    if not text:
        return None
    face = font(size)
    ascent, descent = face.getmetrics()
    w = min(max_width, int(text_length(text, size)) + 2 * LABEL_MARGIN)
    h = ascent + descent + LABEL_MARGIN
    w, h = w + w % 2, h + h % 2
    img = Image.new("L", (w, h), 0)
    draw_text(ImageDraw.Draw(img), (LABEL_MARGIN, LABEL_MARGIN // 2), text, size, 255)
    alpha = np.asarray(img, dtype=np.uint16)
    chroma = alpha.reshape(h // 2, 2, w // 2, 2).max(axis=(1, 3))
    return _Patch(alpha, np.ascontiguousarray(chroma))


# --- planes ---------------------------------------------------------------------------


def _planes(frame: av.VideoFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Writable numpy views of a yuv420p frame's Y, U and V planes (without padding)."""
    views = []
    for plane in frame.planes[:3]:
        data = np.frombuffer(memoryview(plane), dtype=np.uint8)
        views.append(data.reshape(plane.height, plane.line_size)[:, : plane.width])
    return views[0], views[1], views[2]


def fit(src_w: int, src_h: int, box_w: int, box_h: int) -> tuple[int, int, int, int]:
    """``(x, y, w, h)`` of a ``src`` picture scaled into a box, aspect kept, centred, even."""
    scale = min(box_w / src_w, box_h / src_h)
    w = min(box_w, max(2, 2 * round(src_w * scale / 2)))
    h = min(box_h, max(2, 2 * round(src_h * scale / 2)))
    return (box_w - w) // 4 * 2, (box_h - h) // 4 * 2, w, h


@dataclass(frozen=True, eq=False)
class _Scaled:
    x: int  # offset inside the tile (even)
    y: int
    planes: tuple[np.ndarray, np.ndarray, np.ndarray]
    holder: object  # keeps the buffers the planes view alive


@dataclass(eq=False)
class _WindowCache:
    frame: av.VideoFrame  # referenced so that its id is never recycled while cached
    scaled: dict[tuple[int, int, bool], _Scaled] = field(default_factory=dict)


def _scale(scaler: VideoReformatter, frame: av.VideoFrame, tile_w: int, tile_h: int) -> _Scaled:
    x, y, w, h = fit(frame.width, frame.height, tile_w, tile_h)
    out = scaler.reformat(
        frame, width=w, height=h, format="yuv420p", interpolation="FAST_BILINEAR", threads=1
    )
    return _Scaled(x, y, _planes(out), out)


def _grey(scaled: _Scaled) -> _Scaled:
    """The same picture greyed: luma halved toward mid-grey, chroma neutral."""
    y, u, _ = scaled.planes
    luma = (y >> 1) + np.uint8(64)
    neutral = np.full(u.shape, 128, dtype=np.uint8)
    return _Scaled(scaled.x, scaled.y, (luma, neutral, neutral), None)


# --- compositor -----------------------------------------------------------------------


class Compositor:
    """Composes yuv420p frames of a fixed size from per-window sources."""

    def __init__(self, width: int = 1280, height: int = 720, *, stall_after_s: float = 2.0) -> None:
        if width % 2 or height % 2 or width <= 0 or height <= 0:
            raise ValueError(f"output size {width}x{height} must be positive and even")
        self.width = width
        self.height = height
        self.stall_after_s = stall_after_s
        self._cache: dict[tuple[str, str], _WindowCache] = {}  # (window, locale or "")
        # One swscale context per (window, tile size), reused from frame to frame:
        # a new context per frame (what VideoFrame.reformat does) costs more than
        # the scaling itself.
        self._scalers: dict[tuple[str, int, int], VideoReformatter] = {}

    def compose(
        self,
        layout: Layout,
        sources: Mapping[str, TileSource],
        badges: Sequence[Badge] = (),
        locale: str = ENGLISH,
    ) -> av.VideoFrame:
        """A new yuv420p frame of ``layout``'s size; windows missing in ``sources`` wait;
        ``badges`` go into the main window's top-right corner; texts are in ``locale``."""
        if (layout.width, layout.height) != (self.width, self.height):
            raise ValueError(
                f"layout is {layout.width}x{layout.height}, compositor {self.width}x{self.height}"
            )
        out = av.VideoFrame(self.width, self.height, "yuv420p")
        planes = _planes(out)
        planes[0].fill(BACKGROUND_Y)
        planes[1].fill(128)
        planes[2].fill(128)
        for window, rect in layout.tiles:
            source = sources.get(window)
            if source is None:
                source = TileSource(None, float("inf"), window)
            self._draw_tile(planes, window, rect, source, locale, layout.label_px)
        main = layout.rect(layout.main)
        if main is not None:
            _border(planes, main)
            shown = [Badge(translate(b.text, locale), b.rgb) for b in badges]
            draw_badges(planes, shown, main, self.height)
        for key in [k for k in self._cache if layout.rect(k[0]) is None]:
            del self._cache[key]
        if len(self._scalers) > 4 * len(layout.tiles):  # windows left or layouts resized
            self._scalers.clear()
        return out

    def _draw_tile(
        self,
        planes: tuple[np.ndarray, np.ndarray, np.ndarray],
        window: str,
        rect: Rect,
        source: TileSource,
        locale: str,
        label_px: int = 0,
    ) -> None:
        notice = None
        frame = source.frame_in(locale)
        key = (window, locale if source.localized is not None else "")
        if frame is None:
            self._cache.pop(key, None)
            planes[0][rect.y : rect.y + rect.h, rect.x : rect.x + rect.w] = EMPTY_TILE_Y
            notice = WAITING_TEXT
        else:
            stalled = source.age_s > self.stall_after_s
            scaled = self._scaled(key, frame, rect, stalled)
            for plane, pixels, shift in zip(planes, scaled.planes, (0, 1, 1), strict=True):
                x, y = (rect.x + scaled.x) >> shift, (rect.y + scaled.y) >> shift
                plane[y : y + pixels.shape[0], x : x + pixels.shape[1]] = pixels
            if stalled:
                notice = RECONNECTING_TEXT
        # by the tile's height, at least the layout's minimum (a portrait frame's)
        label_size = max(label_px, min(20, max(10, rect.h // 12)))
        label = translate(source.label, locale)
        patch = _patch(label, label_size, rect.w - 2 * LABEL_MARGIN)
        if patch is not None:
            _blend(planes, patch, rect.x + LABEL_MARGIN, rect.y + LABEL_MARGIN)
        if notice is not None:
            text = Translator(locale)(notice)
            patch = _patch(text, min(28, max(10, rect.h // 8)), rect.w - 2 * LABEL_MARGIN)
            if patch is not None:
                x = rect.x + (rect.w - patch.w) // 4 * 2
                y = rect.y + (rect.h - patch.h) // 4 * 2
                _blend(planes, patch, x, y)

    def _scaled(
        self, cached: tuple[str, str], frame: av.VideoFrame, rect: Rect, stalled: bool
    ) -> _Scaled:
        entry = self._cache.get(cached)
        if entry is None or entry.frame is not frame:
            entry = self._cache[cached] = _WindowCache(frame)
        window = cached[0]
        key = (rect.w, rect.h, stalled)
        scaled = entry.scaled.get(key)
        if scaled is None:
            if len(entry.scaled) >= 8:  # layouts of many sizes: keep the cache bounded
                entry.scaled.clear()
            fresh = entry.scaled.get((rect.w, rect.h, False))
            if fresh is None:
                scaler = self._scalers.setdefault((window, rect.w, rect.h), VideoReformatter())
                fresh = _scale(scaler, frame, rect.w, rect.h)
            entry.scaled[(rect.w, rect.h, False)] = fresh
            scaled = entry.scaled[key] = _grey(fresh) if stalled else fresh
        return scaled


def _blend(
    planes: tuple[np.ndarray, np.ndarray, np.ndarray], patch: _Patch, x: int, y: int
) -> None:
    """Draw ``patch`` at even ``(x, y)``: a darkened, desaturated box with white text."""
    luma = planes[0][y : y + patch.h, x : x + patch.w]
    alpha = patch.alpha[: luma.shape[0], : luma.shape[1]]
    box = (luma >> 1).astype(np.uint16) + 8
    luma[...] = (box * (255 - alpha) + TEXT_Y * alpha + 127) // 255
    for plane in planes[1:]:
        chroma = plane[y // 2 : (y + patch.h) // 2, x // 2 : (x + patch.w) // 2]
        calpha = patch.chroma_alpha[: chroma.shape[0], : chroma.shape[1]]
        boxed = (chroma.astype(np.int16) - 128) // 4
        chroma[...] = 128 + boxed * (255 - calpha) // 255


def _border(planes: tuple[np.ndarray, np.ndarray, np.ndarray], rect: Rect) -> None:
    """A 2 px frame around the inside of ``rect`` (1 px in the half-size chroma planes)."""
    for plane, value, shift in zip(planes, BORDER_YUV, (0, 1, 1), strict=True):
        x, y, w, h = rect.x >> shift, rect.y >> shift, rect.w >> shift, rect.h >> shift
        t = 2 >> shift
        plane[y : y + t, x : x + w] = value
        plane[y + h - t : y + h, x : x + w] = value
        plane[y : y + h, x : x + t] = value
        plane[y : y + h, x + w - t : x + w] = value

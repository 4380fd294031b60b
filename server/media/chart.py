"""The relevance view (R10): a bar chart of relevance per disease category.

Drawn with Pillow and converted to yuv420p once; the compositor re-renders it only
when the relevance changes, so its cost (a few ms) is off the per-frame path. The
chart says what it is: the title calls it decision support, not a diagnosis, and a
caption (the model card's provenance, e.g. "demonstration model — not for clinical
use; trained on synthetic data") is printed at the bottom. Glyphs missing from
the font chain are replaced by :func:`safe_text`.

Every text is drawn in the viewer's language (``locale``): the title, the "no result"
message, a marked caption, and the category names the catalogue knows (the model's
labels, such as "benign"; a label it does not know is shown as the model names it).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import av
import numpy as np
from PIL import Image, ImageDraw

from clinicam.fonts import draw_text, text_length
from clinicam.i18n import ENGLISH, N_, Text, TextList, catalogue, translate
from server.media.compositor import fit_text, font

TITLE = N_("Disease relevance — decision support, not a diagnosis")
NO_RESULT = N_("No model result yet for this patient")
# The labels of the models we ship (models.synthetic.DEMO_LABELS), for the catalogue.
KNOWN_CATEGORIES = (N_("benign"), N_("malignant"))
BACKGROUND_RGB = (24, 28, 36)
TEXT_RGB = (230, 230, 235)
MUTED_RGB = (150, 156, 170)
GRID_RGB = (70, 76, 92)
BAR_RGB = (86, 156, 230)
GRIDLINES = (0.0, 0.5, 1.0)
MIN_WIDTH, MIN_HEIGHT = 64, 48


@dataclass(frozen=True)
class ChartGeometry:
    """Pixel geometry of a chart: text sizes, the plot area and each bar's columns."""

    title_size: int
    label_size: int
    caption_size: int
    plot: tuple[int, int, int, int]  # left, top (relevance 1), right, bottom (relevance 0)
    bars: tuple[tuple[int, int], ...]  # (x0, x1) of each bar, x1 exclusive

    def value_y(self, value: float) -> int:
        """The pixel row of relevance ``value`` (0 at the bottom of the plot)."""
        _, top, _, bottom = self.plot
        return round(bottom - value * (bottom - top))


def label_band(height: int) -> int:
    """Height kept free at the top for the tile label the compositor draws."""
    return height // 9


def chart_geometry(n_bars: int, width: int, height: int) -> ChartGeometry:
    """Where things go in a ``width × height`` chart of ``n_bars`` categories."""
    title_size = max(10, height // 18)
    label_size = max(9, height // 30)
    caption_size = max(8, height // 36)
    pad = max(4, height // 40)
    # leave a band at the top for the composite's tile label ("Decision support — …")
    top = label_band(height) + pad + round(title_size * 1.3) + pad + round(label_size * 1.5)
    bottom = height - pad - round(caption_size * 1.3) - pad - round(label_size * 1.4)
    left = pad + int(font(label_size).getlength("0.5")) + pad
    right = width - 2 * pad
    slot = (right - left) / max(1, n_bars)
    bars = []
    for i in range(n_bars):
        x0 = round(left + (i + 0.2) * slot)
        bars.append((x0, max(x0 + 1, round(left + (i + 0.8) * slot))))
    return ChartGeometry(
        title_size, label_size, caption_size, (left, top, right, bottom), tuple(bars)
    )


def _validate(relevance: Mapping[str, float]) -> list[tuple[str, float]]:
    items = []
    for category, value in relevance.items():
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"relevance of {category!r} is not a number: {value!r}") from None
        if not math.isfinite(number) or not 0.0 <= number <= 1.0:
            raise ValueError(f"relevance of {category!r} is {value!r}; must be finite, in [0, 1]")
        items.append((category, number))
    return items


def in_locale(text: str, locale: str) -> str:
    """``text`` in ``locale``: a marked message translated, a plain one (a model's label or
    caption) looked up in the catalogue, else as it is."""
    if isinstance(text, Text):
        return translate(text, locale)
    return catalogue(locale).get(text, text) if locale != ENGLISH else text


def _centred(
    draw: ImageDraw.ImageDraw, text: str, size: int, cx: float, y: float, fill: tuple[int, int, int]
) -> None:
    draw_text(draw, (cx - text_length(text, size) / 2, y), text, size, fill)


def caption_line(caption: str, size: int, max_width: float, locale: str) -> str:
    """The caption in ``locale``, shortened to ``max_width``; a composed caption
    (:class:`TextList`, the model version first) is cut from its end, never inside its
    first part (the version stays whole even when nothing else fits)."""
    text = fit_text(in_locale(caption, locale), size, max_width)
    if isinstance(caption, TextList) and caption.parts:
        first = translate(caption.parts[0], locale)
        if not text.startswith(first):
            return first
    return text


def render_relevance_chart(
    relevance: Mapping[str, float] | None,
    width: int,
    height: int,
    *,
    caption: str,
    locale: str = ENGLISH,
) -> av.VideoFrame:
    """The chart as a yuv420p frame, its texts in ``locale``; with ``relevance=None`` a
    "no result yet" message."""
    rgb = np.asarray(
        relevance_chart_image(relevance, width, height, caption=caption, locale=locale)
    )
    return av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")


def relevance_chart_image(
    relevance: Mapping[str, float] | None,
    width: int,
    height: int,
    *,
    caption: str,
    locale: str = ENGLISH,
) -> Image.Image:
    """The chart as an RGB picture (what :func:`render_relevance_chart` converts)."""
    if width % 2 or height % 2 or width < MIN_WIDTH or height < MIN_HEIGHT:
        raise ValueError(f"chart size {width}x{height} must be even and at least 64x48")
    items = _validate(relevance) if relevance is not None else []
    geo = chart_geometry(len(items), width, height)
    left, top, right, bottom = geo.plot
    img = Image.new("RGB", (width, height), BACKGROUND_RGB)
    draw = ImageDraw.Draw(img)
    pad = max(4, height // 40)

    title = fit_text(in_locale(TITLE, locale), geo.title_size, width - 2 * pad)
    _centred(draw, title, geo.title_size, width / 2, pad + label_band(height), TEXT_RGB)
    tick_font = font(geo.label_size)
    for value in GRIDLINES:
        y = geo.value_y(value)
        draw.line([(left, y), (right, y)], fill=GRID_RGB, width=1)
        tick = f"{value:g}"
        tick_w = draw.textlength(tick, font=tick_font)
        draw.text(
            (left - pad - tick_w, y - geo.label_size * 0.6), tick, fill=MUTED_RGB, font=tick_font
        )

    slot = (right - left) / max(1, len(items))
    for (category, value), (x0, x1) in zip(items, geo.bars, strict=True):
        y = geo.value_y(value)
        if y < bottom:
            draw.rectangle([x0, y, x1 - 1, bottom - 1], fill=BAR_RGB)
        cx = (x0 + x1) / 2
        _centred(draw, f"{value:.2f}", geo.label_size, cx, y - geo.label_size * 1.3, TEXT_RGB)
        name = fit_text(in_locale(category, locale), geo.label_size, slot - 4)
        _centred(draw, name, geo.label_size, cx, bottom + pad / 2, TEXT_RGB)

    if relevance is None:
        size = max(10, height // 14)
        message = fit_text(in_locale(NO_RESULT, locale), size, right - left - 2 * pad)
        box_w = text_length(message, size) + 2 * pad
        box = ((left + right - box_w) / 2, (top + bottom) / 2 - size, (left + right + box_w) / 2)
        draw.rectangle([box[0], box[1], box[2], box[1] + 2 * size], fill=BACKGROUND_RGB)
        _centred(draw, message, size, (left + right) / 2, (top + bottom) / 2 - size * 0.6, TEXT_RGB)
    small = caption_line(caption, geo.caption_size, width - 2 * pad, locale)
    _centred(
        draw, small, geo.caption_size, width / 2, height - pad - geo.caption_size * 1.2, MUTED_RGB
    )
    return img

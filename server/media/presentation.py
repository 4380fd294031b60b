"""The shared presentation view: a record item drawn once into a still frame.

A shared photo, scan page or CT slice is letterboxed into the output size with a
caption line (what it is, who shared it), converted to yuv420p once, and then reused
by the compositor on every tick at no further cost — like the relevance chart. The
caption and the lines are drawn in the viewer's language (``locale``): a marked message
(:class:`clinicam.i18n.Text`) is translated, a record's own words stay as written.
"""

from __future__ import annotations

import av
import numpy as np
from PIL import Image, ImageDraw, ImageOps

from clinicam.fonts import draw_text, text_length
from clinicam.i18n import ENGLISH, translate

BACKGROUND = (16, 18, 24)
CAPTION_FRACTION = 0.08


def presentation_frame(
    picture: Image.Image, caption: str, width: int, height: int, locale: str = ENGLISH
) -> av.VideoFrame:
    """``picture`` fitted (aspect kept) above a caption, on a dark background."""
    caption = translate(caption, locale)
    canvas = Image.new("RGB", (width, height), BACKGROUND)
    caption_h = max(14, int(height * CAPTION_FRACTION))
    box = (width, height - caption_h)
    fitted = ImageOps.contain(ImageOps.exif_transpose(picture).convert("RGB"), box)
    canvas.paste(fitted, ((width - fitted.width) // 2, (box[1] - fitted.height) // 2))
    draw = ImageDraw.Draw(canvas)
    size = max(10, int(caption_h * 0.55))
    text = caption
    while text_length(text, size) > width - 8 and len(text) > 4:
        text = text[:-2]
    if text != caption:
        text = text[:-1] + "…"
    x = (width - text_length(text, size)) / 2
    draw_text(draw, (x, height - caption_h * 0.8), text, size, (235, 235, 240))
    return av.VideoFrame.from_ndarray(np.asarray(canvas), format="rgb24").reformat(format="yuv420p")


def text_frame(
    lines: list[str], caption: str, width: int, height: int, locale: str = ENGLISH
) -> av.VideoFrame:
    """Lines of text (an EMR entry, a voice note's details) as a presentation frame."""
    page = Image.new("RGB", (width, int(height * (1 - CAPTION_FRACTION))), BACKGROUND)
    draw = ImageDraw.Draw(page)
    size = max(10, height // 24)
    y = height // 20
    for line in lines[:20]:
        draw_text(draw, (width // 20, y), translate(line, locale)[:90], size, (230, 230, 235))
        y += int(size * 1.4)
    return presentation_frame(page, caption, width, height, locale)

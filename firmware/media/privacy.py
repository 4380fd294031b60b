"""The picture sent instead of the camera's while privacy mode is on.

A dark frame with a centred notice, so the far end sees at once that the camera is
paused on purpose (and not frozen or broken). The notice is in the appliance's language
(``language`` in its configuration, Chinese by default) and drawn with the font chain
of :mod:`clinicam.fonts` (Noto Sans CJK for Chinese); where the fonts installed cannot
draw that language, it is in English.
"""

from __future__ import annotations

import functools
import logging
from typing import Final

import av
import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw

from clinicam.fonts import draw_text, has_glyph, text_length, ui_font
from clinicam.i18n import CHINESE, ENGLISH, N_, Translator

_LOGGER = logging.getLogger(__name__)

PRIVACY_TEXT: Final = N_("Privacy mode — camera paused")
BACKGROUND_RGB: Final = (14, 14, 18)
TEXT_RGB: Final = (235, 235, 235)
_MAX_TEXT_WIDTH: Final = 0.9  # fraction of the frame width
_MIN_FONT_PX: Final = 6


def privacy_text(size: int, locale: str = CHINESE) -> str:
    """:data:`PRIVACY_TEXT` in ``locale``; in English (with a hyphen for a missing dash)
    where the fonts lack a character of it."""
    for text in (Translator(locale)(PRIVACY_TEXT), PRIVACY_TEXT):
        if all(has_glyph(size, char) for char in text):
            return text
    return PRIVACY_TEXT.replace("—", "-")


def privacy_frame(width: int, height: int, locale: str = CHINESE) -> av.VideoFrame:
    """A yuv420p frame of ``width`` x ``height``: dark, with :data:`PRIVACY_TEXT` centred,
    in ``locale`` ("zh-CN" or "en").

    Both sizes must be even and positive (yuv420p, as for the camera stream).
    """
    if width < 2 or height < 2 or width % 2 or height % 2:
        raise ValueError(f"frame size {width}x{height}: width and height must be even, >= 2")
    rgb = _privacy_rgb(width, height, locale if locale in (CHINESE, ENGLISH) else ENGLISH)
    return av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")


@functools.lru_cache(maxsize=4)
def _privacy_rgb(width: int, height: int, locale: str) -> npt.NDArray[np.uint8]:
    """The RGB picture, rendered once per size (the encoder asks for it every frame)."""
    image = Image.new("RGB", (width, height), BACKGROUND_RGB)
    draw = ImageDraw.Draw(image)
    size = max(_MIN_FONT_PX, height // 14)
    text = privacy_text(size, locale)
    limit = width * _MAX_TEXT_WIDTH
    if text_length(text, size) > limit:
        size = max(_MIN_FONT_PX, int(size * limit / text_length(text, size)))
        text = privacy_text(size, locale)
    ascent, descent = ui_font(size).getmetrics()
    x = (width - text_length(text, size)) / 2
    y = (height - (ascent + descent)) / 2
    draw_text(draw, (x, y), text, size, TEXT_RGB)
    _LOGGER.debug("rendered privacy frame %dx%d (font %d px, %s)", width, height, size, locale)
    rgb = np.asarray(image, dtype=np.uint8)
    rgb.flags.writeable = False
    return rgb

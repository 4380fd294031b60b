"""The picture sent instead of the camera's while privacy mode is on.

A dark frame with a centred notice, so the far end sees at once that the camera is
paused on purpose (and not frozen or broken).
"""

from __future__ import annotations

import functools
import logging
from typing import Final

import av
import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw, ImageFont

_LOGGER = logging.getLogger(__name__)

PRIVACY_TEXT: Final = "Privacy mode — camera paused"
BACKGROUND_RGB: Final = (14, 14, 18)
TEXT_RGB: Final = (235, 235, 235)
_MAX_TEXT_WIDTH: Final = 0.9  # fraction of the frame width
_MIN_FONT_PX: Final = 6
_UNASSIGNED: Final = "\U000f0000"  # private-use code point: no font has a glyph for it


def _missing_glyph(font: ImageFont.FreeTypeFont | ImageFont.ImageFont, char: str) -> bool:
    """True if ``font`` would draw its "missing glyph" box for ``char``."""
    probe, missing = font.getmask(char), font.getmask(_UNASSIGNED)
    return probe.size == missing.size and bytes(probe) == bytes(missing)


def _drawable_text(font: ImageFont.FreeTypeFont | ImageFont.ImageFont) -> str:
    """:data:`PRIVACY_TEXT`, with a hyphen if the font has no em dash (Pillow's default)."""
    if _missing_glyph(font, "—"):
        return PRIVACY_TEXT.replace("—", "-")
    return PRIVACY_TEXT


def privacy_frame(width: int, height: int) -> av.VideoFrame:
    """A yuv420p frame of ``width`` x ``height``: dark, with :data:`PRIVACY_TEXT` centred.

    Both sizes must be even and positive (yuv420p, as for the camera stream).
    """
    if width < 2 or height < 2 or width % 2 or height % 2:
        raise ValueError(f"frame size {width}x{height}: width and height must be even, >= 2")
    rgb = _privacy_rgb(width, height)
    return av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")


@functools.lru_cache(maxsize=4)
def _privacy_rgb(width: int, height: int) -> npt.NDArray[np.uint8]:
    """The RGB picture, rendered once per size (the encoder asks for it every frame)."""
    image = Image.new("RGB", (width, height), BACKGROUND_RGB)
    draw = ImageDraw.Draw(image)
    size = max(_MIN_FONT_PX, height // 14)
    font = ImageFont.load_default(size=size)
    text = _drawable_text(font)
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    limit = width * _MAX_TEXT_WIDTH
    if right - left > limit:
        size = max(_MIN_FONT_PX, int(size * limit / (right - left)))
        font = ImageFont.load_default(size=size)
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    x = (width - (right - left)) / 2 - left
    y = (height - (bottom - top)) / 2 - top
    draw.text((x, y), text, font=font, fill=TEXT_RGB)
    _LOGGER.debug("rendered privacy frame %dx%d (font %d px)", width, height, size)
    rgb = np.asarray(image, dtype=np.uint8)
    rgb.flags.writeable = False
    return rgb

"""Coloured state badges drawn into a composite: "recording", "privacy" (R16).

The clinic station's screen faces the patient, two metres away: the badges are large
(a sixteenth of the frame's height), solid coloured boxes with white text, in the main
window's top-right corner, one below the other. Each badge is rendered once per
(text, size) and blended as a luma mask; the box colour fills the chroma planes.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from clinicam.fonts import draw_text, text_length, ui_font
from server.media.layout import Rect

TEXT_Y = 235
MARGIN = 8


def rgb_to_yuv(r: int, g: int, b: int) -> tuple[int, int, int]:
    """BT.601 limited range, as the composites are encoded."""
    y = round(0.257 * r + 0.504 * g + 0.098 * b + 16)
    u = round(-0.148 * r - 0.291 * g + 0.439 * b + 128)
    v = round(0.439 * r - 0.368 * g - 0.071 * b + 128)
    return y, u, v


@dataclass(frozen=True)
class Badge:
    """One state shown to the patient: its words and its box colour (RGB)."""

    text: str
    rgb: tuple[int, int, int]


RECORDING_RGB = (200, 24, 24)  # red: the camera is being recorded
PRIVACY_RGB = (90, 60, 170)  # violet: privacy mode, nothing leaves the room


@functools.lru_cache(maxsize=64)
def _mask(text: str, size: int, max_width: int) -> np.ndarray | None:
    """Text coverage 0..255 of a badge box (even width and height), or None if too narrow."""
    face = ui_font(size)
    ascent, descent = face.getmetrics()
    w = min(max_width, int(text_length(text, size)) + 2 * size // 2)
    h = ascent + descent + size // 3
    w, h = w - w % 2, h + h % 2
    if w < 2 * size:
        return None
    img = Image.new("L", (w, h), 0)
    draw_text(ImageDraw.Draw(img), (size // 2, size // 6), text, size, 255)
    return np.asarray(img, dtype=np.uint16)


def draw_badges(
    planes: tuple[np.ndarray, np.ndarray, np.ndarray],
    badges: Sequence[Badge],
    area: Rect,
    frame_height: int,
) -> list[Rect]:
    """Draw ``badges`` into the top-right corner of ``area``; returns where each went."""
    size = max(12, frame_height // 16)
    y = area.y + MARGIN
    drawn = []
    for badge in badges:
        mask = _mask(badge.text, size, area.w - 2 * MARGIN)
        if mask is None or y + mask.shape[0] > area.y + area.h:
            break
        h, w = mask.shape
        x = area.x + area.w - MARGIN - w
        x -= x % 2
        box_y, box_u, box_v = rgb_to_yuv(*badge.rgb)
        luma = planes[0][y : y + h, x : x + w]
        luma[...] = (box_y * (255 - mask) + TEXT_Y * mask + 127) // 255
        half = mask.reshape(h // 2, 2, w // 2, 2).max(axis=(1, 3))
        for plane, value in ((planes[1], box_u), (planes[2], box_v)):  # white text stays white
            plane[y // 2 : (y + h) // 2, x // 2 : (x + w) // 2] = (
                value * (255 - half) + 128 * half + 127
            ) // 255
        drawn.append(Rect(x, y, w, h))
        y += h + MARGIN
        y += y % 2
    return drawn

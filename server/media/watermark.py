"""A visible per-viewer watermark (R15): who is watching, and when.

Drawn into the luma plane at reduced contrast in three places, so a screenshot or a
phone photo of the screen names the viewer. The text mask is rendered once per
minute (the time shown has minute precision), so marking a 720p frame costs one
numpy blend.
"""

from __future__ import annotations

from datetime import UTC, datetime

import av
import numpy as np
from PIL import Image, ImageDraw

from clinicam.fonts import draw_text, text_length
from clinicam.i18n import ENGLISH, Translator

STRENGTH = 0.35


class Watermark:
    """``viewer`` and the current UTC minute, blended into frames of one size, worded in
    the viewer's language (``locale``)."""

    def __init__(self, viewer: str, width: int, height: int, locale: str = ENGLISH) -> None:
        self.viewer = viewer
        self._ = Translator(locale)
        self.width = width
        self.height = height
        self._text = ""
        self._mask: np.ndarray = np.zeros((height, width), dtype=np.float32)

    def text(self, now: datetime | None = None) -> str:
        moment = (now or datetime.now(UTC)).astimezone(UTC)
        return self._("{viewer} · {time} UTC", viewer=self.viewer, time=f"{moment:%Y-%m-%d %H:%M}")

    def _render(self, text: str) -> None:
        img = Image.new("L", (self.width, self.height), 0)
        draw = ImageDraw.Draw(img)
        size = max(10, min(self.height, self.width * 3 // 4) // 28)  # a portrait frame too
        w = text_length(text, size)
        for fx, fy in ((0.97, 0.04), (0.5, 0.5), (0.03, 0.92)):
            x = min(max(0.0, self.width * fx - w * fx), self.width - w)
            draw_text(draw, (x, self.height * fy), text, size, 255)
        self._mask = np.asarray(img, dtype=np.float32) * (STRENGTH / 255.0)
        self._text = text

    def apply(self, frame: av.VideoFrame, now: datetime | None = None) -> av.VideoFrame:
        """A new yuv420p frame with the mark (the input frame is not changed)."""
        text = self.text(now)
        if text != self._text:
            self._render(text)
        planes = frame.to_ndarray(format="yuv420p")
        luma = planes[: self.height].astype(np.float32)
        planes[: self.height] = (luma * (1.0 - self._mask) + 255.0 * self._mask).astype(np.uint8)
        out = av.VideoFrame.from_ndarray(planes, format="yuv420p")
        out.pts = frame.pts
        if frame.time_base is not None:
            out.time_base = frame.time_base
        return out

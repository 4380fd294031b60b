"""Still frames with a message, shown where live video is missing."""

from __future__ import annotations

import av
import numpy as np
from PIL import Image, ImageDraw

from clinicam.fonts import ui_font


def message_card(width: int, height: int, title: str, detail: str) -> av.VideoFrame:
    """A dark yuv420p frame with a centred title and detail line."""
    img = Image.new("RGB", (width, height), (24, 28, 36))
    draw = ImageDraw.Draw(img)
    big = ui_font(max(12, height // 16))
    small = ui_font(max(10, height // 30))
    for text, font, y in ((title, big, height * 0.42), (detail, small, height * 0.55)):
        w = draw.textlength(text, font=font)
        draw.text(((width - w) / 2, y), text, fill=(230, 230, 235), font=font)
    return av.VideoFrame.from_ndarray(np.asarray(img), format="rgb24").reformat(format="yuv420p")

"""Still frames with a message, shown where live video is missing."""

from __future__ import annotations

import av
import numpy as np
from PIL import Image, ImageDraw

from clinicam.fonts import draw_text, text_length
from clinicam.i18n import ENGLISH, translate


def message_card(
    width: int, height: int, title: str, detail: str, locale: str = ENGLISH
) -> av.VideoFrame:
    """A dark yuv420p frame with a centred title and detail line (marked messages are
    drawn in ``locale``)."""
    img = Image.new("RGB", (width, height), (24, 28, 36))
    draw = ImageDraw.Draw(img)
    big, small = max(12, height // 16), max(10, height // 30)
    for message, size, y in ((title, big, height * 0.42), (detail, small, height * 0.55)):
        text = translate(message, locale)
        w = text_length(text, size)
        draw_text(draw, ((width - w) / 2, y), text, size, (230, 230, 235))
    return av.VideoFrame.from_ndarray(np.asarray(img), format="rgb24").reformat(format="yuv420p")

"""The font for text drawn into video: DejaVu Sans where installed, else Pillow's own.

DejaVu Sans (Debian's fonts-dejavu-core, installed by install.sh) has the dashes and
accented letters of real names ("Patient — Hill Clinic", "Dr. Zoë Müller"); Pillow's
bundled font lacks them, and callers replace what a font cannot draw.
"""

from __future__ import annotations

import functools
from pathlib import Path

from PIL import ImageFont

DEJAVU_SANS = (
    Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"),
    Path("/usr/share/fonts/TTF/DejaVuSans.ttf"),
)


@functools.lru_cache(maxsize=64)
def ui_font(size: int) -> ImageFont.FreeTypeFont:
    """A scalable font at ``size`` px."""
    for path in DEJAVU_SANS:
        if path.exists():
            return ImageFont.truetype(str(path), size)
    face = ImageFont.load_default(size=size)
    if not isinstance(face, ImageFont.FreeTypeFont):
        raise RuntimeError("Pillow was built without FreeType: no scalable default font")
    return face

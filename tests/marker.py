"""Finding the scene's magenta marker (firmware.hardware.scene.MARKER_*) in a picture.

For the aiming tests and ``bench/examine.py``: where the marker is, measured in the
frames that arrive, not taken from the angles the camera was sent to.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Marker:
    """The marker in a picture, in fractions of the picture's width and height."""

    x: float  # centre
    y: float
    width: float  # extent
    height: float
    pixels: int

    def off_centre_pct(self, aspect: float) -> float:
        """Distance from the picture's centre, in % of its width (aspect = width / height)."""
        return 100.0 * float(np.hypot(self.x - 0.5, (self.y - 0.5) / aspect))


def marker_mask(rgb: np.ndarray) -> np.ndarray:
    """Pixels of the marker's colour (magenta survives H.264 and 4:2:0 with this margin)."""
    r, g, b = (rgb[..., i].astype(np.int16) for i in range(3))
    return (r > 170) & (b > 170) & (g < 110)


def find_marker(rgb: np.ndarray, min_pixels: int = 30) -> Marker | None:
    """The marker's centre and extent, from its magenta pixels (None if too few)."""
    mask = marker_mask(rgb)
    ys, xs = np.nonzero(mask)
    if len(xs) < min_pixels:
        return None
    height, width = mask.shape
    # The extent from robust percentiles: a stray pixel of a blurred edge does not count.
    x0, x1 = np.percentile(xs, [0.5, 99.5])
    y0, y1 = np.percentile(ys, [0.5, 99.5])
    return Marker(
        x=(float(xs.mean()) + 0.5) / width,
        y=(float(ys.mean()) + 0.5) / height,
        width=float(x1 - x0 + 1) / width,
        height=float(y1 - y0 + 1) / height,
        pixels=len(xs),
    )

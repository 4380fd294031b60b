"""The simulation's colour: the room's lighting, the camera's colour matrix, a colour card.

The scene image is what the patient and the wall look like in daylight (sRGB). The
virtual camera renders a colour the way an ISP does, in linear light:

    shown = CCM · gains · lighting · scene

``lighting`` is a 3×3 matrix per lighting preset (:data:`LIGHTING_CASTS`, overridable in
the sim's config): a tungsten lamp scales red up and blue down and its spectrum mixes
the channels a little, which is what a colour-correction matrix is there to undo.
``gains`` are ``ColourGains`` relative to the neutral gains, ``CCM`` is libcamera's
``ColourCorrectionMatrix`` (identity = the camera's own tuning, right for daylight).

The 24-patch card (ColorChecker Classic layout, :mod:`clinicam.colourcard`) is drawn
from the published sRGB values on a near-black card body, as the real card is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from clinicam.colourcard import COLUMNS, REFERENCE_SRGB, ROWS

# Per lighting preset (the white balance presets' names): what the light does to the
# daylit scene, in linear RGB. Daylight is neutral.
LIGHTING_CASTS: dict[str, tuple[float, ...]] = {
    "daylight": (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0),
    "cloudy": (0.86, 0.04, 0.0, 0.02, 0.98, 0.0, 0.0, 0.05, 1.18),
    "indoor": (1.22, 0.05, -0.02, 0.03, 0.95, 0.02, 0.0, 0.06, 0.68),
    "fluorescent": (0.95, 0.12, -0.02, 0.04, 1.08, -0.05, -0.03, 0.15, 0.82),
    "tungsten": (1.32, 0.06, -0.03, 0.04, 0.94, 0.02, -0.02, 0.08, 0.55),
    "incandescent": (1.40, 0.08, -0.04, 0.05, 0.92, 0.03, -0.02, 0.10, 0.45),
}
IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)

_CODES = np.arange(256, dtype=np.float64) / 255.0
_DECODE = np.where(_CODES <= 0.04045, _CODES / 12.92, ((_CODES + 0.055) / 1.055) ** 2.4).astype(
    np.float32
)
_ENCODE_STEPS = 4096
_LEVELS = np.arange(_ENCODE_STEPS + 1, dtype=np.float64) / _ENCODE_STEPS
_ENCODE = np.rint(
    255.0 * np.where(_LEVELS <= 0.0031308, _LEVELS * 12.92, 1.055 * _LEVELS ** (1 / 2.4) - 0.055)
).astype(np.uint8)


def colour_matrix(
    lighting: tuple[float, ...], multipliers: tuple[float, float, float], ccm: tuple[float, ...]
) -> np.ndarray | None:
    """``CCM · diag(multipliers) · lighting`` (float32 3×3), or ``None`` when it is identity."""
    total = (
        np.array(ccm, dtype=np.float64).reshape(3, 3)
        @ np.diag(multipliers)
        @ np.array(lighting, dtype=np.float64).reshape(3, 3)
    )
    if np.allclose(total, np.eye(3), atol=1e-6):
        return None
    return total.astype(np.float32)


def apply_matrix(rgb: np.ndarray, matrix: np.ndarray) -> None:
    """Apply a linear-light colour ``matrix`` in place to an (H, W, 3) uint8 sRGB array."""
    linear = _DECODE[rgb.reshape(-1, 3)]
    mixed = linear @ matrix.T
    np.clip(mixed, 0.0, 1.0, out=mixed)
    codes = (mixed * _ENCODE_STEPS + 0.5).astype(np.intp)
    rgb.reshape(-1, 3)[:] = _ENCODE[codes]


def card_image(width: int) -> np.ndarray:
    """The 24-patch card, ``width`` pixels wide: 4×6 patches on a dark body (uint8 RGB)."""
    patch = width / (COLUMNS + (COLUMNS - 1) * 0.25 + 2 * 0.4)
    gap, border = 0.25 * patch, 0.4 * patch
    height = round(ROWS * patch + (ROWS - 1) * gap + 2 * border)
    card = np.empty((height, width, 3), dtype=np.uint8)
    card[:] = (22, 22, 24)
    colours = np.clip(np.rint(REFERENCE_SRGB), 0, 255).astype(np.uint8)
    for index, colour in enumerate(colours):
        row, column = divmod(index, COLUMNS)
        x0 = round(border + column * (patch + gap))
        y0 = round(border + row * (patch + gap))
        card[y0 : y0 + round(patch), x0 : x0 + round(patch)] = colour
    return card


@dataclass(frozen=True, eq=False)
class HeldCard:
    """A card image placed in the scene, its top-left corner at scene pixel (x, y)."""

    x: int
    y: int
    image: np.ndarray


def paste_card(pixels: np.ndarray, region: tuple[int, int, int, int], card: HeldCard) -> None:
    """Draw the part of ``card`` inside the scene ``region`` (x, y, w, h) onto ``pixels``."""
    rx, ry, rw, rh = region
    ch, cw = card.image.shape[:2]
    x0, y0 = max(card.x, rx), max(card.y, ry)
    x1, y1 = min(card.x + cw, rx + rw), min(card.y + ch, ry + rh)
    if x0 >= x1 or y0 >= y1:
        return
    pixels[y0 - ry : y1 - ry, x0 - rx : x1 - rx] = card.image[
        y0 - card.y : y1 - card.y, x0 - card.x : x1 - card.x
    ]

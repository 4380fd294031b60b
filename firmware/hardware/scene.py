"""The simulated world the virtual camera looks at: a large, detailed, generated image.

Generated (not shipped) so that it is licence-clean and any size: a clinic wall with a
degree grid a technician can read (labels say where the camera points), coloured
fine detail for focus and colour tests, and a stylised patient in the middle.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

# A magenta sticker on the wall, the one thing in the scene of that colour: a target for
# tests and benchmarks of aiming the camera (they find it in the received video).
MARKER_PAN_DEG = 21.0
MARKER_TILT_DEG = -8.0
MARKER_RADIUS_DEG = 3.0
MARKER_RGB = (255, 0, 255)


def _not_marker(colour: tuple[int, ...]) -> tuple[int, ...]:
    """A random colour kept clear of the marker's (magenta-ish turns pink-grey)."""
    red, green, blue = colour
    return (red, 200, blue) if red > 150 and blue > 150 and green < 130 else colour


def generate_scene(width_deg: float, height_deg: float, px_per_deg: float, seed: int) -> np.ndarray:
    """An RGB image covering ``width_deg`` × ``height_deg`` centred on (0°, 0°)."""
    width = round(width_deg * px_per_deg)
    height = round(height_deg * px_per_deg)
    rng = np.random.default_rng(seed)

    # Wall: a soft two-axis gradient with wallpaper-like vertical panels.
    xs = np.linspace(0.0, 1.0, width, dtype=np.float32)
    ys = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
    base = np.empty((height, width, 3), dtype=np.uint8)
    base[..., 0] = (150 + 60 * xs[None, :] - 30 * ys).clip(0, 255).astype(np.uint8)
    base[..., 1] = (170 - 40 * xs[None, :] + 30 * ys).clip(0, 255).astype(np.uint8)
    base[..., 2] = (190 - 50 * ys + 0 * xs[None, :]).clip(0, 255).astype(np.uint8)
    img = Image.fromarray(base, "RGB")
    draw = ImageDraw.Draw(img)

    # Fine detail: many small shapes in saturated colours.
    for _ in range(int(width * height / 9000)):
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        r = int(rng.integers(4, max(6, int(px_per_deg * 1.5))))
        colour = _not_marker(tuple(int(c) for c in rng.integers(0, 256, 3)))
        if rng.random() < 0.5:
            draw.ellipse((x - r, y - r, x + r, y + r), fill=colour)
        else:
            draw.rectangle((x - r, y - r // 2, x + r, y + r // 2), fill=colour)

    # Degree grid every 10°, labelled with where the camera points.
    step = 10.0 * px_per_deg
    font = ImageFont.load_default(size=max(10, int(px_per_deg * 1.2)))
    cx, cy = width / 2, height / 2
    n_x, n_y = int(cx // step), int(cy // step)
    for i in range(-n_x, n_x + 1):
        gx = cx + i * step
        draw.line((gx, 0, gx, height), fill=(60, 60, 80), width=2)
    for j in range(-n_y, n_y + 1):
        gy = cy - j * step
        draw.line((0, gy, width, gy), fill=(60, 60, 80), width=2)
        for i in range(-n_x, n_x + 1):
            gx = cx + i * step
            draw.text((gx + 4, gy + 4), f"{i * 10:+d}/{j * 10:+d}", fill=(20, 20, 30), font=font)

    # A stylised patient at the centre, with a lesion to zoom in on.
    u = px_per_deg
    draw.rounded_rectangle(
        (cx - 9 * u, cy - 2 * u, cx + 9 * u, cy + 14 * u), 3 * u, fill=(70, 110, 160)
    )
    draw.ellipse((cx - 5 * u, cy - 13 * u, cx + 5 * u, cy - 1 * u), fill=(224, 180, 150))
    draw.ellipse((cx + 1 * u, cy - 8 * u, cx + 2.2 * u, cy - 6.8 * u), fill=(140, 40, 50))
    draw.text((cx - 8 * u, cy + 10 * u), "PATIENT (simulated)", fill=(255, 255, 255), font=font)

    mx, my, mr = cx + MARKER_PAN_DEG * u, cy - MARKER_TILT_DEG * u, MARKER_RADIUS_DEG * u
    draw.ellipse(
        (mx - mr - 0.3 * u, my - mr - 0.3 * u, mx + mr + 0.3 * u, my + mr + 0.3 * u), fill=(0, 0, 0)
    )
    draw.ellipse((mx - mr, my - mr, mx + mr, my + mr), fill=MARKER_RGB)
    return np.asarray(img)

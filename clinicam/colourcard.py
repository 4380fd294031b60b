"""The 24-patch reference colour card, CIE colour maths and the colour-correction fit.

numpy only, so that the appliance (a Raspberry Pi) needs no colour library: the
reference values are constants taken from colour-science's
``CCS_COLOURCHECKERS["ColorChecker24 - After November 2014"]`` (X-Rite's published
CIE L*a*b* under D50) and the sRGB values derived from them with a Bradford adaptation
to D65 (cyan is outside sRGB: its red is clipped to 0). The tests check these constants,
the L*a*b* conversion and ΔE2000 against colour-science itself.

A camera's colour is measured as an sRGB picture: its pixels are converted to XYZ, adapted
to D50 (Bradford) and to L*a*b*, and compared with the published L*a*b* by ΔE2000.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ROWS, COLUMNS = 4, 6
PATCH_NAMES = (
    "dark skin",
    "light skin",
    "blue sky",
    "foliage",
    "blue flower",
    "bluish green",
    "orange",
    "purplish blue",
    "moderate red",
    "purple",
    "yellow green",
    "orange yellow",
    "blue",
    "green",
    "red",
    "yellow",
    "magenta",
    "cyan",
    "white 9.5",
    "neutral 8",
    "neutral 6.5",
    "neutral 5",
    "neutral 3.5",
    "black 2",
)
# Published CIE L*a*b* (D50, 2° observer), row by row as the card is read (dark skin first).
REFERENCE_LAB = np.array(
    [
        (37.54, 14.37, 14.92),
        (64.66, 19.27, 17.50),
        (49.32, -3.82, -22.54),
        (43.46, -12.74, 22.72),
        (54.94, 9.61, -24.79),
        (70.48, -32.26, -0.37),
        (62.73, 35.83, 56.50),
        (39.43, 10.75, -45.17),
        (50.57, 48.64, 16.67),
        (30.10, 22.54, -20.87),
        (71.77, -24.13, 58.19),
        (71.51, 18.24, 67.37),
        (28.37, 15.42, -49.80),
        (54.38, -39.72, 32.27),
        (42.43, 51.05, 28.62),
        (81.80, 2.67, 80.41),
        (50.63, 51.28, -14.12),
        (49.57, -29.71, -28.32),
        (95.19, -1.03, 2.93),
        (81.29, -0.57, 0.44),
        (66.89, -0.75, -0.06),
        (50.76, -0.13, 0.14),
        (35.63, -0.46, -0.48),
        (20.64, 0.07, -0.46),
    ]
)
# The same patches in 8-bit sRGB (D65), as a perfect camera would show them.
REFERENCE_SRGB = np.array(
    [
        (115.7, 79.3, 65.0),
        (197.2, 143.7, 126.6),
        (90.8, 120.3, 155.2),
        (91.5, 108.3, 63.7),
        (131.1, 127.0, 174.6),
        (95.3, 188.8, 171.7),
        (224.1, 124.2, 48.3),
        (68.6, 89.5, 167.3),
        (197.3, 80.0, 95.1),
        (92.9, 57.8, 103.9),
        (156.1, 187.1, 58.2),
        (227.4, 161.3, 39.2),
        (39.7, 61.6, 145.2),
        (60.6, 147.1, 70.1),
        (178.2, 53.6, 56.7),
        (236.4, 199.5, 14.7),
        (191.2, 78.8, 146.4),
        (0.0, 132.8, 165.2),
        (241.0, 241.7, 235.4),
        (201.1, 202.2, 201.1),
        (161.3, 163.2, 162.8),
        (120.7, 120.9, 120.6),
        (82.7, 84.0, 84.5),
        (49.5, 49.7, 50.4),
    ]
)
NEUTRALS = slice(18, 24)  # the bottom row: white to black
# Linear sRGB → XYZ adapted to D50 (Bradford), and the D50 white.
SRGB_TO_XYZ_D50 = np.array(
    [
        (0.4360515, 0.3851298, 0.1430678),
        (0.2224467, 0.7169365, 0.0606191),
        (0.0138963, 0.0970715, 0.7138883),
    ]
)
D50_WHITE = np.array((0.9642, 1.0, 0.8249))


def srgb_to_linear(srgb: np.ndarray) -> np.ndarray:
    """sRGB values in 0..1 to linear light (IEC 61966-2-1)."""
    v = np.clip(np.asarray(srgb, dtype=np.float64), 0.0, 1.0)
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(linear: np.ndarray) -> np.ndarray:
    """Linear light to sRGB values in 0..1 (clipped)."""
    v = np.clip(np.asarray(linear, dtype=np.float64), 0.0, 1.0)
    return np.where(v <= 0.0031308, v * 12.92, 1.055 * v ** (1 / 2.4) - 0.055)


def srgb8_to_lab(srgb8: np.ndarray) -> np.ndarray:
    """8-bit sRGB (…, 3) to CIE L*a*b* under D50 (Bradford-adapted from sRGB's D65)."""
    xyz = srgb_to_linear(np.asarray(srgb8, dtype=np.float64) / 255.0) @ SRGB_TO_XYZ_D50.T
    t = xyz / D50_WHITE
    delta = 6.0 / 29.0
    f = np.where(t > delta**3, np.cbrt(t), t / (3 * delta**2) + 4.0 / 29.0)
    return np.stack(
        (
            116.0 * f[..., 1] - 16.0,
            500.0 * (f[..., 0] - f[..., 1]),
            200.0 * (f[..., 1] - f[..., 2]),
        ),
        axis=-1,
    )


def delta_e2000(lab1: np.ndarray, lab2: np.ndarray) -> np.ndarray:
    """CIEDE2000 colour difference (kL = kC = kH = 1), element-wise over (…, 3) arrays.

    Follows Sharma, Wu and Dalal (2005), "The CIEDE2000 color-difference formula:
    implementation notes, supplementary test data, and mathematical observations".
    """
    l1, a1, b1 = np.moveaxis(np.asarray(lab1, dtype=np.float64), -1, 0)
    l2, a2, b2 = np.moveaxis(np.asarray(lab2, dtype=np.float64), -1, 0)
    c_bar = (np.hypot(a1, b1) + np.hypot(a2, b2)) / 2.0
    g = 0.5 * (1.0 - np.sqrt(c_bar**7 / (c_bar**7 + 25.0**7)))
    a1p, a2p = (1.0 + g) * a1, (1.0 + g) * a2
    c1p, c2p = np.hypot(a1p, b1), np.hypot(a2p, b2)
    h1p = np.degrees(np.arctan2(b1, a1p)) % 360.0
    h2p = np.degrees(np.arctan2(b2, a2p)) % 360.0
    d_lp, d_cp = l2 - l1, c2p - c1p
    dh = h2p - h1p
    dh = np.where(dh > 180.0, dh - 360.0, np.where(dh < -180.0, dh + 360.0, dh))
    dh = np.where(c1p * c2p == 0.0, 0.0, dh)
    d_hp = 2.0 * np.sqrt(c1p * c2p) * np.sin(np.radians(dh) / 2.0)
    l_bar, cp_bar = (l1 + l2) / 2.0, (c1p + c2p) / 2.0
    h_sum = h1p + h2p
    h_bar = np.where(
        np.abs(h1p - h2p) <= 180.0,
        h_sum / 2.0,
        np.where(h_sum < 360.0, (h_sum + 360.0) / 2.0, (h_sum - 360.0) / 2.0),
    )
    h_bar = np.where(c1p * c2p == 0.0, h_sum, h_bar)
    t = (
        1.0
        - 0.17 * np.cos(np.radians(h_bar - 30.0))
        + 0.24 * np.cos(np.radians(2.0 * h_bar))
        + 0.32 * np.cos(np.radians(3.0 * h_bar + 6.0))
        - 0.20 * np.cos(np.radians(4.0 * h_bar - 63.0))
    )
    d_theta = 30.0 * np.exp(-(((h_bar - 275.0) / 25.0) ** 2))
    r_c = 2.0 * np.sqrt(cp_bar**7 / (cp_bar**7 + 25.0**7))
    s_l = 1.0 + 0.015 * (l_bar - 50.0) ** 2 / np.sqrt(20.0 + (l_bar - 50.0) ** 2)
    s_c = 1.0 + 0.045 * cp_bar
    s_h = 1.0 + 0.015 * cp_bar * t
    r_t = -np.sin(np.radians(2.0 * d_theta)) * r_c
    result: np.ndarray = np.sqrt(
        (d_lp / s_l) ** 2
        + (d_cp / s_c) ** 2
        + (d_hp / s_h) ** 2
        + r_t * (d_cp / s_c) * (d_hp / s_h)
    )
    return result


def mean_delta_e(patches_srgb8: np.ndarray) -> float:
    """Mean ΔE2000 of 24 measured 8-bit sRGB patches against the published card."""
    return float(delta_e2000(srgb8_to_lab(patches_srgb8), REFERENCE_LAB).mean())


@dataclass(frozen=True)
class ColourFit:
    """What turns the camera's colour into the card's: red/blue gains to multiply the
    current ``ColourGains`` by, and the colour-correction matrix to set (linear RGB,
    applied after the gains, row-major; each row sums to ``exposure`` so greys stay grey)."""

    red_gain: float
    blue_gain: float
    ccm: tuple[float, ...]
    exposure: float


def fit_correction(measured_srgb8: np.ndarray, current_ccm: np.ndarray) -> ColourFit:
    """Fit gains and a CCM to 24 patches measured through ``current_ccm`` (3×3).

    The measured colours are taken back through the current CCM to white-balanced camera
    RGB; the gains make the grey row neutral there (as ``ColourGains`` do on the sensor);
    the new CCM is the least-squares map from the balanced camera RGB to the reference
    linear RGB with every row summing to the same exposure factor (so white stays white).
    Raises ``ValueError`` when the patches cannot give a meaningful fit.
    """
    measured = np.asarray(measured_srgb8, dtype=np.float64)
    if measured.shape != (ROWS * COLUMNS, 3) or not np.all(np.isfinite(measured)):
        raise ValueError("need 24 finite RGB patches")
    camera = srgb_to_linear(measured / 255.0) @ np.linalg.inv(current_ccm).T
    greys = camera[NEUTRALS][1:5]  # white may clip, black is noisy
    totals = greys.sum(axis=0)
    if np.any(totals <= 1e-4):
        raise ValueError("the grey patches are black: is the card lit?")
    red_gain, blue_gain = totals[1] / totals[0], totals[1] / totals[2]
    balanced = camera * np.array((red_gain, 1.0, blue_gain))
    target = srgb_to_linear(REFERENCE_SRGB / 255.0)
    usable = np.all(balanced < 0.98, axis=1)  # clipped patches say nothing about the matrix
    x, y = balanced[usable], target[usable]
    exposure = float(target[NEUTRALS][1:5].sum() / balanced[NEUTRALS][1:5].sum())
    exposure = min(max(exposure, 0.25), 4.0)
    rows = []
    for channel in range(3):
        # c0·x0 + c1·x1 + c2·x2 with c2 = exposure − c0 − c1: least squares in (c0, c1).
        design = np.stack((x[:, 0] - x[:, 2], x[:, 1] - x[:, 2]), axis=1)
        rhs = y[:, channel] - exposure * x[:, 2]
        (c0, c1), *_ = np.linalg.lstsq(design, rhs, rcond=None)
        rows.append((c0, c1, exposure - c0 - c1))
    ccm = np.array(rows)
    if not np.all(np.isfinite(ccm)) or np.abs(ccm).max() > 8.0:
        raise ValueError("the colour-correction fit is out of range")
    return ColourFit(
        float(red_gain), float(blue_gain), tuple(float(v) for v in ccm.ravel()), exposure
    )

"""Find the 24-patch colour card in a picture and read its patches (numpy only).

No fixed position is assumed. The picture is reduced to about :data:`WORK_WIDTH` pixels;
its flat regions (no edge above :data:`EDGE_LEVEL` to a neighbour) are labelled; the
square ones are patch candidates. A 4×6 lattice is looked for among candidates of one
size: two neighbours a patch pitch apart give the lattice's axes, every candidate on the
lattice counts, and the best 6×4 window wins when at least :data:`MIN_PATCHES` of its
cells hold a candidate. The patch centres (missing ones too) come from an affine fit
of the lattice. Which corner is "dark skin" is decided by the colours: of the eight ways
to lay the card on the lattice, the one whose patches best match the reference after a
per-channel gain is taken — and if even that match is poor, there is no card.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from clinicam.colourcard import COLUMNS, REFERENCE_SRGB, ROWS, srgb_to_linear

WORK_WIDTH = 800
EDGE_LEVEL = 10.0  # of 255, between neighbouring pixels of the reduced picture
# Tries in turn: (smooth 3×3 first, edge level). A noisy picture (a dim room, high gain)
# breaks patches into specks at the first; smoothing quiets it at some cost in sharpness.
ATTEMPTS = ((False, EDGE_LEVEL), (True, 6.0), (True, 9.0), (True, 12.0))
MIN_SIDE = 5  # pixels of the reduced picture
MIN_PATCHES = 16
MAX_CANDIDATES = 600
MATCH_LIMIT = 0.3  # relative residual of the best layout after per-channel gains


@dataclass(frozen=True)
class CardReading:
    """The 24 patches (8-bit sRGB, card order) and where they were (picture pixels)."""

    patches: np.ndarray
    centres: np.ndarray
    pitch_px: float


def _reduce(rgb: np.ndarray) -> tuple[np.ndarray, int]:
    step = max(1, math.ceil(rgb.shape[1] / WORK_WIDTH))
    h, w = rgb.shape[0] // step * step, rgb.shape[1] // step * step
    small = rgb[:h, :w].reshape(h // step, step, w // step, step, 3).astype(np.float32)
    return small.mean(axis=(1, 3)), step


def _label(mask: np.ndarray) -> np.ndarray:
    """Connected 4-neighbour components of ``mask``: a label per pixel (-1 outside).

    Horizontal runs are the units; runs touching vertically are merged by propagating the
    smallest run number with pointer jumping, a few passes for any shape.
    """
    h, w = mask.shape
    flat = mask.reshape(-1)
    starts = flat.copy()
    starts[1:] &= ~flat[:-1]
    starts[::w] = flat[::w]  # a run never continues across rows
    run = np.cumsum(starts) - 1
    if not flat.any():
        return np.full((h, w), -1)
    runs = int(run[-1]) + 1
    run = np.where(flat, run, -1).reshape(h, w)
    both = mask[:-1] & mask[1:]
    pairs = np.unique(run[:-1][both].astype(np.int64) * max(runs, 1) + run[1:][both])
    top, bottom = np.divmod(pairs, max(runs, 1))
    labels = np.arange(runs)
    while True:
        low = np.minimum(labels[top], labels[bottom])
        new = labels.copy()
        np.minimum.at(new, top, low)
        np.minimum.at(new, bottom, low)
        for _ in range(4):
            new = new[new]
        if np.array_equal(new, labels):
            break
        labels = new
    return np.where(run >= 0, labels[np.maximum(run, 0)], -1)


def _smooth(small: np.ndarray) -> np.ndarray:
    padded = np.pad(small, ((1, 1), (1, 1), (0, 0)), mode="edge")
    h, w = small.shape[:2]
    total = sum(padded[dy : dy + h, dx : dx + w] for dy in range(3) for dx in range(3))
    return np.asarray(total, dtype=np.float32) / 9.0


def _candidates(small: np.ndarray, level: float) -> np.ndarray:
    """(x, y, side) of the square flat regions, in reduced-picture pixels."""
    edge_x = np.abs(np.diff(small, axis=1)).max(axis=2) > level
    edge_y = np.abs(np.diff(small, axis=0)).max(axis=2) > level
    edge = np.zeros(small.shape[:2], dtype=bool)
    edge[:, 1:] |= edge_x
    edge[:, :-1] |= edge_x
    edge[1:] |= edge_y
    edge[:-1] |= edge_y
    labels = _label(~edge)
    h, w = labels.shape
    ids = labels[~edge]
    ys, xs = np.nonzero(~edge)
    n = h * w
    area = np.bincount(ids, minlength=n).astype(np.float64)
    keep = np.nonzero(area >= MIN_SIDE * MIN_SIDE)[0]
    if keep.size == 0:
        return np.zeros((0, 3))
    sx, sy = np.bincount(ids, xs, n)[keep], np.bincount(ids, ys, n)[keep]
    sxx, syy = np.bincount(ids, xs * xs, n)[keep], np.bincount(ids, ys * ys, n)[keep]
    sxy = np.bincount(ids, xs * ys, n)[keep]
    a = area[keep]
    cx, cy = sx / a, sy / a
    vx, vy, cov = sxx / a - cx**2, syy / a - cy**2, sxy / a - cx * cy
    det = np.maximum(vx * vy - cov**2, 1e-9)
    # A filled square of side s, at any angle: area s², covariance s²/12 · I.
    squareness = a / (12.0 * np.sqrt(det))
    trace = vx + vy
    isotropy = 4.0 * det / np.maximum(trace**2, 1e-9)  # 1 for a square or a disc
    good = (squareness > 0.85) & (squareness < 1.15) & (isotropy > 0.8) & (a < n / 20)
    found = np.stack((cx[good], cy[good], np.sqrt(a[good])), axis=1)
    return found[np.argsort(-found[:, 2])][:MAX_CANDIDATES]


def _best_lattice(cands: np.ndarray) -> tuple[np.ndarray, np.ndarray, int] | None:
    """The best 4×6 window: its cells' (a, b) lattice coordinates, their candidates'
    centres and the window's width along a (6 or 4)."""
    best: tuple[int, np.ndarray, np.ndarray, int] | None = None
    xy, side = cands[:, :2], cands[:, 2]
    for i in range(len(cands)):
        similar = np.nonzero((side > 0.75 * side[i]) & (side < 1.33 * side[i]))[0]
        offsets = xy[similar] - xy[i]
        dist = np.hypot(offsets[:, 0], offsets[:, 1])
        for j in similar[(dist > 1.05 * side[i]) & (dist < 1.8 * side[i])]:
            u = xy[j] - xy[i]
            basis = np.array([[u[0], -u[1]], [u[1], u[0]]])  # columns: u and u turned 90°
            ab = np.linalg.solve(basis, offsets.T).T
            cells = np.rint(ab)
            on = np.all(np.abs(ab - cells) < 0.2, axis=1) & np.all(np.abs(cells) <= 6, axis=1)
            cells, members = cells[on].astype(int), similar[on]
            if len(cells) < MIN_PATCHES or (best is not None and len(cells) <= best[0]):
                continue
            occupied = np.zeros((13, 13), dtype=np.int64)
            occupied[cells[:, 0] + 6, cells[:, 1] + 6] = 1
            table = np.pad(occupied.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
            for width, height in ((COLUMNS, ROWS), (ROWS, COLUMNS)):
                counts = (
                    table[width:, height:]
                    - table[:-width, height:]
                    - table[width:, :-height]
                    + table[:-width, :-height]
                )
                a0, b0 = np.unravel_index(int(np.argmax(counts)), counts.shape)
                count = int(counts[a0, b0])
                if count >= MIN_PATCHES and (best is None or count > best[0]):
                    a0, b0 = a0 - 6, b0 - 6
                    inside = (
                        (cells[:, 0] >= a0)
                        & (cells[:, 0] < a0 + width)
                        & (cells[:, 1] >= b0)
                        & (cells[:, 1] < b0 + height)
                    )
                    local = cells[inside] - (a0, b0)
                    best = (count, local, xy[members[inside]], width)
    if best is None:
        return None
    return best[1], best[2], best[3]


def _layouts(width: int) -> list[np.ndarray]:
    """For each way of laying the card on a ``width``-wide lattice window: the (a, b)
    cell of every patch in card order."""
    rows, cols = np.divmod(np.arange(ROWS * COLUMNS), COLUMNS)
    out = []
    for flip_a in (False, True):
        for flip_b in (False, True):
            if width == COLUMNS:
                a, b = cols.copy(), rows.copy()
                a = COLUMNS - 1 - a if flip_a else a
                b = ROWS - 1 - b if flip_b else b
            else:
                a, b = rows.copy(), cols.copy()
                a = ROWS - 1 - a if flip_a else a
                b = COLUMNS - 1 - b if flip_b else b
            out.append(np.stack((a, b), axis=1))
    return out


def _sample(rgb: np.ndarray, centres: np.ndarray, half: float) -> np.ndarray:
    out = np.zeros((len(centres), 3))
    h, w = rgb.shape[:2]
    r = max(1, int(half))
    for k, (x, y) in enumerate(centres):
        x0, x1 = max(int(x) - r, 0), min(int(x) + r + 1, w)
        y0, y1 = max(int(y) - r, 0), min(int(y) + r + 1, h)
        if x0 >= x1 or y0 >= y1:
            return np.full((len(centres), 3), np.nan)
        out[k] = np.median(rgb[y0:y1, x0:x1].reshape(-1, 3), axis=0)
    return out


def find_card(rgb: np.ndarray) -> CardReading | None:
    """The card's patches in an (H, W, 3) uint8 RGB picture, or ``None`` if there is none."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or min(rgb.shape[:2]) < 32:
        raise ValueError("need an RGB picture of at least 32×32 pixels")
    small, step = _reduce(rgb)
    for smooth, level in ATTEMPTS:
        found = _read(
            rgb, _best_lattice(_candidates(_smooth(small) if smooth else small, level)), step
        )
        if found is not None:
            return found
    return None


def _read(
    rgb: np.ndarray, lattice: tuple[np.ndarray, np.ndarray, int] | None, step: int
) -> CardReading | None:
    """The card's patches on ``lattice`` (reduced by ``step``), if they match the card."""
    if lattice is None:
        return None
    cells, points, width = lattice
    # Affine map from lattice cells to reduced-picture pixels, then to the picture.
    design = np.column_stack((cells, np.ones(len(cells))))
    affine, *_ = np.linalg.lstsq(design, points, rcond=None)
    pitch = float(np.mean(np.hypot(affine[0], affine[1]))) * step
    target = srgb_to_linear(REFERENCE_SRGB / 255.0)
    best: tuple[float, np.ndarray, np.ndarray] | None = None
    for layout in _layouts(width):
        centres = (np.column_stack((layout, np.ones(len(layout)))) @ affine) * step + (step - 1) / 2
        patches = _sample(rgb, centres, pitch * 0.3)
        if not np.all(np.isfinite(patches)):
            continue
        linear = srgb_to_linear(patches / 255.0)
        gains = (linear * target).sum(axis=0) / np.maximum((linear * linear).sum(axis=0), 1e-9)
        residual = float(np.linalg.norm(linear * gains - target) / np.linalg.norm(target))
        if best is None or residual < best[0]:
            best = (residual, patches, centres)
    if best is None or best[0] > MATCH_LIMIT:
        return None
    return CardReading(best[1], best[2], pitch)

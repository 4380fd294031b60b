"""Is an input within what a branch was trained on? (issue 18: out-of-scope inputs).

A softmax branch answers every input with confident-looking probabilities: an
unrelated real photograph scored "malignant 1.0" on the demo's photo and scan
branches. Each image-like branch (photo, scan, CT, voice spectrogram) therefore
carries, in its card, a description of its training inputs: a small descriptor of
each preprocessed tensor (per-channel mean and spread, a 4×4 grid of mean intensity,
edge energy, near-white/near-black fractions and, for colour, chroma statistics), its
mean and a regularised inverse covariance over the training split, and a threshold
(1.5 × the largest training distance). An input whose (RMS-normalised Mahalanobis)
distance exceeds the threshold is **refused with its reason**, not scored. This is a
coarse guard against inputs of another kind, not a validation of the model. EMR
entries are checked by field coverage instead (:func:`emr_coverage`). Pure numpy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from models.preprocess import EmrParams, emr_values

F64 = np.ndarray[Any, np.dtype[np.float64]]

MARGIN = 1.5  # threshold = MARGIN × the largest training distance
SHRINK = 0.05  # covariance regularisation (fraction of the mean variance)
MIN_EMR_COVERAGE = 0.5  # an EMR entry needs at least half of the expected fields
DESCRIPTION = (
    "RMS-normalised Mahalanobis distance of an input descriptor (channel means and "
    "spreads, 4×4 intensity grid, edge energy, near-white/black fractions, chroma) "
    "from the training split; inputs beyond threshold (1.5 × the largest training "
    "distance) are refused as out of scope"
)


def descriptor(tensor: np.ndarray[Any, Any]) -> F64:
    """A short summary of one preprocessed image-like tensor (H, W[, C]) in about [0, 1]."""
    x = np.asarray(tensor, dtype=np.float64)
    if x.ndim == 2:
        x = x[..., None]
    height, width, channels = x.shape
    lum = x.mean(axis=2)
    grid = lum[: height // 4 * 4, : width // 4 * 4]
    blocks = grid.reshape(4, height // 4, 4, width // 4).mean(axis=(1, 3)).ravel()
    chroma: list[float] = []
    if channels == 3:
        r, g, b = x[..., 0], x[..., 1], x[..., 2]
        chroma = [
            float((r - g).mean()),
            float((g - b).mean()),
            float((r - g).std()),
            float((g - b).std()),
            float((b > r + 0.02).mean()),
            float((g > r + 0.02).mean()),
        ]
    edges = [
        float(np.abs(np.diff(lum, axis=0)).mean()),
        float(np.abs(np.diff(lum, axis=1)).mean()),
        float((lum > 0.95).mean()),
        float((lum < 0.05).mean()),
    ]
    return np.concatenate([chroma, x.mean(axis=(0, 1)), x.std(axis=(0, 1)), blocks, edges]).astype(
        np.float64
    )


@dataclass(frozen=True)
class Scope:
    """A branch's training-input description (the card's ``branches.<c>.scope``)."""

    mean: F64
    precision: F64  # regularised inverse covariance
    threshold: float

    def distance(self, tensor: np.ndarray[Any, Any]) -> float:
        delta = descriptor(tensor) - self.mean
        return float(np.sqrt(max(0.0, float(delta @ self.precision @ delta)) / delta.size))

    def to_json(self) -> dict[str, Any]:
        return {
            "method": DESCRIPTION,
            "mean": [round(float(v), 6) for v in self.mean],
            "precision": [[round(float(v), 4) for v in row] for row in self.precision],
            "threshold": round(self.threshold, 4),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Scope:
        mean = np.asarray(data["mean"], dtype=np.float64)
        precision = np.asarray(data["precision"], dtype=np.float64)
        if precision.shape != (mean.size, mean.size):
            raise ValueError("scope: precision must be square, one row per descriptor value")
        return cls(mean, precision, float(data["threshold"]))


def fit_scope(tensors: Sequence[np.ndarray[Any, Any]] | np.ndarray[Any, Any]) -> Scope:
    """Describe a branch's training inputs (at least two)."""
    descriptors = np.stack([descriptor(t) for t in tensors])
    mean = descriptors.mean(axis=0)
    covariance = np.atleast_2d(np.cov(descriptors, rowvar=False))
    ridge = 1e-3 + SHRINK * float(np.trace(covariance)) / mean.size
    precision = np.linalg.inv(covariance + np.eye(mean.size) * ridge)
    scope = Scope(mean, precision, 0.0)
    largest = max(scope.distance(t) for t in tensors)
    return Scope(mean, precision, MARGIN * largest)


@dataclass(frozen=True)
class Coverage:
    """Which of the expected EMR fields an entry has."""

    expected: int
    imputed: tuple[str, ...]  # missing or not a number: the training mean is used

    @property
    def present(self) -> int:
        return self.expected - len(self.imputed)

    @property
    def enough(self) -> bool:
        return self.present >= MIN_EMR_COVERAGE * self.expected


def emr_coverage(fields: Mapping[str, Any], params: EmrParams) -> Coverage:
    values = emr_values(fields, params.features)
    imputed = tuple(name for name, v in zip(params.features, values, strict=True) if v is None)
    return Coverage(len(params.features), imputed)

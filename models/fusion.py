"""Patient-level relevance: fusing the per-item outputs of all of a patient's records.

A patient has any number of records in any subset of the five categories, and the
branches are not equally trustworthy (the demo's EMR branch is trained on real data,
the others on synthetic data; a clinic's model may have a weak voice branch). The
fusion is therefore:

1. **Per branch, average its items.** Each item's probability vector (clipped at 0,
   renormalised) is averaged arithmetically over the branch's items, so ten photos of
   one lesion do not outvote one CT slice.
2. **Weight each branch by its measured validation quality.** The weight is the
   branch's chance-corrected balanced accuracy on the validation split, measured
   with the int8 model that actually runs: ``w = max(0, (BA − 1/N) / (1 − 1/N))``
   for N labels (Youden's J for two labels). A branch no better than chance gets
   weight 0. The weights are computed at export time and stored in the model card.
3. **Combine in log space (a weighted geometric pool).** Over the branches *present*
   for this patient the weights are renormalised to sum to 1, and
   ``relevance = softmax(Σ_b w_b · log max(p_b, ε))``. A missing category simply
   drops out; agreeing branches sharpen the result, a confident branch is tempered
   by a disagreeing one in proportion to their weights. ε (1e-4) stops one branch's
   zero from vetoing a label.
4. **Real data dominates.** A branch trained on synthetic data may score a real
   patient's record with full confidence and a high validation weight (the demo's
   synthetic tasks are easy by construction): with the plain weights, one synthetic
   "benign" photo moved a real-data EMR result from malignant 1.000 to 0.535. When a
   branch trained on real data is present, the synthetic branches together get at
   most ``SYNTHETIC_SHARE`` (20 %) of the weight (``synthetic_capped``). Whether
   synthetic branches count at all is the runtime's decision (only a demonstration
   model, or a site that enables them, uses them).
5. **Edge cases.** No items → no result (``None``). If every present branch has weight
   0, the present branches are weighted equally and the result says so
   (``equal_weights_fallback``) rather than showing nothing.

The output is one value per label in [0, 1], summing to 1: the patient's relevance
per disease category. Pure numpy; the runtime calls :func:`fuse`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

_LOGGER = logging.getLogger(__name__)

METHOD = "weighted-log-pool"
EPSILON = 1e-4
SYNTHETIC_SHARE = 0.2  # the synthetic branches' total weight beside a real-data branch
WEIGHT_SOURCE = (
    "max(0, (balanced_accuracy − 1/N) / (1 − 1/N)) of the int8 model on the validation split"
)

F64 = np.ndarray[Any, np.dtype[np.float64]]


@dataclass(frozen=True)
class FusionResult:
    """The fused relevance and how it was obtained."""

    values: F64  # one per label, sums to 1
    branch_probabilities: dict[str, F64]  # each present branch's item average
    weights: dict[str, float]  # renormalised weights actually used (present branches)
    equal_weights_fallback: bool
    synthetic_capped: bool = False  # synthetic branches' weight cut to SYNTHETIC_SHARE


def branch_weight(balanced_accuracy: float, n_labels: int) -> float:
    """Chance-corrected balanced accuracy, floored at 0 (the branch's fusion weight)."""
    if n_labels < 2:
        raise ValueError("need at least two labels")
    if not math.isfinite(balanced_accuracy):
        return 0.0
    chance = 1.0 / n_labels
    return max(0.0, min(1.0, (balanced_accuracy - chance) / (1.0 - chance)))


def _as_distribution(probabilities: Sequence[float] | F64, n_labels: int) -> F64:
    vector = np.asarray(probabilities, dtype=np.float64).reshape(-1)
    if vector.shape != (n_labels,) or not np.all(np.isfinite(vector)):
        raise ValueError(f"expected {n_labels} finite probabilities, got {vector.tolist()}")
    vector = np.clip(vector, 0.0, None)
    total = float(vector.sum())
    if total <= 0:
        return np.full(n_labels, 1.0 / n_labels)
    return vector / total


def fuse(
    items: Sequence[tuple[str, Sequence[float] | F64]],
    weights: Mapping[str, float],
    n_labels: int,
    epsilon: float = EPSILON,
    synthetic: Collection[str] = (),
) -> FusionResult | None:
    """Fuse ``(category, probabilities)`` items into one relevance per label.

    ``weights`` maps category → branch weight (from the model card); a category
    without a weight counts as weight 0. ``synthetic``: the branches trained on
    synthetic data (capped beside real ones). Returns None when there are no items.
    """
    if not items:
        return None
    grouped: dict[str, list[F64]] = {}
    for category, probabilities in items:
        grouped.setdefault(category, []).append(_as_distribution(probabilities, n_labels))
    branch_p = {c: np.mean(np.stack(vectors), axis=0) for c, vectors in grouped.items()}
    raw = {category: max(0.0, float(weights.get(category, 0.0))) for category in branch_p}
    total = sum(raw.values())
    fallback = total <= 0.0
    if fallback:
        _LOGGER.warning("all present branches %s have weight 0; weighting equally", sorted(raw))
        used = {category: 1.0 / len(raw) for category in raw}
    else:
        used = {category: weight / total for category, weight in raw.items()}
    used, capped = _cap_synthetic(used, set(synthetic))
    score = np.zeros(n_labels)
    for category, p in branch_p.items():
        score += used[category] * np.log(np.maximum(p, epsilon))
    score -= score.max()
    values = np.exp(score)
    values /= values.sum()
    return FusionResult(
        values=values,
        branch_probabilities=branch_p,
        weights=used,
        equal_weights_fallback=fallback,
        synthetic_capped=capped,
    )


def _cap_synthetic(used: dict[str, float], synthetic: set[str]) -> tuple[dict[str, float], bool]:
    """Synthetic branches share at most SYNTHETIC_SHARE when a real branch is present."""
    fake = sum(w for c, w in used.items() if c in synthetic)
    real = sum(w for c, w in used.items() if c not in synthetic)
    if real <= 0.0 or fake <= SYNTHETIC_SHARE:
        return used, False
    scale_fake, scale_real = SYNTHETIC_SHARE / fake, (1.0 - SYNTHETIC_SHARE) / real
    return {c: w * (scale_fake if c in synthetic else scale_real) for c, w in used.items()}, True

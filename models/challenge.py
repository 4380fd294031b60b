"""Champion/challenger (R9): is a retrained model at least as good as the one in use?

Both models are evaluated on the same held-out test split of the new dataset (fixed by
the seed), each with its own preprocessing parameters from its own card, through the
int8 LiteRT files that would actually run. The challenger is promoted only if no
branch's balanced accuracy drops by more than ``TOLERANCE`` and the mean over the
branches does not drop at all; otherwise the champion stays. No TensorFlow needed.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.categories import CATEGORIES
from models.dataset import list_records, read_spec, split_indices
from models.evaluate import classification_metrics
from models.preprocess import preprocess
from models.runtime import RelevanceModel

_LOGGER = logging.getLogger(__name__)

TOLERANCE = 0.01  # one branch may lose up to one point of balanced accuracy


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str
    champion: dict[str, float]
    challenger: dict[str, float]

    def to_json(self) -> dict[str, Any]:
        return {
            "promote": self.promote,
            "reason": self.reason,
            "champion": self.champion,
            "challenger": self.challenger,
        }


def decide(champion: Mapping[str, float], challenger: Mapping[str, float]) -> Decision:
    """The rule, on per-branch balanced accuracies (both dicts over the same branches)."""
    worse = [
        f"{b} {challenger[b]:.3f} < {champion[b]:.3f}"
        for b in champion
        if challenger[b] < champion[b] - TOLERANCE
    ]
    mean_old = float(np.mean(list(champion.values())))
    mean_new = float(np.mean([challenger[b] for b in champion]))
    if worse:
        reason = "challenger is worse on " + ", ".join(worse)
        return Decision(False, reason, dict(champion), dict(challenger))
    if mean_new < mean_old:
        reason = f"mean balanced accuracy {mean_new:.3f} < champion's {mean_old:.3f}"
        return Decision(False, reason, dict(champion), dict(challenger))
    reason = f"mean balanced accuracy {mean_new:.3f} ≥ champion's {mean_old:.3f}"
    return Decision(True, reason, dict(champion), dict(challenger))


def _balanced_accuracy(model: RelevanceModel, data_dir: Path, category: str, seed: int) -> float:
    labels = list(model.labels)
    records = list_records(data_dir, category)
    y = np.array([labels.index(r.label) for r in records], dtype=np.int64)
    test = split_indices(y, seed).test
    params = model.card.branches[category].params
    signature = model.card.branches[category].signature
    probs = np.stack(
        [model.lite.run(signature, preprocess(category, records[i].item(), params)) for i in test]
    )
    metrics = classification_metrics(y[test], probs, labels)
    return float(metrics["balanced_accuracy"])


def evaluate(model: RelevanceModel, data_dir: Path, seed: int) -> dict[str, float]:
    """Balanced accuracy per branch on ``data_dir``'s test split."""
    spec = read_spec(data_dir)
    if tuple(spec.labels) != tuple(model.labels):
        raise ValueError(f"labels differ: data {spec.labels}, model {model.labels}")
    return {c: _balanced_accuracy(model, data_dir, c, seed) for c in CATEGORIES}


def challenge(
    champion: RelevanceModel, challenger: RelevanceModel, data_dir: Path, seed: int
) -> Decision:
    decision = decide(evaluate(champion, data_dir, seed), evaluate(challenger, data_dir, seed))
    _LOGGER.info("champion/challenger: %s", decision.reason)
    return decision

"""Champion/challenger (R9): is a retrained model at least as good as the one in use?

Both models are evaluated on the same **frozen** test records (the champion's test
set, by record key — see :mod:`models.dataset`; never a split recomputed from the
enlarged data, which would put the champion's training records into the comparison),
each with its own preprocessing parameters from its own card, through the int8 LiteRT
files that would actually run. The challenger is promoted only if no
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
from models.dataset import DatasetError, list_records, read_spec, record_key
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


def frozen_of(model: RelevanceModel) -> dict[str, frozenset[str]] | None:
    """The frozen test record keys a model's card lists (None: the card predates them)."""
    evaluation = model.card.data.get("evaluation")
    if not isinstance(evaluation, Mapping) or not isinstance(
        evaluation.get("frozen_test"), Mapping
    ):
        return None
    frozen = evaluation["frozen_test"]
    return {str(c): frozenset(str(k) for k in keys) for c, keys in frozen.items()}


def comparison_indices(
    data_dir: Path, category: str, frozen: Mapping[str, frozenset[str]]
) -> list[int]:
    """Positions of ``category``'s frozen test records among ``data_dir``'s records."""
    test = frozen.get(category, frozenset())
    found = [i for i, r in enumerate(list_records(data_dir, category)) if record_key(r) in test]
    if not found:
        raise DatasetError(f"{data_dir}: none of the frozen {category} test records is here")
    return found


def _balanced_accuracy(
    model: RelevanceModel, data_dir: Path, category: str, frozen: Mapping[str, frozenset[str]]
) -> float:
    labels = list(model.labels)
    records = list_records(data_dir, category)
    y = np.array([labels.index(r.label) for r in records], dtype=np.int64)
    test = comparison_indices(data_dir, category, frozen)
    params = model.card.branches[category].params
    signature = model.card.branches[category].signature
    probs = np.stack(
        [model.lite.run(signature, preprocess(category, records[i].item(), params)) for i in test]
    )
    metrics = classification_metrics(y[test], probs, labels)
    return float(metrics["balanced_accuracy"])


def evaluate(
    model: RelevanceModel, data_dir: Path, frozen: Mapping[str, frozenset[str]]
) -> dict[str, float]:
    """Balanced accuracy per branch on the frozen test records found in ``data_dir``."""
    spec = read_spec(data_dir)
    if tuple(spec.labels) != tuple(model.labels):
        raise ValueError(f"labels differ: data {spec.labels}, model {model.labels}")
    return {c: _balanced_accuracy(model, data_dir, c, frozen) for c in CATEGORIES}


def challenge(
    champion: RelevanceModel,
    challenger: RelevanceModel,
    data_dir: Path,
    frozen: Mapping[str, frozenset[str]],
) -> Decision:
    """Both models on the same frozen test records (``frozen``: the champion's)."""
    decision = decide(evaluate(champion, data_dir, frozen), evaluate(challenger, data_dir, frozen))
    _LOGGER.info("champion/challenger: %s", decision.reason)
    return decision

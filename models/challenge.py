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
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from models.categories import CATEGORIES
from models.dataset import DatasetError, list_records, read_spec, record_key
from models.evaluate import classification_metrics, wilson_interval
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
    intervals: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "promote": self.promote,
            "reason": self.reason,
            "champion": self.champion,
            "challenger": self.challenger,
            "intervals": self.intervals,
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


def _metrics(
    model: RelevanceModel, data_dir: Path, category: str, frozen: Mapping[str, frozenset[str]]
) -> dict[str, Any]:
    labels = list(model.labels)
    records = list_records(data_dir, category)
    y = np.array([labels.index(r.label) for r in records], dtype=np.int64)
    test = comparison_indices(data_dir, category, frozen)
    params = model.card.branches[category].params
    signature = model.card.branches[category].signature
    probs = np.stack(
        [model.lite.run(signature, preprocess(category, records[i].item(), params)) for i in test]
    )
    return classification_metrics(y[test], probs, labels)


def evaluate_metrics(
    model: RelevanceModel, data_dir: Path, frozen: Mapping[str, frozenset[str]]
) -> dict[str, dict[str, Any]]:
    """Per branch metrics on the frozen test records found in ``data_dir``."""
    spec = read_spec(data_dir)
    if tuple(spec.labels) != tuple(model.labels):
        raise ValueError(f"labels differ: data {spec.labels}, model {model.labels}")
    return {c: _metrics(model, data_dir, c, frozen) for c in CATEGORIES}


def evaluate(
    model: RelevanceModel, data_dir: Path, frozen: Mapping[str, frozenset[str]]
) -> dict[str, float]:
    """Balanced accuracy per branch on the frozen test records found in ``data_dir``."""
    metrics = evaluate_metrics(model, data_dir, frozen)
    return {c: float(m["balanced_accuracy"]) for c, m in metrics.items()}


def intervals(
    champion: Mapping[str, Mapping[str, Any]], challenger: Mapping[str, Mapping[str, Any]]
) -> dict[str, dict[str, Any]]:
    """Per branch: test n and the 95 % Wilson intervals of both models' accuracy."""
    out: dict[str, dict[str, Any]] = {}
    for branch, old in champion.items():
        n = int(old["n"])
        new = challenger[branch]
        out[branch] = {
            "n": n,
            "champion_accuracy_95": wilson_interval(round(old["accuracy"] * n), n),
            "challenger_accuracy_95": wilson_interval(round(new["accuracy"] * n), n),
        }
    return out


def challenge(
    champion: RelevanceModel,
    challenger: RelevanceModel,
    data_dir: Path,
    frozen: Mapping[str, frozenset[str]],
) -> Decision:
    """Both models on the same frozen test records (``frozen``: the champion's).

    The decision also reports each branch's test n and 95 % Wilson intervals, and says
    when every difference lies within them (the test set cannot tell the models apart).
    """
    old = evaluate_metrics(champion, data_dir, frozen)
    new = evaluate_metrics(challenger, data_dir, frozen)
    decision = decide(
        {c: float(m["balanced_accuracy"]) for c, m in old.items()},
        {c: float(m["balanced_accuracy"]) for c, m in new.items()},
    )
    spans = intervals(old, new)
    overlap = all(
        s["champion_accuracy_95"][0] <= s["challenger_accuracy_95"][1]
        and s["challenger_accuracy_95"][0] <= s["champion_accuracy_95"][1]
        for s in spans.values()
    )
    note = "; every branch's difference is within the 95 % intervals" if overlap else ""
    decision = replace(decision, reason=decision.reason + note, intervals=spans)
    _LOGGER.info("champion/challenger: %s", decision.reason)
    return decision

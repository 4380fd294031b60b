"""Evaluation: per-class precision/recall, confusion, calibration, float vs int8.

A decision-support number is only useful if its quality is known: the model card
and the report carry, per branch and on the held-out test split, the accuracy and
balanced accuracy, each class's precision and recall, the confusion matrix (rows =
true label, columns = predicted), the expected calibration error, for both the
float32 Keras model and the int8 TFLite model, and how often the two agree. The
validation-split metrics of the int8 model give the fusion weights.

ECE: the predictions are binned by confidence (the top probability) into 10 equal
bins on [0, 1]; ECE = Σ_bins (n_bin / n) · |accuracy_bin − mean confidence_bin|.

Pure numpy, plus matplotlib (imported when drawing) for the training curves.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

_LOGGER = logging.getLogger(__name__)

ECE_BINS = 10

Probs = np.ndarray[Any, np.dtype[Any]]


def expected_calibration_error(y_true: Sequence[int] | Probs, probs: Probs) -> float:
    """ECE over :data:`ECE_BINS` equal-width confidence bins."""
    y = np.asarray(y_true, dtype=np.int64)
    p = np.asarray(probs, dtype=np.float64)
    if y.size == 0:
        return 0.0
    confidence = p.max(axis=1)
    correct = (p.argmax(axis=1) == y).astype(np.float64)
    bins = np.minimum((confidence * ECE_BINS).astype(np.int64), ECE_BINS - 1)
    ece = 0.0
    for b in range(ECE_BINS):
        members = bins == b
        if members.any():
            gap = abs(float(correct[members].mean()) - float(confidence[members].mean()))
            ece += float(members.mean()) * gap
    return ece


def confusion_matrix(y_true: Probs, y_pred: Probs, n_labels: int) -> list[list[int]]:
    """Counts, rows = true label, columns = predicted label."""
    matrix = np.zeros((n_labels, n_labels), dtype=np.int64)
    np.add.at(matrix, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return [[int(v) for v in row] for row in matrix]


def classification_metrics(
    y_true: Sequence[int] | Probs, probs: Probs, labels: Sequence[str]
) -> dict[str, Any]:
    """Accuracy, balanced accuracy, per-class precision/recall, confusion, ECE."""
    y = np.asarray(y_true, dtype=np.int64)
    p = np.asarray(probs, dtype=np.float64)
    predicted = p.argmax(axis=1)
    matrix = np.asarray(confusion_matrix(y, predicted, len(labels)))
    per_class: dict[str, dict[str, float | int]] = {}
    recalls = []
    for i, label in enumerate(labels):
        support = int(matrix[i].sum())
        predicted_n = int(matrix[:, i].sum())
        recall = float(matrix[i, i] / support) if support else float("nan")
        precision = float(matrix[i, i] / predicted_n) if predicted_n else 0.0
        per_class[label] = {"precision": precision, "recall": recall, "support": support}
        if support:
            recalls.append(recall)
    return {
        "n": int(y.size),
        "accuracy": float((predicted == y).mean()) if y.size else 0.0,
        "balanced_accuracy": float(np.mean(recalls)) if recalls else 0.0,
        "per_class": per_class,
        "confusion": [[int(v) for v in row] for row in matrix],
        "ece": expected_calibration_error(y, p),
    }


def agreement(float_probs: Probs, int8_probs: Probs) -> dict[str, float]:
    """How closely the int8 model follows the float32 model on the same inputs."""
    a = np.asarray(float_probs, dtype=np.float64)
    b = np.asarray(int8_probs, dtype=np.float64)
    return {
        "top1_agreement": float((a.argmax(axis=1) == b.argmax(axis=1)).mean()),
        "mean_abs_prob_diff": float(np.abs(a - b).mean()),
        "max_abs_prob_diff": float(np.abs(a - b).max(initial=0.0)),
    }


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def report_markdown(report: Mapping[str, Any]) -> str:
    """A short human-readable summary of :func:`models.export` 's report dict."""
    labels = report["labels"]
    lines = [
        f"# Relevance model {report['version']} — evaluation",
        "",
        f"{report['intended_use']}. Labels: {', '.join(labels)}. "
        "Held-out test split (fixed by the seed); int8 = the shipped .tflite.",
        "",
        "| branch | data | n test | float32 acc | int8 acc | int8 bal. acc | int8 ECE "
        "| float/int8 agree | fusion weight |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for category, branch in report["branches"].items():
        test = branch["test"]
        lines.append(
            f"| {category} | {branch['data']} | {test['int8']['n']} "
            f"| {_pct(test['float32']['accuracy'])} | {_pct(test['int8']['accuracy'])} "
            f"| {_pct(test['int8']['balanced_accuracy'])} | {test['int8']['ece']:.3f} "
            f"| {_pct(test['agreement']['top1_agreement'])} | {branch['fusion_weight']:.3f} |"
        )
    lines += ["", "Per-class precision / recall (int8, test):", ""]
    for category, branch in report["branches"].items():
        per_class = branch["test"]["int8"]["per_class"]
        parts = [
            f"{label} {_pct(v['precision'])} / {_pct(v['recall'])}"
            for label, v in per_class.items()
        ]
        confusion = branch["test"]["int8"]["confusion"]
        lines.append(f"- {category}: {'; '.join(parts)}; confusion (rows true) {confusion}")
    lines.append("")
    return "\n".join(lines)


def write_report(report: Mapping[str, Any], json_path: Path, md_path: Path) -> None:
    """The evaluation report as JSON and as a short Markdown summary."""
    json_path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", "utf-8")
    md_path.write_text(report_markdown(report), "utf-8")


def plot_curves(histories: Mapping[str, Mapping[str, Sequence[float]]], path: Path) -> None:
    """Loss and accuracy per epoch (train and validation) of every branch, one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    names = list(histories)
    figure, axes = plt.subplots(2, len(names), figsize=(2.6 * len(names), 4.6), squeeze=False)
    for column, name in enumerate(names):
        history = histories[name]
        for row, metric in enumerate(("loss", "accuracy")):
            axis = axes[row][column]
            for key, style in ((metric, "-"), (f"val_{metric}", "--")):
                if key in history:
                    values = list(history[key])
                    axis.plot(range(1, len(values) + 1), values, style, label=key, linewidth=1.2)
            axis.set_title(f"{name}: {metric}", fontsize=8)
            axis.tick_params(labelsize=7)
            axis.set_xlabel("epoch", fontsize=7)
            if column == 0:
                axis.legend(fontsize=6)
    figure.tight_layout()
    figure.savefig(path, dpi=72)
    plt.close(figure)


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval (95 % by default) of a proportion ``successes / n``."""
    if n <= 0:
        return (0.0, 1.0)
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return (max(0.0, centre - half), min(1.0, centre + half))

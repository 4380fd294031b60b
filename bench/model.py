"""Relevance model evaluation (issue 18): the shipped model on its own frozen test.

The demo dataset is regenerated exactly as ``models.build_demo`` writes it (synthetic
photos, scans, CT and voice notes from the fixed seed, the Wisconsin EMR rows) and
split as the build split it (seeded, no frozen file yet: the card's frozen test keys
are that split's test records), and then, without TensorFlow:

1. **frozen test overlap**: the shipped card's frozen test records found in the train
   or validation split the model was trained and weighted on (must be 0), frozen keys
   missing from the regenerated data (the data was not reproduced if any are), and
   whether the split's test records are exactly the frozen ones;
2. **EMR branch** (real data) on its frozen test: the shipped int8 model through the
   runtime (accuracy, balanced accuracy, ECE, Brier score, 95 % Wilson interval); the
   float32 accuracy as the card records it (the shipped demo has no float32 model); a
   plain logistic regression on the same standardised train split (the baseline every
   card carries);
3. **fused, patient level**: each EMR test entry becomes a patient with one frozen test
   record of each other category of the same label (the demo's synthetic branches,
   capped at 20 % beside the real one), scored by ``RelevanceModel.relevance``; its
   balanced accuracy, and the EMR branch alone on the same patients for comparison.

Without ``--quick``: bootstrap intervals (``--bootstrap`` resamples) as well.

    python bench/model.py [--quick] [--bootstrap 1000]

Last line: JSON with emr_int8_acc, emr_fp32_acc, emr_int8_ece, emr_int8_brier,
emr_lr_balanced_acc, emr_int8_balanced_acc, frozen_test_overlap, fused_balanced_acc.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from models.build_demo import DEMO_SEED, write_demo_dataset  # noqa: E402
from models.card_sections import emr_baseline  # noqa: E402
from models.categories import CATEGORIES, EMR_ENTRY  # noqa: E402
from models.dataset import Record, category_split, load_category  # noqa: E402
from models.evaluate import classification_metrics, wilson_interval  # noqa: E402
from models.runtime import RelevanceModel  # noqa: E402


def brier(y: np.ndarray, probs: np.ndarray) -> float:
    """Mean squared distance of the probability vectors from the one-hot truth."""
    onehot = np.eye(probs.shape[1])[y]
    return float(((probs - onehot) ** 2).sum(axis=1).mean())


def balanced(y: np.ndarray, predicted: np.ndarray) -> float:
    recalls = [float((predicted[y == k] == k).mean()) for k in np.unique(y)]
    return float(np.mean(recalls))


def bootstrap(y: np.ndarray, predicted: np.ndarray, n: int, seed: int = 0) -> dict[str, Any]:
    """95 % percentile intervals of accuracy and balanced accuracy over ``n`` resamples."""
    rng = np.random.default_rng(seed)
    acc, bal = [], []
    for _ in range(n):
        pick = rng.integers(0, y.size, y.size)
        if np.unique(y[pick]).size < 2:
            continue
        acc.append(float((predicted[pick] == y[pick]).mean()))
        bal.append(balanced(y[pick], predicted[pick]))
    return {
        "accuracy_95": [round(float(np.percentile(acc, q)), 4) for q in (2.5, 97.5)],
        "balanced_95": [round(float(np.percentile(bal, q)), 4) for q in (2.5, 97.5)],
    }


def splits(root: Path, labels: tuple[str, ...]) -> dict[str, Any]:
    """Per category: records, label indices, the split and its test keys."""
    out = {}
    for category in CATEGORIES:
        records, keys, y, split = category_split(root, category, labels, DEMO_SEED)
        out[category] = (records, keys, y, split)
    return out


def overlap(data: dict[str, Any], frozen: dict[str, list[str]]) -> tuple[int, int]:
    """(frozen keys in a train/validation split, frozen keys not in the data at all)."""
    inside, missing = 0, 0
    for category, (_records, keys, _y, split) in data.items():
        trained = {keys[i] for i in np.concatenate([split.train, split.val])}
        want = set(frozen.get(category, []))
        same = {keys[i] for i in split.test} == want
        inside += len(want & trained)
        missing += len(want - set(keys))
        print(
            f"{category:15s} records {len(keys):4d}: train {split.train.size:4d}, "
            f"val {split.val.size:3d}, test {split.test.size:3d}; frozen {len(want):3d}, "
            f"in train/val {len(want & trained)}, missing {len(want - set(keys))}, "
            f"test split = frozen: {same}"
        )
    return inside, missing


def patients(data: dict[str, Any], labels: tuple[str, ...]) -> list[tuple[int, list[Any]]]:
    """One patient per EMR test entry, with a test record of each other category."""
    records, _keys, y, split = data[EMR_ENTRY]
    by_label: dict[str, dict[int, list[Record]]] = {c: {} for c in CATEGORIES}
    for category in CATEGORIES:
        c_records, _k, c_y, c_split = data[category]
        for i in c_split.test:
            by_label[category].setdefault(int(c_y[i]), []).append(c_records[i])
    out = []
    for n, i in enumerate(split.test):
        label = int(y[i])
        items: list[Any] = [(EMR_ENTRY, records[i].item())]
        for category in CATEGORIES:
            pool = by_label[category].get(label, [])
            if category != EMR_ENTRY and pool:
                items.append((category, pool[n % len(pool)].item()))
        out.append((label, items))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shipped model, no bootstrap")
    parser.add_argument("--bootstrap", type=int, default=1000, help="resamples (not --quick)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    started = time.monotonic()
    model = RelevanceModel.load_demo(num_threads=1)
    card: dict[str, Any] = dict(model.card.data)
    labels = tuple(model.labels)
    frozen: dict[str, list[str]] = card["evaluation"]["frozen_test"]
    print(f"model {model.version} ({card['intended_use']}), labels {labels}")
    with tempfile.TemporaryDirectory(prefix="bench-model-") as tmp:
        root = Path(tmp) / "dataset"
        write_demo_dataset(root, DEMO_SEED)
        print(f"demo dataset regenerated in {time.monotonic() - started:.1f} s")
        data = splits(root, labels)
        inside, missing = overlap(data, frozen)
        print(f"frozen test records in a train/validation split: {inside}; missing: {missing}")

        records, _keys, y_all, split = data[EMR_ENTRY]
        y = y_all[split.test]
        probs = np.stack([model.predict(EMR_ENTRY, records[i].item()) for i in split.test])
        metrics = classification_metrics(y, probs, labels)
        correct = int((probs.argmax(axis=1) == y).sum())
        low, high = wilson_interval(correct, int(y.size))
        fp32 = card["branches"][EMR_ENTRY]["metrics"]["test"]["float32"]["accuracy"]
        emr_params = model.card.branches[EMR_ENTRY].params
        lr = emr_baseline(
            load_category(root, EMR_ENTRY, labels, DEMO_SEED, emr_params), labels, DEMO_SEED
        )
        print(
            f"EMR int8 on {y.size} frozen test entries: accuracy {metrics['accuracy']:.4f} "
            f"(95 % Wilson {low:.3f}-{high:.3f}), balanced {metrics['balanced_accuracy']:.4f}, "
            f"ECE {metrics['ece']:.4f}, Brier {brier(y, probs):.4f}"
        )
        print(f"EMR float32 accuracy (the card's; no float32 model is shipped): {fp32:.4f}")
        print(
            f"EMR logistic-regression baseline: balanced {lr['test']['balanced_accuracy']:.4f} "
            f"(accuracy {lr['test']['accuracy']:.4f})"
        )

        cases = patients(data, labels)
        truth = np.asarray([label for label, _ in cases])
        fused, emr_alone = [], []
        for _label, items in cases:
            result = model.relevance(items)
            fused.append(int(np.argmax(result.values)) if result is not None else -1)
            alone = model.relevance(items[:1])
            emr_alone.append(int(np.argmax(alone.values)) if alone is not None else -1)
        fused_arr, alone_arr = np.asarray(fused), np.asarray(emr_alone)
        fused_bal = balanced(truth, fused_arr)
        print(
            f"fused, {len(cases)} patients (EMR + one frozen test record of each other "
            f"category, same label; synthetic branches capped at 20 %): balanced "
            f"{fused_bal:.4f}; EMR alone on the same patients {balanced(truth, alone_arr):.4f}"
        )
        if not args.quick:
            print(f"bootstrap ({args.bootstrap} resamples), EMR int8: ", end="")
            print(json.dumps(bootstrap(y, probs.argmax(axis=1), args.bootstrap)))
            print(f"bootstrap ({args.bootstrap} resamples), fused: ", end="")
            print(json.dumps(bootstrap(truth, fused_arr, args.bootstrap)))
    print(f"done in {time.monotonic() - started:.1f} s")
    result = {
        "emr_int8_acc": round(float(metrics["accuracy"]), 4),
        "emr_fp32_acc": round(float(fp32), 4),
        "emr_int8_ece": round(float(metrics["ece"]), 4),
        "emr_int8_brier": round(brier(y, probs), 4),
        "emr_lr_balanced_acc": round(float(lr["test"]["balanced_accuracy"]), 4),
        "emr_int8_balanced_acc": round(float(metrics["balanced_accuracy"]), 4),
        "frozen_test_overlap": inside,
        "fused_balanced_acc": round(fused_bal, 4),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()

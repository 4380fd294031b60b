"""Retrain with new confirmed cases and decide champion/challenger (R9), in one process.

The server runs ``python -m models.retrain`` as a child process (TensorFlow stays out
of the server's memory): the base dataset (the demo dataset, rebuilt reproducibly, or
a folder) plus the new cases the server exported in the dataset layout are trained
into a candidate version, which is then compared with the current model on the same
held-out split. The last line of output is one JSON object with the decision.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from models.categories import CATEGORIES, EMR_ENTRY
from models.dataset import add_item, list_records

_LOGGER = logging.getLogger(__name__)


def merge_cases(root: Path, cases: Path) -> int:
    """Add every case under ``cases`` (same layout) to the dataset at ``root``."""
    added = 0
    for category in CATEGORIES:
        for record in list_records(cases, category):
            if category == EMR_ENTRY:
                assert record.fields is not None
                add_item(root, category, record.label, dict(record.fields))
            else:
                assert record.path is not None
                add_item(root, category, record.label, record.path.read_bytes(), record.path.suffix)
            added += 1
    return added


def run(
    *,
    base: str,
    cases: Path,
    champion_tflite: Path | None,
    out: Path,
    version: str,
    seed: int,
    epochs: int | None,
    per_class: int | None,
) -> dict[str, object]:
    from models.build_demo import DEMO_SEED, PER_CLASS, write_demo_dataset
    from models.card import DEMO_USE, card_path_for
    from models.challenge import challenge
    from models.runtime import RelevanceModel
    from models.train import train

    with tempfile.TemporaryDirectory(prefix="retrain-") as tmp:
        root = Path(tmp) / "dataset"
        if base == "demo":
            write_demo_dataset(root, DEMO_SEED, per_class or PER_CLASS)
        else:
            shutil.copytree(base, root)
        added = merge_cases(root, cases)
        _LOGGER.info("retraining %s with %d new cases", version, added)
        if base == "demo":  # still a demonstration model: synthetic data for most branches
            result = train(
                root, out, epochs=epochs, seed=seed, version=version, intended_use=DEMO_USE
            )
        else:
            result = train(root, out, epochs=epochs, seed=seed, version=version)
        champion = (
            RelevanceModel.load_demo()
            if champion_tflite is None
            else RelevanceModel.load(champion_tflite)
        )
        candidate = RelevanceModel.load(result.tflite)
        decision = challenge(champion, candidate, root, seed)
    return {
        "version": version,
        "tflite": str(result.tflite),
        "card": str(card_path_for(result.tflite)),
        "cases": added,
        "champion_version": champion.version,
        **decision.to_json(),
    }


def main(argv: Sequence[str] | None = None) -> int:
    from models.train import configure_logging

    parser = argparse.ArgumentParser(description="Retrain with new cases; champion/challenger.")
    parser.add_argument("--base", default="demo", help="'demo' or a dataset folder")
    parser.add_argument("--cases", type=Path, required=True, help="new cases (dataset layout)")
    parser.add_argument("--champion", type=Path, help="the model in use (default: the demo)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--version", required=True)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--per-class", type=int, help="demo base: synthetic records per label")
    args = parser.parse_args(argv)
    configure_logging()
    outcome = run(
        base=args.base,
        cases=args.cases,
        champion_tflite=args.champion,
        out=args.out,
        version=args.version,
        seed=args.seed,
        epochs=args.epochs,
        per_class=args.per_class,
    )
    print(json.dumps(outcome), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Retrain with new confirmed cases and decide champion/challenger (R9), in one process.

The server runs ``python -m models.retrain`` as a child process (TensorFlow stays out
of the server's memory): the base dataset (the demo dataset, rebuilt reproducibly, or
a folder) plus the new cases the server exported in the dataset layout are trained
into a candidate version, which is then compared with the current model on the
champion's **frozen test records** (its card's ``evaluation.frozen_test``; for an old
card without them, the base dataset's seeded test split, computed *before* the new
cases are merged). The frozen records stay the test split of the candidate too, and
the new cases go to its train/validation splits only, so no record the champion
trained on is ever in the comparison and the frozen set carries over to the next
retrain. The last line of output is one JSON object with the decision.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from clinicam.i18n import environment_locale, translate
from models.categories import CATEGORIES, EMR_ENTRY
from models.consent import ConsentError, ConsentManifest, check_cases, provenance_note
from models.dataset import (
    Provenance,
    add_item,
    frozen_from_seed,
    list_records,
    read_frozen,
    read_spec,
    write_frozen,
    write_spec,
)

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


def prepare_dataset(
    root: Path, cases: Path, seed: int, frozen: Mapping[str, frozenset[str]] | None
) -> tuple[dict[str, frozenset[str]], int]:
    """Freeze the test set of the base dataset at ``root``, then merge ``cases``.

    ``frozen``: the champion's frozen test keys (None: the base's own frozen file, else
    its seeded test split, computed before any case is merged). Returns the frozen
    keys and the number of cases added.
    """
    if frozen is None:
        frozen = read_frozen(root)
    if frozen is None:
        seeded = frozen_from_seed(root, read_spec(root).labels, seed)
        frozen = {c: frozenset(keys) for c, keys in seeded.items()}
    write_frozen(root, frozen)
    return dict(frozen), merge_cases(root, cases)


def note_clinic_cases(root: Path, cases: Path, manifest: ConsentManifest | None) -> None:
    """Say in ``dataset.json`` (→ the card) which categories now hold clinic cases."""
    spec = read_spec(root)
    counts = {c: len(list_records(cases, c)) for c in CATEGORIES}
    if not any(counts.values()):
        return
    note = provenance_note(manifest, counts) or "clinic cases (consent verified elsewhere)"
    provenance = dict(spec.provenance)
    for category, count in counts.items():
        if count:
            old = provenance.get(category, Provenance("dataset folder", synthetic=False))
            source = f"{old.source} + {count} clinic cases"
            provenance[category] = Provenance(source, old.synthetic)
    write_spec(root, replace(spec, provenance=provenance, clinic_cases=note))


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
    consent_elsewhere: bool = False,
) -> dict[str, object]:
    from models.build_demo import DEMO_SEED, PER_CLASS, write_demo_dataset
    from models.card import DEMO_USE, card_path_for
    from models.challenge import challenge, frozen_of
    from models.runtime import RelevanceModel
    from models.train import train

    manifest = None if consent_elsewhere else check_cases(cases)
    champion = (
        RelevanceModel.load_demo()
        if champion_tflite is None
        else RelevanceModel.load(champion_tflite)
    )
    with tempfile.TemporaryDirectory(prefix="retrain-") as tmp:
        root = Path(tmp) / "dataset"
        if base == "demo":
            write_demo_dataset(root, DEMO_SEED, per_class or PER_CLASS)
        else:
            shutil.copytree(base, root)
        frozen, added = prepare_dataset(root, cases, seed, frozen_of(champion))
        note_clinic_cases(root, cases, manifest)
        _LOGGER.info("retraining %s with %d new cases", version, added)
        if base == "demo":  # still a demonstration model: synthetic data for most branches
            result = train(
                root, out, epochs=epochs, seed=seed, version=version, intended_use=DEMO_USE
            )
        else:
            result = train(root, out, epochs=epochs, seed=seed, version=version)
        candidate = RelevanceModel.load(result.tflite)
        decision = challenge(champion, candidate, root, frozen)
    return {
        "version": version,
        "tflite": str(result.tflite),
        "card": str(card_path_for(result.tflite)),
        "cases": added,
        "champion_version": champion.version,
        "frozen_test": {c: len(keys) for c, keys in frozen.items()},
        "consent": "manifest" if manifest is not None else "verified elsewhere (operator)",
        **decision.to_json(),
    }


def main(argv: Sequence[str] | None = None) -> int:
    from models.train import configure_environment, configure_logging

    parser = argparse.ArgumentParser(description="Retrain with new cases; champion/challenger.")
    parser.add_argument("--base", default="demo", help="'demo' or a dataset folder")
    parser.add_argument("--cases", type=Path, required=True, help="new cases (dataset layout)")
    parser.add_argument("--champion", type=Path, help="the model in use (default: the demo)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--version", required=True)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--per-class", type=int, help="demo base: synthetic records per label")
    parser.add_argument(
        "--consent-verified-elsewhere",
        action="store_true",
        help="train on cases without a consent manifest (you hold the consent evidence)",
    )
    args = parser.parse_args(argv)
    configure_environment()
    configure_logging()
    if not args.consent_verified_elsewhere:
        try:
            check_cases(args.cases)
        except ConsentError as exc:
            parser.error(translate(exc.args[0], environment_locale()))
    outcome = run(
        base=args.base,
        cases=args.cases,
        champion_tflite=args.champion,
        out=args.out,
        version=args.version,
        seed=args.seed,
        epochs=args.epochs,
        per_class=args.per_class,
        consent_elsewhere=args.consent_verified_elsewhere,
    )
    print(json.dumps(outcome), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

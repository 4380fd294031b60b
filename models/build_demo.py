"""Build the shipped demonstration model from scratch: ``python -m models.build_demo``.

The repository ships one small demo model version (``models/demo/relevance-demo-1.*``)
so that the appliance and the server have something real to run. It is rebuilt,
reproducibly, by this script:

1. generate the synthetic photo, scan, CT and voice records (:mod:`models.synthetic`,
   a fixed seed) into a temporary dataset folder;
2. write the EMR entries from the Wisconsin diagnostic breast cancer data (UCI, as
   shipped inside scikit-learn — no download) as ``emr_entry/entries.jsonl``, one
   entry per row in the data set's order, its 30 measurements as the fields;
3. train and export with :func:`models.train.train` (fixed seed, one thread) and copy
   the ``.tflite``, its card, the report and the curves into ``models/demo/`` (the
   float32 Keras models are not shipped: ~0.7 MB, and only re-export needs them).

The labels are the Wisconsin classes, ``benign`` and ``malignant`` (breast lesion),
for every branch. It is a demonstration model — not for clinical use, and the card
says which branches learned from synthetic data. ``tests/models`` rebuilds it and
checks the metrics against the shipped card.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from models.card import DEMO_USE
from models.categories import CATEGORIES, EMR_ENTRY
from models.dataset import EMR_FILE, DatasetSpec, Provenance, write_spec
from models.export import artefact_paths
from models.runtime import DEMO_DIR, DEMO_VERSION
from models.synthetic import DEMO_LABELS, PROVENANCE, generate_dataset
from models.train import TrainResult, configure_environment, configure_logging, train

_LOGGER = logging.getLogger(__name__)

DEMO_SEED = 7
PER_CLASS = 150  # synthetic records per label and category
WISCONSIN = "Wisconsin diagnostic breast cancer (UCI, via scikit-learn)"
DISEASE_AREA = "breast lesion"


def wisconsin_entries() -> list[dict[str, object]]:
    """The 569 Wisconsin rows as ``{"fields": {name: value}, "label": ...}``, in order."""
    from sklearn.datasets import load_breast_cancer  # type: ignore[import-untyped]

    bunch = load_breast_cancer()
    names = [str(name) for name in bunch.feature_names]
    classes = [str(name) for name in bunch.target_names]  # ["malignant", "benign"]
    return [
        {"fields": dict(zip(names, map(float, row), strict=True)), "label": classes[int(t)]}
        for row, t in zip(bunch.data, bunch.target, strict=True)
    ]


def wisconsin_features() -> tuple[str, ...]:
    """The 30 Wisconsin feature names, in scikit-learn's order (the EMR input order)."""
    from sklearn.datasets import load_breast_cancer

    return tuple(str(name) for name in load_breast_cancer().feature_names)


def write_demo_dataset(root: Path, seed: int = DEMO_SEED, per_class: int = PER_CLASS) -> None:
    """The demo's dataset folder: synthetic files, Wisconsin entries, dataset.json."""
    generate_dataset(root, per_class, seed)
    emr = root / EMR_ENTRY / EMR_FILE
    emr.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(entry) for entry in wisconsin_entries()]
    emr.write_text("\n".join(lines) + "\n", "utf-8")
    provenance = {
        category: Provenance(WISCONSIN, False)
        if category == EMR_ENTRY
        else Provenance(PROVENANCE, True)
        for category in CATEGORIES
    }
    spec = DatasetSpec(DEMO_LABELS, DISEASE_AREA, provenance, wisconsin_features())
    write_spec(root, spec)


def build(
    out_dir: Path = DEMO_DIR,
    *,
    seed: int = DEMO_SEED,
    per_class: int = PER_CLASS,
    epochs: int | None = None,
    keep_data: Path | None = None,
    keep_float: bool = False,
) -> TrainResult:
    """Generate the data, train and export ``relevance-demo-1`` into ``out_dir``.

    Only the shipped artefacts (``.tflite``, card, report, curves) are copied to
    ``out_dir``; with ``keep_float`` the whole training output goes there (the float32
    Keras models in ``keras/`` and ``training.json``, for ``models.export``).
    """
    with tempfile.TemporaryDirectory(prefix="relevance-demo-") as tmp:
        root = keep_data or Path(tmp) / "dataset"
        write_demo_dataset(root, seed, per_class)
        trained = out_dir if keep_float else Path(tmp) / "trained"
        result = train(
            root, trained, epochs=epochs, seed=seed, version=DEMO_VERSION, intended_use=DEMO_USE
        )
        if keep_float:
            return result
        out_dir.mkdir(parents=True, exist_ok=True)
        shipped = [result.tflite, *artefact_paths(result.tflite).values()]
        for path in shipped:
            shutil.copyfile(path, out_dir / path.name)
        _LOGGER.info("demo model written to %s: %s", out_dir, [p.name for p in shipped])
        return TrainResult(tflite=out_dir / result.tflite.name, card=result.card)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Rebuild the demo relevance model.")
    parser.add_argument("--out", type=Path, default=DEMO_DIR)
    parser.add_argument("--seed", type=int, default=DEMO_SEED)
    parser.add_argument("--per-class", type=int, default=PER_CLASS)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--keep-data", type=Path, default=None, help="write the dataset here")
    parser.add_argument(
        "--keep-float", action="store_true", help="also keep the float32 Keras models in --out"
    )
    args = parser.parse_args(argv)
    configure_environment()
    configure_logging()
    result = build(
        args.out,
        seed=args.seed,
        per_class=args.per_class,
        epochs=args.epochs,
        keep_data=args.keep_data,
        keep_float=args.keep_float,
    )
    print(result.tflite)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

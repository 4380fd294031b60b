"""Training a relevance model version from a dataset folder, then exporting it.

``clinicam model train --data DIR --out DIR [--epochs N] [--seed S]`` calls
:func:`main`. The dataset layout is described in :mod:`models.dataset` and
models/README.md. Training:

1. reads the labels and provenance, preprocesses every record with
   :mod:`models.preprocess` (the runtime's functions) and splits each category
   train/val/test, stratified and fixed by the seed (EMR mean/std: train split only);
2. trains the five branches (:mod:`models.branches`) as separate Keras models, one
   log line per epoch per branch, seeded and deterministic (one thread, TensorFlow's
   op determinism), so retraining the same data gives the same model within
   floating-point noise;
3. saves the float32 Keras models (``OUT/keras/<category>.keras``) and
   ``OUT/training.json`` (labels, parameters, histories, provenance) so that
   ``models.export`` can re-export them;
4. exports (:func:`models.export.export_model`): ``OUT/<version>.tflite`` (full int8,
   one signature per category), ``<version>.card.json``, the evaluation report
   (``.report.json``, ``.report.md``) and the training curves (``.curves.png``).

The learning loop (R9) is the same call on the grown dataset with a new version
name; the new card + ``.tflite`` replace the old ones where the runtime loads them.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from clinicam.i18n import environment_locale, translate
from models.card import DEMO_USE, ModelCard
from models.categories import CATEGORIES, EMR_ENTRY
from models.consent import ConsentError, check_training_data
from models.dataset import (
    CategoryData,
    DatasetSpec,
    Provenance,
    check_complete,
    emr_features,
    load_category,
    read_spec,
)
from models.preprocess import Params, default_params, params_from_json, params_to_json

_LOGGER = logging.getLogger(__name__)

TRAINING_FILE = "training.json"
KERAS_DIR = "keras"
DEFAULT_SEED = 7
CLINICAL_USE = "decision support only — not a diagnosis; validate locally before clinical use"


@dataclass
class TrainingMeta:
    """What training knows that the export and the card need (``training.json``)."""

    version: str
    labels: list[str]
    disease_area: str
    intended_use: str
    seed: int
    epochs: dict[str, int]
    preprocessing: dict[str, dict[str, Any]]
    provenance: dict[str, dict[str, Any]]
    counts: dict[str, dict[str, int]]
    splits: dict[str, dict[str, int]]
    histories: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    frozen_test: dict[str, list[str]] = field(default_factory=dict)  # test record keys
    clinic_cases: str = ""  # the consented clinic cases in the data, or ""
    created: str = ""
    framework: str = ""

    def params(self, category: str) -> Params:
        return params_from_json(category, self.preprocessing[category])

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2, ensure_ascii=False) + "\n", "utf-8")

    @classmethod
    def load(cls, path: Path) -> TrainingMeta:
        return cls(**json.loads(path.read_text(encoding="utf-8")))


@dataclass(frozen=True)
class TrainResult:
    """Where the exported model went and its card."""

    tflite: Path
    card: ModelCard


def configure_tensorflow(threads: int, seed: int) -> None:
    """One thread pool size, op determinism and all seeds, before any TF work."""
    import keras  # type: ignore[import-untyped]
    import tensorflow as tf  # type: ignore[import-untyped]

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:
        _LOGGER.warning("TensorFlow already initialised; thread counts unchanged")
    tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(seed)


def _epoch_logger(category: str, epochs: int) -> Any:
    import keras

    class EpochLog(keras.callbacks.Callback):  # type: ignore[misc]
        """One progress line per epoch."""

        def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            logs = logs or {}
            _LOGGER.info(
                "%-14s epoch %3d/%d  loss %.4f  acc %.3f  val_loss %.4f  val_acc %.3f",
                category,
                epoch + 1,
                epochs,
                logs.get("loss", float("nan")),
                logs.get("accuracy", float("nan")),
                logs.get("val_loss", float("nan")),
                logs.get("val_accuracy", float("nan")),
            )

    return EpochLog()


def train_branch(
    data: CategoryData, n_labels: int, epochs: int, seed: int
) -> tuple[Any, dict[str, list[float]]]:
    """Train one branch; returns the Keras model and its per-epoch history."""
    import keras

    from models.branches import BATCH_SIZE, build_branch, compile_branch

    keras.utils.set_random_seed(seed)
    model = build_branch(data.category, tuple(data.x.shape[1:]), n_labels)
    compile_branch(model)
    x_train, y_train = data.part("train")
    x_val, y_val = data.part("val")
    history = model.fit(
        x_train,
        y_train,
        validation_data=(x_val, y_val),
        epochs=epochs,
        batch_size=BATCH_SIZE,
        shuffle=True,
        verbose=0,
        callbacks=[_epoch_logger(data.category, epochs)],
    )
    curves = {key: [float(v) for v in values] for key, values in history.history.items()}
    return model, curves


def save_float_model(model: Any, data: CategoryData, n_labels: int, folder: Path) -> Path:
    """Save the trained weights in a fresh, uncompiled copy (no optimizer state: ⅓ size)."""
    from models.branches import build_branch

    copy = build_branch(data.category, tuple(data.x.shape[1:]), n_labels)
    copy.set_weights(model.get_weights())
    path = folder / f"{data.category}.keras"
    copy.save(path)
    return path


def load_data(
    root: Path, spec: DatasetSpec, seed: int, meta: TrainingMeta | None = None
) -> dict[str, CategoryData]:
    """Every category preprocessed and split (parameters from ``meta`` when re-exporting)."""
    check_complete(root)
    data: dict[str, CategoryData] = {}
    for category in CATEGORIES:
        if meta is not None:
            params = meta.params(category)
            data[category] = load_category(root, category, spec.labels, seed, params)
        elif category == EMR_ENTRY:
            features = emr_features(root, spec)
            data[category] = load_category(root, category, spec.labels, seed, features=features)
        else:
            params = default_params(category)
            data[category] = load_category(root, category, spec.labels, seed, params)
    return data


def _provenance(spec: DatasetSpec, category: str, root: Path) -> Provenance:
    default = Provenance(f"dataset folder {root.name!r} (no provenance given)", synthetic=False)
    return spec.provenance.get(category, default)


def train(
    data_dir: Path,
    out_dir: Path,
    *,
    epochs: int | None = None,
    seed: int = DEFAULT_SEED,
    version: str | None = None,
    intended_use: str = CLINICAL_USE,
    threads: int = 1,
) -> TrainResult:
    """Train all branches on ``data_dir`` and export the version into ``out_dir``."""
    import keras
    import tensorflow as tf

    from models.branches import DEFAULT_EPOCHS
    from models.export import export_model

    configure_tensorflow(threads, seed)
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    version = version or "relevance-" + datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    spec = read_spec(data_dir)
    _LOGGER.info("training %s on %s, labels %s, seed %s", version, data_dir, spec.labels, seed)
    data = load_data(data_dir, spec, seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / KERAS_DIR).mkdir(exist_ok=True)
    meta = TrainingMeta(
        version=version,
        labels=list(spec.labels),
        disease_area=spec.disease_area,
        intended_use=intended_use,
        seed=seed,
        epochs={c: epochs or DEFAULT_EPOCHS[c] for c in CATEGORIES},
        preprocessing={c: params_to_json(data[c].params) for c in CATEGORIES},
        provenance={c: asdict(_provenance(spec, c, data_dir)) for c in CATEGORIES},
        counts={
            c: {label: int((data[c].y == i).sum()) for i, label in enumerate(spec.labels)}
            for c in CATEGORIES
        },
        splits={
            c: {
                "train": int(data[c].split.train.size),
                "val": int(data[c].split.val.size),
                "test": int(data[c].split.test.size),
            }
            for c in CATEGORIES
        },
        frozen_test={c: data[c].test_keys() for c in CATEGORIES},
        clinic_cases=spec.clinic_cases,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        framework=f"TensorFlow {tf.__version__}, Keras {keras.__version__}",
    )
    models: dict[str, Any] = {}
    for category in CATEGORIES:
        model, curves = train_branch(data[category], len(spec.labels), meta.epochs[category], seed)
        models[category] = model
        meta.histories[category] = curves
        save_float_model(model, data[category], len(spec.labels), out_dir / KERAS_DIR)
    meta.save(out_dir / TRAINING_FILE)
    tflite = out_dir / f"{version}.tflite"
    card = export_model(models, data, meta, tflite)
    return TrainResult(tflite=tflite, card=card)


def configure_environment() -> None:
    """TensorFlow's environment for the command line, set before it is imported: quiet
    C++ logs, and the same numbers from the same seed on every x86 machine."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    # oneDNN's AVX-512 kernels round differently from its AVX2 ones, and a model trained
    # on one x86 machine then differs from the same training on another (the demo's
    # record_scan branch: 0.921 vs 0.987 test accuracy). Capped at AVX2, which every
    # x86 machine that runs TensorFlow's wheels has, the same seed gives the same model.
    os.environ.setdefault("ONEDNN_MAX_CPU_ISA", "AVX2")


def configure_logging() -> None:
    """INFO lines to stderr for the command line."""
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """``clinicam model train --data DIR --out DIR [--epochs N] [--seed S] ...``."""
    parser = argparse.ArgumentParser(
        prog="clinicam model train", description="Train and export a relevance model version."
    )
    parser.add_argument("--data", type=Path, required=True, help="dataset folder (see README)")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--epochs", type=int, default=None, help="epochs for every branch")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--version", default=None, help="version name (default: timestamp)")
    parser.add_argument("--demo", action="store_true", help=f"mark the card {DEMO_USE!r}")
    parser.add_argument("--threads", type=int, default=1, help="TensorFlow threads (1: exact)")
    parser.add_argument(
        "--no-patient-data",
        action="store_true",
        help="state that DIR holds no clinic patient data (no consent manifest needed)",
    )
    args = parser.parse_args(argv)
    if args.epochs is not None and args.epochs < 1:
        parser.error("--epochs must be ≥ 1")
    try:
        basis = check_training_data(args.data, no_patient_data=args.no_patient_data)
    except ConsentError as exc:
        parser.error(translate(exc.args[0], environment_locale()))
    configure_environment()
    configure_logging()
    _LOGGER.info("training data accepted: %s", basis)
    result = train(
        args.data,
        args.out,
        epochs=args.epochs,
        seed=args.seed,
        version=args.version,
        intended_use=DEMO_USE if args.demo else CLINICAL_USE,
        threads=args.threads,
    )
    print(result.tflite)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Export: the five float32 branches → one full-int8 ``.tflite`` + model card + report.

One file per model version, one signature per data category: the Keras branches are
tracked in one ``keras.export.ExportArchive`` with an endpoint per category (input
``image``/``spectrogram``/``features``, output ``probabilities``, batch 1), written as
a SavedModel whose serving signatures the TFLite converter turns into signatures of
one flatbuffer. (Converting from the SavedModel, not from concrete functions, keeps
the signature and input names; the runtime calls every branch by name.)

Quantization is full-integer post-training quantization: weights and activations
int8, **int8 inputs and outputs** (no float ops left, the cheapest form on the Pi's
CPU). Calibration uses up to 200 training-split inputs per branch, given as
``(signature, {input_name: tensor})``. Each signature's input/output scale and
zero-point are read back from the file and written into the card; the runtime
quantizes with the interpreter's (identical) values.

Then both the float32 Keras models and the int8 file are evaluated on the validation
and test splits (:mod:`models.evaluate`); the int8 validation balanced accuracy
gives each branch's fusion weight (:mod:`models.fusion`). The card, the report
(JSON + Markdown) and the training curves are written beside the ``.tflite``.

``python -m models.export --model DIR --data DIR --out FILE.tflite`` re-exports a
trained model folder (``models.train``'s output) — e.g. after a converter upgrade.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from models.card import SCHEMA, ModelCard, card_path_for, sha256_file, write_card
from models.card_sections import INTENDED_USE_ZH, emr_baseline, sections
from models.categories import CATEGORIES, EMR_ENTRY, INPUT_NAMES, OUTPUT_NAME
from models.dataset import CategoryData, read_spec
from models.evaluate import (
    agreement,
    classification_metrics,
    plot_curves,
    wilson_interval,
    write_report,
)
from models.fusion import EPSILON, METHOD, WEIGHT_SOURCE, branch_weight
from models.preprocess import params_to_json
from models.runtime import LiteModel
from models.scope import fit_scope

_LOGGER = logging.getLogger(__name__)

CALIBRATION_SAMPLES = 200
QUANTIZATION = (
    "full-integer post-training quantization (TFLite converter, Optimize.DEFAULT, "
    "TFLITE_BUILTINS_INT8): int8 weights and activations, int8 inputs and outputs"
)
FUSION_TEXT = (
    "Per branch, the probability vectors of its items are averaged; the branches "
    "present are combined as softmax(Σ w_b · log max(p_b, ε)) with the weights "
    "renormalised over the present branches (a missing category drops out); no items "
    "→ no result; all present weights 0 → equal weights, flagged."
)
FROZEN_TEXT = (
    "The test split is frozen by record key (SHA-256 of the record's bytes or canonical "
    "EMR fields) and listed here; it never enters training or validation. A retrain "
    "keeps the champion's frozen test: champion and challenger are compared on these "
    "records only, and new cases go to train/validation only. Fusion weights and model "
    "selection use the validation split."
)

PREPROCESSING_TEXT = {
    "clinical_photo": "image bytes (JPEG/PNG/WebP/TIFF) → EXIF orientation → RGB (alpha over "
    "white) → centre square crop → bilinear resize to size² → /255",
    "record_scan": "image bytes (JPEG/PNG/WebP/TIFF; PDF refused) → greyscale → letter-box on "
    "white (aspect kept) → bilinear resize to size² → /255",
    "ct_image": "DICOM bytes → pixels × RescaleSlope + RescaleIntercept = HU (middle frame if "
    "multi-frame) → window [centre − width/2, centre + width/2] → [0, 1] → letter-box (air "
    "= 0) → bilinear resize to size²",
    "voice_note": "WAV/Ogg/WebM/FLAC/MP3/M4A bytes → PyAV decode, mono float at sample_rate → "
    "skip leading samples below silence_rel × peak → clip of n_fft + hop·(n_frames − 1) "
    "samples, zero-padded, peak-normalised → periodic Hann, |rfft|² → HTK mel filterbank "
    "(n_mels triangles, fmin–fmax) → (10·log10(max(mel, power_floor)) + db_offset) / "
    "db_scale → (n_mels, n_frames, 1)",
    "emr_entry": "JSON field dict → the listed features, matched ignoring case and "
    "punctuation; a missing or non-numeric field is replaced by the training mean; "
    "(value − mean) / std with the training split's mean and std",
}


def artefact_paths(tflite: Path) -> dict[str, Path]:
    """Where the card, reports and curves of ``tflite`` go."""
    stem = tflite.with_suffix("")
    return {
        "card": card_path_for(tflite),
        "report_json": Path(f"{stem}.report.json"),
        "report_md": Path(f"{stem}.report.md"),
        "curves": Path(f"{stem}.curves.png"),
    }


def _endpoint(model: Any) -> Any:
    def endpoint(x: Any) -> dict[str, Any]:
        return {OUTPUT_NAME: model(x, training=False)}

    return endpoint


def _saved_model(models: Mapping[str, Any], directory: Path) -> None:
    import keras  # type: ignore[import-untyped]
    import tensorflow as tf  # type: ignore[import-untyped]

    archive = keras.export.ExportArchive()
    for category in CATEGORIES:
        model = models[category]
        archive.track(model)

        endpoint = _endpoint(model)
        shape = (1, *model.input_shape[1:])
        spec = tf.TensorSpec(shape, tf.float32, name=INPUT_NAMES[category])
        archive.add_endpoint(category, endpoint, input_signature=[spec])
    archive.write_out(str(directory), verbose=False)


def convert_int8(models: Mapping[str, Any], data: Mapping[str, CategoryData], seed: int) -> bytes:
    """The full-int8 multi-signature flatbuffer of the branches."""
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    samples: dict[str, np.ndarray[Any, Any]] = {}
    for category in CATEGORIES:
        x_train, _ = data[category].part("train")
        order = rng.permutation(len(x_train))[:CALIBRATION_SAMPLES]
        samples[category] = x_train[np.sort(order)]

    def representative() -> Iterator[tuple[str, dict[str, np.ndarray[Any, Any]]]]:
        for category in CATEGORIES:
            for x in samples[category]:
                yield category, {INPUT_NAMES[category]: x[None].astype(np.float32)}

    with tempfile.TemporaryDirectory(prefix="relevance-savedmodel-") as tmp:
        _saved_model(models, Path(tmp))
        converter = tf.lite.TFLiteConverter.from_saved_model(tmp, signature_keys=list(CATEGORIES))
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
        content: bytes = converter.convert()
    _LOGGER.info("int8 TFLite: %s bytes, signatures %s", len(content), list(CATEGORIES))
    return content


def _lite_probs(lite: LiteModel, category: str, x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    if len(x) == 0:
        return np.zeros((0, lite.outputs[category].shape[-1]))
    return np.stack([lite.run(category, row) for row in x])


def evaluate_branches(
    models: Mapping[str, Any], lite: LiteModel, data: Mapping[str, CategoryData], labels: list[str]
) -> dict[str, dict[str, Any]]:
    """Float32 and int8 metrics on val and test, float/int8 agreement, per branch."""
    results: dict[str, dict[str, Any]] = {}
    for category in CATEGORIES:
        branch: dict[str, Any] = {}
        for part in ("val", "test"):
            x, y = data[category].part(part)
            p_float = np.asarray(models[category](x, training=False), dtype=np.float64)
            p_int8 = _lite_probs(lite, category, x)
            branch[part] = {
                "float32": classification_metrics(y, p_float, labels),
                "int8": classification_metrics(y, p_int8, labels),
                "agreement": agreement(p_float, p_int8),
            }
        results[category] = branch
        test = branch["test"]
        _LOGGER.info(
            "%-14s test acc float32 %.3f int8 %.3f  agreement %.3f  int8 ECE %.3f",
            category,
            test["float32"]["accuracy"],
            test["int8"]["accuracy"],
            test["agreement"]["top1_agreement"],
            test["int8"]["ece"],
        )
    return results


def export_model(
    models: Mapping[str, Any], data: Mapping[str, CategoryData], meta: Any, tflite: Path
) -> ModelCard:
    """Convert, evaluate and write ``tflite`` + card + report + curves; returns the card.

    ``meta`` is :class:`models.train.TrainingMeta`.
    """
    from models.branches import architecture

    tflite = Path(tflite)
    tflite.parent.mkdir(parents=True, exist_ok=True)
    content = convert_int8(models, data, meta.seed)
    tflite.write_bytes(content)
    lite = LiteModel(content, num_threads=1)
    labels = list(meta.labels)
    metrics = evaluate_branches(models, lite, data, labels)
    weights = {
        c: branch_weight(metrics[c]["val"]["int8"]["balanced_accuracy"], len(labels))
        for c in CATEGORIES
    }
    paths = artefact_paths(tflite)
    branches: dict[str, Any] = {}
    for category in CATEGORIES:
        provenance = meta.provenance[category]
        branches[category] = {
            "signature": category,
            "input_name": INPUT_NAMES[category],
            "input_shape": [int(v) for v in data[category].x.shape[1:]],
            "preprocessing": params_to_json(data[category].params),
            "preprocessing_summary": PREPROCESSING_TEXT[category],
            "architecture": architecture(category),
            "parameters": int(models[category].count_params()),
            "training_data": {
                "source": provenance["source"],
                "synthetic": provenance["synthetic"],
                "records": meta.counts[category],
                "split": meta.splits[category],
            },
            "epochs": meta.epochs[category],
            "metrics": metrics[category],
        }
        if category != EMR_ENTRY:  # EMR entries are checked by field coverage instead
            branches[category]["scope"] = fit_scope(data[category].part("train")[0]).to_json()
    synthetic = [c for c in CATEGORIES if meta.provenance[c]["synthetic"]]
    notes = [
        "Decision support: a relevance per disease category, not a diagnosis.",
        "Metrics are on held-out splits of the training data's own distribution.",
    ]
    notes.append(
        "Out-of-scope inputs are refused with a reason (images by a descriptor distance, "
        "EMR entries with fewer than half of the fields); imputed EMR fields are listed."
    )
    if meta.clinic_cases:
        notes.append(f"Clinic cases in the training data: {meta.clinic_cases}.")
    if synthetic:
        notes.append(
            f"The branches {synthetic} were trained and evaluated on SYNTHETIC data "
            "(generated by models/synthetic.py, not clinical data); their metrics say "
            "nothing about real patients."
        )
    card_data: dict[str, Any] = {
        "schema": SCHEMA,
        "version": meta.version,
        "created": meta.created,
        "intended_use": meta.intended_use,
        **(
            {"intended_use_zh": INTENDED_USE_ZH[meta.intended_use]}
            if meta.intended_use in INTENDED_USE_ZH
            else {}
        ),
        "disease_area": meta.disease_area,
        "labels": labels,
        "model": {
            "file": tflite.name,
            "sha256": sha256_file(tflite),
            "size_bytes": tflite.stat().st_size,
            "format": "TFLite flatbuffer (LiteRT), one signature per data category",
            "signatures": list(CATEGORIES),
            "output_name": OUTPUT_NAME,
        },
        "quantization": {
            "method": QUANTIZATION,
            "io": "int8",
            "calibration": {
                c: min(CALIBRATION_SAMPLES, meta.splits[c]["train"]) for c in CATEGORIES
            },
            "tensors": {
                c: {"input": lite.inputs[c].to_json(), "output": lite.outputs[c].to_json()}
                for c in CATEGORIES
            },
        },
        "training_data": {
            c: {
                "source": meta.provenance[c]["source"],
                "synthetic": meta.provenance[c]["synthetic"],
            }
            for c in CATEGORIES
        },
        "clinic_cases": meta.clinic_cases or "none",
        "branches": branches,
        "fusion": {
            "method": METHOD,
            "description": FUSION_TEXT,
            "epsilon": EPSILON,
            "weights": weights,
            "weight_source": WEIGHT_SOURCE,
        },
        "training": {
            "seed": meta.seed,
            "framework": meta.framework,
            "split": "stratified per label, fixed by the seed: test 25 %, val 20 % of the rest",
            "deterministic": "one thread, tf.config.experimental.enable_op_determinism",
        },
        "evaluation": {
            "protocol": FROZEN_TEXT,
            "frozen_test": {c: list(meta.frozen_test.get(c, [])) for c in CATEGORIES},
            "emr_baseline": emr_baseline(data[EMR_ENTRY], labels, meta.seed),
            "test_accuracy_95": {
                c: wilson_interval(
                    round(metrics[c]["test"]["int8"]["accuracy"] * metrics[c]["test"]["int8"]["n"]),
                    metrics[c]["test"]["int8"]["n"],
                )
                for c in CATEGORIES
            },
        },
        **sections(synthetic),
        "artefacts": {name: path.name for name, path in paths.items()},
        "notes": notes,
    }
    card = write_card(paths["card"], card_data)
    report = {
        "version": meta.version,
        "intended_use": meta.intended_use,
        "labels": labels,
        "branches": {
            c: {
                "data": "synthetic" if meta.provenance[c]["synthetic"] else "real",
                "source": meta.provenance[c]["source"],
                "fusion_weight": weights[c],
                "val": metrics[c]["val"],
                "test": metrics[c]["test"],
            }
            for c in CATEGORIES
        },
    }
    write_report(report, paths["report_json"], paths["report_md"])
    if meta.histories:
        plot_curves(meta.histories, paths["curves"])
    return card


def main(argv: Sequence[str] | None = None) -> int:
    """``clinicam model export --model DIR --data DIR --out FILE.tflite``."""
    from models.train import (
        KERAS_DIR,
        TRAINING_FILE,
        TrainingMeta,
        configure_environment,
        configure_logging,
        configure_tensorflow,
        load_data,
    )

    parser = argparse.ArgumentParser(
        prog="clinicam model export",
        description="Re-export a trained model folder as int8 .tflite + card + report.",
    )
    parser.add_argument("--model", type=Path, required=True, help="models.train output folder")
    parser.add_argument("--data", type=Path, required=True, help="the dataset it was trained on")
    parser.add_argument("--out", type=Path, required=True, help="FILE.tflite to write")
    args = parser.parse_args(argv)
    if args.out.suffix != ".tflite":
        parser.error("--out must end in .tflite")
    configure_environment()
    configure_logging()
    meta = TrainingMeta.load(args.model / TRAINING_FILE)
    configure_tensorflow(1, meta.seed)
    import keras

    models = {c: keras.saving.load_model(args.model / KERAS_DIR / f"{c}.keras") for c in CATEGORIES}
    spec = replace(read_spec(args.data), labels=tuple(meta.labels))
    data = load_data(args.data, spec, meta.seed, meta)
    export_model(models, data, meta, args.out)
    print(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

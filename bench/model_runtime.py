"""Relevance model inference cost: int8 LiteRT next to the float32 Keras model.

For each data category, one synthetic malignant record (the EMR branch: the first
Wisconsin row) is preprocessed once; then, in the same run and on the same input:

1. int8: the shipped demo ``.tflite`` through LiteRT (``ai_edge_litert``, one thread),
   called by signature name — quantizing the input and dequantizing the output
   included, exactly as ``models.runtime`` does it on the appliance;
2. float32: the branch as a Keras model (TensorFlow, one thread),
   ``predict_on_batch`` on the same tensor (Keras's one-batch predict; ``predict()``
   adds a data pipeline per call and would flatter the ratio). The architecture is
   the trained one; its weights are the trained float32 ones if ``--keras DIR``
   names a training output's ``keras/`` folder, else freshly initialised (latency
   does not depend on the weight values; the shipped demo has no float models).

Also printed: preprocessing time per category (decode, resize, spectrogram) and the
``.tflite`` size.

    python bench/model_runtime.py [--quick] [--keras DIR]

Last line: JSON with int8_ms, float_ms (per category), ratio, preprocess_ms, tflite_kb.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.timing import timed  # noqa: E402
from models import synthetic  # noqa: E402
from models.categories import CATEGORIES, EMR_ENTRY  # noqa: E402
from models.runtime import DEMO_MODEL, RelevanceModel  # noqa: E402


def sample_record(category: str) -> Any:
    """A malignant record of ``category`` as the runtime would be given it."""
    rng = np.random.default_rng(2024)
    if category == EMR_ENTRY:
        from sklearn.datasets import load_breast_cancer  # type: ignore[import-untyped]

        bunch = load_breast_cancer()
        return dict(zip(map(str, bunch.feature_names), map(float, bunch.data[0]), strict=True))
    if category == "voice_note":
        return synthetic.voice_wav(synthetic.MALIGNANT, rng)
    if category == "ct_image":
        return synthetic.ct_dicom(synthetic.MALIGNANT, rng)
    make = synthetic.photo if category == "clinical_photo" else synthetic.scan
    return make(synthetic.MALIGNANT, rng)


def float_models(model: RelevanceModel, keras_dir: Path | None) -> dict[str, Any]:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras  # type: ignore[import-untyped]
    import tensorflow as tf  # type: ignore[import-untyped]

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    from models.branches import build_branch

    models = {}
    for category in CATEGORIES:
        if keras_dir is not None:
            models[category] = keras.saving.load_model(keras_dir / f"{category}.keras")
        else:
            shape = model.card.branches[category].input_shape
            models[category] = build_branch(category, shape, len(model.labels))
    return models


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples (under a minute)")
    parser.add_argument("--keras", type=Path, default=None, help="trained float32 .keras folder")
    args = parser.parse_args()
    iterations, float_iterations, pre_iterations = (200, 30, 5) if args.quick else (2000, 200, 30)

    load = os.getloadavg()[0]
    print(
        f"load average before the run: {load:.2f} on {os.cpu_count()} CPUs (other work skews this)"
    )
    model = RelevanceModel.load_demo(num_threads=1)
    size_kb = DEMO_MODEL.stat().st_size / 1024
    print(f"model {model.version}: {DEMO_MODEL.name}, {size_kb:.1f} kB, labels {model.labels}")
    floats = float_models(model, args.keras)
    weights = "trained" if args.keras else "freshly initialised (same architecture)"
    print(f"float32 Keras branches: weights {weights}")

    int8_ms: dict[str, float] = {}
    float_ms: dict[str, float] = {}
    pre_ms: dict[str, float] = {}
    for category in CATEGORIES:
        record = sample_record(category)
        pre = timed(partial(model.tensor, category, record), pre_iterations, warmup=1)
        tensor = model.tensor(category, record)
        signature = model.card.branches[category].signature
        lite = timed(partial(model.lite.run, signature, tensor), iterations, warmup=5)
        dense = timed(
            partial(floats[category].predict_on_batch, tensor[None]), float_iterations, warmup=5
        )
        int8_ms[category] = statistics.median(lite)
        float_ms[category] = statistics.median(dense)
        pre_ms[category] = statistics.median(pre)
        probabilities = model.lite.run(signature, tensor)
        print(
            f"{category:15s} int8 LiteRT {int8_ms[category]:7.3f} ms   float32 Keras "
            f"{float_ms[category]:7.3f} ms   ratio {float_ms[category] / int8_ms[category]:6.1f}x"
            f"   preprocess {pre_ms[category]:6.2f} ms   p(malignant) "
            f"{probabilities[model.labels.index('malignant')]:.3f}"
        )
    result = {
        "int8_ms": {c: round(v, 4) for c, v in int8_ms.items()},
        "float_ms": {c: round(v, 3) for c, v in float_ms.items()},
        "ratio": {c: round(float_ms[c] / int8_ms[c], 1) for c in CATEGORIES},
        "preprocess_ms": {c: round(v, 2) for c, v in pre_ms.items()},
        "tflite_kb": round(size_kb, 1),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()

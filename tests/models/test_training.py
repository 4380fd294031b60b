"""Training and export from scratch: the demo rebuild reproduces the shipped card.

These run the real thing in subprocesses (fresh TensorFlow state, one thread):
``python -m models.build_demo`` (synthetic data + Wisconsin, ~1 minute on 2 cores),
``python -m models.export`` on its output, and ``python -m models.train`` on a
small folder without ``dataset.json``. None of them is skipped.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from models import synthetic
from models.card import ModelCard
from models.categories import CATEGORIES, EMR_ENTRY
from models.runtime import DEMO_CARD, RelevanceModel

ROOT = Path(__file__).resolve().parents[2]
VERSION = "relevance-demo-1"


def _run(args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    done = subprocess.run(
        [sys.executable, "-m", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return done


def _metrics(card: dict[str, Any], category: str) -> dict[str, Any]:
    metrics: dict[str, Any] = card["branches"][category]["metrics"]["test"]
    return metrics


@pytest.fixture(scope="module")
def rebuilt(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The demo rebuilt from scratch, float models and dataset kept; (folder, log)."""
    out = tmp_path_factory.mktemp("rebuilt")
    done = _run(
        [
            "models.build_demo",
            "--out",
            str(out / "model"),
            "--keep-data",
            str(out / "data"),
            "--keep-float",
        ],
        timeout=280,
    )
    return out, done.stderr


def test_retrained_demo_matches_the_shipped_card(rebuilt: tuple[Path, str]) -> None:
    out, log = rebuilt
    shipped = json.loads(DEMO_CARD.read_text(encoding="utf-8"))
    card_path = out / "model" / f"{VERSION}.card.json"
    fresh = json.loads(card_path.read_text(encoding="utf-8"))
    assert fresh["labels"] == shipped["labels"]
    for category in CATEGORIES:
        # progress: one line per epoch per branch
        epochs = fresh["branches"][category]["epochs"]
        assert f"epoch {epochs:3d}/{epochs}" in log
        new, old = _metrics(fresh, category), _metrics(shipped, category)
        assert abs(new["int8"]["accuracy"] - old["int8"]["accuracy"]) <= 0.05, category
        assert new["agreement"]["top1_agreement"] >= 0.97, category
        assert 0.0 <= new["int8"]["ece"] <= 0.2, category
        assert len(new["int8"]["confusion"]) == len(fresh["labels"])
        weight = fresh["fusion"]["weights"][category]
        assert abs(weight - shipped["fusion"]["weights"][category]) <= 0.15, category
    emr = _metrics(fresh, EMR_ENTRY)
    assert emr["int8"]["accuracy"] >= 0.95
    assert abs(emr["int8"]["accuracy"] - emr["float32"]["accuracy"]) <= 0.01
    for category in CATEGORIES:
        synthetic_data = fresh["branches"][category]["training_data"]["synthetic"]
        assert synthetic_data is (category != EMR_ENTRY)
    # the rebuilt artefacts are complete and the runtime accepts them
    for suffix in (".tflite", ".report.json", ".report.md", ".curves.png"):
        assert (out / "model" / f"{VERSION}{suffix}").stat().st_size > 0
    assert (out / "model" / f"{VERSION}.curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    model = RelevanceModel.load(out / "model" / f"{VERSION}.tflite", card_path)
    assert model.labels == ("benign", "malignant")


def test_reexport_from_the_saved_float_models(rebuilt: tuple[Path, str]) -> None:
    out, _ = rebuilt
    target = out / "again" / "relevance-again.tflite"
    _run(
        [
            "models.export",
            "--model",
            str(out / "model"),
            "--data",
            str(out / "data"),
            "--out",
            str(target),
        ],
        timeout=200,
    )
    card = ModelCard.load(out / "again" / "relevance-again.card.json")
    assert card.model_file == target.name
    first = json.loads((out / "model" / f"{VERSION}.card.json").read_text(encoding="utf-8"))
    for category in CATEGORIES:
        again = card.data["branches"][category]["metrics"]["test"]
        assert again["float32"]["accuracy"] == _metrics(first, category)["float32"]["accuracy"]
        before = _metrics(first, category)["int8"]["accuracy"]
        assert abs(again["int8"]["accuracy"] - before) <= 0.02
    RelevanceModel.load(target)


def test_train_command_on_a_folder_without_dataset_json(
    tmp_path: Path, wisconsin: list[dict[str, Any]]
) -> None:
    data = tmp_path / "data"
    synthetic.generate_dataset(data, per_class=4, seed=11)
    entries = wisconsin[:30]
    (data / "emr_entry").mkdir()
    (data / "emr_entry" / "entries.jsonl").write_text(
        "".join(json.dumps(e) + "\n" for e in entries), "utf-8"
    )
    done = _run(
        [
            "models.train",
            "--data",
            str(data),
            "--out",
            str(tmp_path / "out"),
            "--epochs",
            "2",
            "--seed",
            "3",
            "--version",
            "relevance-test-7",
            "--no-patient-data",  # synthetic files; without it the consent gate refuses
        ],
        timeout=200,
    )
    for category in CATEGORIES:
        assert f"{category:<14} epoch   2/2" in done.stderr
    tflite = tmp_path / "out" / "relevance-test-7.tflite"
    assert done.stdout.strip().endswith(str(tflite))
    model = RelevanceModel.load(tflite)
    assert model.labels == ("benign", "malignant")
    assert model.card.data["training"]["seed"] == 3
    assert "decision support only" in model.card.intended_use
    emr = model.card.branches[EMR_ENTRY].params
    assert len(emr.shape) == 1 and emr.shape[0] == 30  # features inferred from the entries
    assert "no provenance given" in model.card.data["training_data"]["ct_image"]["source"]
    p = model.predict("ct_image", synthetic.ct_dicom("benign", np.random.default_rng(1)))
    assert p.shape == (2,)

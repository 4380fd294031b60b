"""The runtime on the shipped demo model: LiteRT, signatures, verification, relevance."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from models import synthetic
from models.card import ModelCardError
from models.categories import CATEGORIES, EMR_ENTRY
from models.dataset import Record, label_indices, split_indices
from models.runtime import (
    DEMO_CARD,
    DEMO_MODEL,
    ModelIntegrityError,
    ModelLoadError,
    RelevanceModel,
)

ROOT = Path(__file__).resolve().parents[2]


def test_demo_model_has_one_signature_per_category(demo_model: RelevanceModel) -> None:
    assert set(demo_model.lite.signatures) == set(CATEGORIES)
    for category in CATEGORIES:
        branch = demo_model.card.branches[category]
        assert demo_model.lite.inputs[branch.signature].shape == (1, *branch.input_shape)
        assert demo_model.lite.inputs[branch.signature].dtype == np.int8
        assert demo_model.lite.outputs[branch.signature].dtype == np.int8
    assert demo_model.labels == ("benign", "malignant")  # from the card
    assert "not for clinical use" in demo_model.card.intended_use
    assert DEMO_MODEL.stat().st_size < 400_000


def test_litert_is_the_interpreter(demo_model: RelevanceModel) -> None:
    from ai_edge_litert.interpreter import Interpreter

    assert isinstance(demo_model.lite._interpreter, Interpreter)


def test_malignant_photo_gets_the_higher_relevance(demo_model: RelevanceModel) -> None:
    rng = np.random.default_rng(12345)  # not a training seed
    malignant_index = demo_model.labels.index("malignant")
    wins = 0
    for _ in range(5):
        bad = demo_model.predict("clinical_photo", synthetic.photo("malignant", rng))
        good = demo_model.predict("clinical_photo", synthetic.photo("benign", rng))
        for p in (bad, good):
            assert p.shape == (len(demo_model.labels),)
            assert np.all(p >= 0) and p.sum() == pytest.approx(1.0)
        wins += int(bad[malignant_index] > 0.5 and bad[malignant_index] > good[malignant_index])
    assert wins >= 4


def test_patient_relevance_fuses_all_categories(
    demo_model: RelevanceModel, wisconsin: list[dict[str, Any]]
) -> None:
    rng = np.random.default_rng(777)
    malignant_entry = next(e["fields"] for e in wisconsin if e["label"] == "malignant")
    items: list[tuple[str, Any]] = [
        ("clinical_photo", synthetic.photo("malignant", rng)),
        ("clinical_photo", synthetic.photo("malignant", rng)),
        ("ct_image", synthetic.ct_dicom("malignant", rng)),
        ("voice_note", synthetic.voice_wav("malignant", rng)),
        ("record_scan", b"%PDF-1.4 not renderable"),
        (EMR_ENTRY, malignant_entry),
    ]
    result = demo_model.relevance(items)
    assert result is not None
    relevance = result.as_dict()
    assert relevance["malignant"] > relevance["benign"]
    assert sum(result.values) == pytest.approx(1.0)
    assert result.branches_used == ("clinical_photo", "ct_image", "voice_note", EMR_ENTRY)
    assert [s.index for s in result.skipped] == [4]
    assert len(result.per_item) == 5
    assert sum(result.weights.values()) == pytest.approx(1.0)
    assert result.model_version == demo_model.version
    json.dumps(result.to_json())  # storable as is


def test_relevance_without_usable_items_is_none(demo_model: RelevanceModel) -> None:
    assert demo_model.relevance([]) is None
    assert demo_model.relevance([("record_scan", b"%PDF-1.4")]) is None


def test_tampered_model_is_refused(tmp_path: Path) -> None:
    model = tmp_path / DEMO_MODEL.name
    card = tmp_path / DEMO_CARD.name
    shutil.copyfile(DEMO_CARD, card)
    content = bytearray(DEMO_MODEL.read_bytes())
    content[len(content) // 2] ^= 0x01
    model.write_bytes(bytes(content))
    with pytest.raises(ModelIntegrityError):
        RelevanceModel.load(model, card)
    model.write_bytes(DEMO_MODEL.read_bytes())
    assert RelevanceModel.load(model, card).version == "relevance-demo-1"


def _card_copy(tmp_path: Path, change: Any) -> tuple[Path, Path]:
    model = tmp_path / DEMO_MODEL.name
    shutil.copyfile(DEMO_MODEL, model)
    data = json.loads(DEMO_CARD.read_text(encoding="utf-8"))
    change(data)
    card = tmp_path / "changed.card.json"
    card.write_text(json.dumps(data), "utf-8")
    return model, card


def test_card_with_wrong_label_count_is_refused(tmp_path: Path) -> None:
    model, card = _card_copy(tmp_path, lambda d: d["labels"].append("inflammatory"))
    with pytest.raises(ModelLoadError, match="3 labels"):
        RelevanceModel.load(model, card)


def test_card_with_wrong_input_is_refused(tmp_path: Path) -> None:
    def smaller(data: dict[str, Any]) -> None:
        data["branches"]["clinical_photo"]["preprocessing"]["size"] = 32
        data["branches"]["clinical_photo"]["input_shape"] = [32, 32, 3]

    model, card = _card_copy(tmp_path, smaller)
    with pytest.raises(ModelLoadError, match="clinical_photo"):
        RelevanceModel.load(model, card)


def test_malformed_card_is_refused(tmp_path: Path) -> None:
    model, card = _card_copy(tmp_path, lambda d: d.pop("labels"))
    with pytest.raises(ModelCardError):
        RelevanceModel.load(model, card)


def test_emr_int8_accuracy_on_the_fixed_held_out_split(
    demo_model: RelevanceModel, wisconsin: list[dict[str, Any]]
) -> None:
    """≥ 95 % and within 1 point of float32, on the split recomputed from the seed."""
    records = [Record(e["label"], None, e["fields"]) for e in wisconsin]
    y = label_indices(records, demo_model.labels, "wisconsin")
    seed = int(demo_model.card.data["training"]["seed"])
    test = split_indices(y, seed).test
    predicted = [
        int(np.argmax(demo_model.predict(EMR_ENTRY, records[i].fields or {}))) for i in test
    ]
    accuracy = float(np.mean(np.asarray(predicted) == y[test]))
    metrics = demo_model.card.data["branches"][EMR_ENTRY]["metrics"]["test"]
    assert len(test) == metrics["int8"]["n"] == 142
    assert accuracy == pytest.approx(metrics["int8"]["accuracy"])  # card = what runs
    assert accuracy >= 0.95
    assert abs(accuracy - metrics["float32"]["accuracy"]) <= 0.01


def test_runtime_never_imports_tensorflow() -> None:
    code = (
        "import sys\n"
        "from models.runtime import RelevanceModel\n"
        "m = RelevanceModel.load_demo()\n"
        "m.relevance([('emr_entry', {'mean radius': 20.0})])\n"
        "bad = [n for n in ('tensorflow', 'keras', 'sklearn') if n in sys.modules]\n"
        "assert not bad, bad\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr

"""The dataset folder: layout, labels, fixed stratified splits, filing new cases."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from models import synthetic
from models.dataset import (
    DatasetError,
    DatasetSpec,
    Provenance,
    add_item,
    check_complete,
    count_items,
    emr_features,
    list_records,
    load_category,
    read_spec,
    split_indices,
    write_spec,
)
from models.preprocess import EmrParams, default_params


def test_split_is_stratified_disjoint_and_fixed_by_seed() -> None:
    y = np.array([0] * 40 + [1] * 20 + [2] * 12)
    split = split_indices(y, 3)
    parts = [split.train, split.val, split.test]
    assert sum(len(p) for p in parts) == len(y)
    assert len(set(np.concatenate(parts).tolist())) == len(y)
    assert np.bincount(y[split.test]).tolist() == [10, 5, 3]  # a quarter of each label
    assert np.bincount(y[split.val]).tolist() == [6, 3, 2]  # a fifth of the rest
    again = split_indices(y, 3)
    again_parts = [again.train, again.val, again.test]
    assert all(np.array_equal(a, b) for a, b in zip(parts, again_parts, strict=True))
    other = split_indices(y, 4)
    assert not np.array_equal(split.test, other.test)


def test_split_needs_three_records_per_label() -> None:
    with pytest.raises(DatasetError):
        split_indices([0, 0, 0, 1, 1], 0)


def test_layout_labels_and_records(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    for label in ("malignant", "benign"):
        for _ in range(3):
            add_item(tmp_path, "clinical_photo", label, synthetic.photo(label, rng), ".jpg")
        add_item(tmp_path, "emr_entry", label, {"mean radius": 10.0 + len(label), "note": "x"})
    (tmp_path / "clinical_photo" / "benign" / ".DS_Store").write_bytes(b"junk")
    spec = read_spec(tmp_path)  # no dataset.json: sorted labels found
    assert spec.labels == ("benign", "malignant")
    assert emr_features(tmp_path, spec) == ("mean radius",)
    records = list_records(tmp_path, "clinical_photo")
    assert [r.label for r in records] == ["benign"] * 3 + ["malignant"] * 3
    assert count_items(tmp_path)["clinical_photo"] == {"benign": 3, "malignant": 3}
    assert count_items(tmp_path)["emr_entry"] == {"malignant": 1, "benign": 1}
    with pytest.raises(DatasetError, match="ct_image"):
        check_complete(tmp_path)
    params = default_params("clinical_photo")
    data = load_category(tmp_path, "clinical_photo", spec.labels, 0, params)
    assert data.x.shape == (6, 64, 64, 3)
    assert data.y.tolist() == [0, 0, 0, 1, 1, 1]


def test_the_same_record_is_filed_once(tmp_path: Path) -> None:
    data = synthetic.ct_dicom("benign", np.random.default_rng(2))
    first = add_item(tmp_path, "ct_image", "benign", data, ".dcm")
    second = add_item(tmp_path, "ct_image", "benign", data, ".dcm")
    assert first == second
    assert count_items(tmp_path)["ct_image"] == {"benign": 1}
    with pytest.raises(DatasetError):
        add_item(tmp_path, "ct_image", "../escape", data)


def test_spec_round_trip_and_unknown_labels(tmp_path: Path) -> None:
    spec = DatasetSpec(
        ("benign", "malignant"),
        "breast lesion",
        {"emr_entry": Provenance("test", False)},
        ("mean radius",),
    )
    write_spec(tmp_path, spec)
    assert read_spec(tmp_path) == spec
    add_item(tmp_path, "emr_entry", "inflammatory", {"mean radius": 1})
    with pytest.raises(DatasetError, match="inflammatory"):
        load_category(tmp_path, "emr_entry", spec.labels, 0, EmrParams(("a",), (0.0,), (1.0,)))


def test_malformed_emr_line_is_reported_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "emr_entry" / "entries.jsonl"
    path.parent.mkdir()
    path.write_text(json.dumps({"fields": {}, "label": "a"}) + "\n{broken\n", "utf-8")
    with pytest.raises(DatasetError, match=r"entries\.jsonl:2"):
        list_records(tmp_path, "emr_entry")

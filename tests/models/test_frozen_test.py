"""The frozen test set (issue 18): champion/challenger compare on the champion's test
records, new cases only ever train or validate, and no frozen record is trained on."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from models.build_demo import DEMO_SEED, write_demo_dataset
from models.categories import CATEGORIES, EMR_ENTRY
from models.challenge import comparison_indices, frozen_of
from models.dataset import (
    EMR_FILE,
    DatasetError,
    category_split,
    frozen_from_seed,
    list_records,
    read_spec,
    record_key,
    split_indices,
    write_frozen,
)
from models.retrain import prepare_dataset
from models.runtime import RelevanceModel
from models.synthetic import generate_dataset

SEED = DEMO_SEED


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small demo dataset: the champion trained on its seeded train/val splits."""
    root = tmp_path_factory.mktemp("base") / "dataset"
    write_demo_dataset(root, SEED, 8)
    return root


def _cases(folder: Path, per_class: int, seed: int, wisconsin_rows: list[str]) -> Path:
    """New confirmed cases: synthetic files and perturbed Wisconsin entries."""
    generate_dataset(folder, per_class, seed)
    entries = []
    for line in wisconsin_rows:
        entry = json.loads(line)
        entry["fields"] = {k: v * (1.0 + seed / 1000) for k, v in entry["fields"].items()}
        entries.append(json.dumps(entry))
    (folder / EMR_ENTRY).mkdir(parents=True, exist_ok=True)
    (folder / EMR_ENTRY / EMR_FILE).write_text("\n".join(entries) + "\n", "utf-8")
    return folder


def _trained_on(root: Path, category: str) -> set[str]:
    labels = read_spec(root).labels
    _, keys, _, split = category_split(root, category, labels, SEED)
    return {keys[i] for i in np.concatenate([split.train, split.val])}


def _keys(root: Path, category: str) -> list[str]:
    return [record_key(r) for r in list_records(root, category)]


def test_two_retrains_never_compare_on_or_train_on_the_wrong_records(
    base: Path, tmp_path: Path
) -> None:
    labels = read_spec(base).labels
    champion_trained = {c: _trained_on(base, c) for c in CATEGORIES}
    seeded = frozen_from_seed(base, labels, SEED)
    frozen = {c: frozenset(keys) for c, keys in seeded.items()}
    rows = (base / EMR_ENTRY / EMR_FILE).read_text("utf-8").splitlines()
    leaked_before = 0
    for round_, case_seed in enumerate((101, 202)):
        root = tmp_path / f"round{round_}"
        shutil.copytree(base, root)
        cases = _cases(tmp_path / f"cases{round_}", 5, case_seed, rows[:10])
        carried, added = prepare_dataset(root, cases, SEED, frozen)
        assert carried == frozen and added == 5 * 2 * 4 + 10
        for category in CATEGORIES:
            keys = _keys(root, category)
            compared = {keys[i] for i in comparison_indices(root, category, frozen)}
            assert compared == set(frozen[category])
            assert not compared & champion_trained[category]  # the old leak is gone
            trains = _trained_on(root, category)
            assert not trains & frozen[category]  # no frozen record is ever trained on
            assert set(_keys(cases, category)) <= trains  # new cases: train/val only
            # what the old code compared on: the split recomputed from the enlarged data
            y = [labels.index(r.label) for r in list_records(root, category)]
            old = {keys[i] for i in split_indices(y, SEED).test}
            leaked_before += len(old & champion_trained[category])
        # the candidate's card freezes the same test keys: the next round carries them
        _, candidate_keys, _, split = category_split(root, EMR_ENTRY, labels, SEED)
        assert {candidate_keys[i] for i in split.test} == set(frozen[EMR_ENTRY])
    assert leaked_before > 0  # the recomputed split did put champion training data in the test


def test_a_frozen_record_filed_again_stays_in_the_test_split(base: Path, tmp_path: Path) -> None:
    root = tmp_path / "dataset"
    shutil.copytree(base, root)
    labels = read_spec(root).labels
    frozen = {c: frozenset(k) for c, k in frozen_from_seed(root, labels, SEED).items()}
    cases = tmp_path / "cases"
    category = "clinical_photo"
    record = next(r for r in list_records(root, category) if record_key(r) in frozen[category])
    assert record.path is not None
    copy = cases / category / record.label / "again.png"
    copy.parent.mkdir(parents=True)
    copy.write_bytes(record.path.read_bytes())
    prepare_dataset(root, cases, SEED, frozen)
    assert not _trained_on(root, category) & frozen[category]


def test_the_shipped_card_freezes_its_test_records(demo_model: RelevanceModel) -> None:
    frozen = frozen_of(demo_model)
    assert frozen is not None
    for category in CATEGORIES:
        split = demo_model.card.data["branches"][category]["training_data"]["split"]
        assert len(frozen[category]) == split["test"]


def test_a_dataset_without_the_frozen_records_is_refused(base: Path, tmp_path: Path) -> None:
    root = tmp_path / "dataset"
    shutil.copytree(base, root)
    write_frozen(root, {c: ["0" * 32] for c in CATEGORIES})
    with pytest.raises(DatasetError, match="none of the frozen"):
        category_split(root, "ct_image", read_spec(root).labels, SEED)

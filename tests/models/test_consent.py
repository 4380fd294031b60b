"""The offline training tools refuse clinic cases without consent evidence (issue 18)."""

from __future__ import annotations

from pathlib import Path

import pytest

from models import retrain, train
from models.categories import CATEGORIES
from models.consent import (
    ConsentError,
    ConsentManifest,
    ManifestPatient,
    check_cases,
    check_training_data,
)
from models.dataset import DatasetSpec, Provenance, add_item, write_spec


def _cases(folder: Path, items: int) -> Path:
    for i in range(items):
        add_item(folder, "emr_entry", "malignant", {"mean radius": 20.0 + i})
    return folder


def _manifest(items: int) -> ConsentManifest:
    return ConsentManifest(
        "2026-12-07T02:00:00+00:00", (ManifestPatient("P-X", "malignant", items),)
    )


def test_cases_without_a_manifest_are_refused(tmp_path: Path) -> None:
    folder = _cases(tmp_path / "cases", 2)
    with pytest.raises(ConsentError, match="no consent manifest"):
        check_cases(folder)


def test_a_manifest_must_cover_every_record(tmp_path: Path) -> None:
    folder = _cases(tmp_path / "cases", 3)
    _manifest(2).write(folder)
    with pytest.raises(ConsentError, match="covers 2 record items but the folder holds 3"):
        check_cases(folder)
    _manifest(3).write(folder)
    assert check_cases(folder).items == 3


def test_retrain_refuses_cases_without_a_manifest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _cases(tmp_path / "cases", 2)
    argv = ["--cases", str(folder), "--out", str(tmp_path / "out"), "--version", "v"]
    with pytest.raises(SystemExit) as exit_:
        retrain.main(argv)
    assert exit_.value.code == 2
    assert "no consent manifest" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_train_refuses_a_folder_of_unknown_origin(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _cases(tmp_path / "data", 2)
    with pytest.raises(SystemExit) as exit_:
        train.main(["--data", str(folder), "--out", str(tmp_path / "out")])
    assert exit_.value.code == 2
    assert "--no-patient-data" in capsys.readouterr().err
    assert "no patient data" in check_training_data(folder, no_patient_data=True)
    spec = DatasetSpec(
        ("benign", "malignant"), provenance={c: Provenance("x", True) for c in CATEGORIES}
    )
    write_spec(folder, spec)
    assert "provenance" in check_training_data(folder, no_patient_data=False)
    _manifest(1).write(folder)  # a manifest that does not cover the folder is refused
    with pytest.raises(ConsentError, match="covers 1"):
        check_training_data(folder, no_patient_data=True)

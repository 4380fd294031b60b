"""The training dataset on disk: layout, labels, provenance, fixed splits, new cases.

Training reads a folder, not a database, so that the same code trains the demo model
(synthetic records + the Wisconsin table), a model from a clinic's exported cases,
and the retraining of the learning loop (R9), where the server files confirmed cases
with :func:`add_item` and retrains once :func:`count_items` reaches its threshold::

    DIR/dataset.json                 optional: {"labels": [...], "disease_area": "...",
                                       "provenance": {category: {"source": "...",
                                       "synthetic": bool}}, "emr_features": [...]}
    DIR/<category>/<label>/<file>    clinical_photo, record_scan, ct_image, voice_note:
                                     the stored record files (any name; hidden files
                                     are ignored; names sort the records)
    DIR/emr_entry/entries.jsonl      one {"fields": {...}, "label": "..."} per line

Without ``dataset.json`` the labels are the sorted label folder/label names found
and the EMR features are all fields that hold a number somewhere, sorted by name.
Every category needs records (the model has one branch per category) and every
label it has needs at least three records (one per split).

Splits are stratified per label and fixed by the seed (:func:`split_indices`): a
quarter of each label's records is the held-out test set, a fifth of the rest is the
validation set (used for the fusion weights), the rest trains. Records are ordered
by file name (EMR: by line), so the same folder and seed give the same split on any
machine; the EMR test recomputes the Wisconsin test split this way.

**The frozen test set.** Once a model version exists, its test set must never move:
``DIR/frozen_test.json`` (``{category: [record key, ...]}``, :func:`write_frozen`)
names the test records by :func:`record_key` (the SHA-256 of the file's bytes or of
the EMR entry's canonical fields). When it is present, exactly the records with a
frozen key are the test split (an identical copy filed again stays in the test split
too) and every other record — the new cases of a retrain — is split into train and
validation only. Every card records its test keys (``evaluation.frozen_test``), and a
retrain freezes the champion's: champion and challenger are compared on the same
records, none of which either model trained on.

The records are turned into tensors by :mod:`models.preprocess`, the same functions
the runtime uses. This module does not import TensorFlow.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from models.categories import CATEGORIES, EMR_ENTRY, FILE_CATEGORIES, check_category
from models.preprocess import EmrParams, Params, field_number, fit_emr_params, preprocess

_LOGGER = logging.getLogger(__name__)

SPEC_FILE = "dataset.json"
EMR_FILE = "entries.jsonl"
FROZEN_FILE = "frozen_test.json"
TEST_FRACTION = 0.25
VAL_FRACTION = 0.2

IntArray = np.ndarray[Any, np.dtype[np.int64]]
Array = np.ndarray[Any, np.dtype[np.float32]]


class DatasetError(ValueError):
    """The dataset folder does not follow the layout (message says where)."""


@dataclass(frozen=True)
class Provenance:
    """Where a category's training records came from, as the model card states it."""

    source: str
    synthetic: bool


@dataclass(frozen=True)
class DatasetSpec:
    """Labels (disease categories, in model output order) and provenance per category."""

    labels: tuple[str, ...]
    disease_area: str = ""
    provenance: Mapping[str, Provenance] = field(default_factory=dict)
    emr_features: tuple[str, ...] = ()  # empty: the numeric fields found in the entries
    clinic_cases: str = ""  # which consented clinic cases were merged in (for the card)


@dataclass(frozen=True)
class Record:
    """One training record: its label and the stored file (or EMR fields)."""

    label: str
    path: Path | None
    fields: Mapping[str, Any] | None = None

    def item(self) -> bytes | Mapping[str, Any]:
        """What the runtime would be given for this record."""
        if self.fields is not None:
            return self.fields
        assert self.path is not None
        return self.path.read_bytes()


@dataclass(frozen=True)
class Split:
    """Indices into a category's record list."""

    train: IntArray
    val: IntArray
    test: IntArray


@dataclass(frozen=True)
class CategoryData:
    """A category's tensors per split, its labels as indices, and its parameters."""

    category: str
    params: Params
    split: Split
    x: Array  # all records, in record order
    y: IntArray
    keys: tuple[str, ...] = ()  # each record's :func:`record_key`, in record order

    def test_keys(self) -> list[str]:
        """The test split's record keys, sorted (what the card freezes)."""
        return sorted({self.keys[i] for i in self.split.test})

    def part(self, name: str) -> tuple[Array, IntArray]:
        """``(x, y)`` of split ``name`` ("train", "val" or "test")."""
        indices: IntArray = getattr(self.split, name)
        return self.x[indices], self.y[indices]


def read_spec(root: Path) -> DatasetSpec:
    """``dataset.json`` if present, else the labels found in the folders."""
    path = root / SPEC_FILE
    if path.is_file():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            labels = tuple(str(label) for label in data["labels"])
            provenance = {
                str(category): Provenance(str(info["source"]), bool(info["synthetic"]))
                for category, info in dict(data.get("provenance", {})).items()
            }
            features = tuple(str(name) for name in data.get("emr_features", ()))
        except (ValueError, KeyError, TypeError) as exc:
            raise DatasetError(f"{path}: {exc}") from exc
        if len(labels) < 2 or len(set(labels)) != len(labels):
            raise DatasetError(f"{path}: need at least two distinct labels")
        clinic = str(data.get("clinic_cases", ""))
        return DatasetSpec(labels, str(data.get("disease_area", "")), provenance, features, clinic)
    found: set[str] = set()
    for category in FILE_CATEGORIES:
        folder = root / category
        if folder.is_dir():
            found.update(p.name for p in folder.iterdir() if p.is_dir() and _visible(p))
    found.update(record.label for record in _emr_records(root))
    if len(found) < 2:
        raise DatasetError(f"{root}: found fewer than two labels and no {SPEC_FILE}")
    return DatasetSpec(tuple(sorted(found)))


def write_spec(root: Path, spec: DatasetSpec) -> None:
    """Write ``dataset.json`` for ``spec``."""
    root.mkdir(parents=True, exist_ok=True)
    data = {
        "labels": list(spec.labels),
        "disease_area": spec.disease_area,
        "provenance": {
            category: {"source": info.source, "synthetic": info.synthetic}
            for category, info in spec.provenance.items()
        },
        "emr_features": list(spec.emr_features),
    }
    if spec.clinic_cases:
        data["clinic_cases"] = spec.clinic_cases
    (root / SPEC_FILE).write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", "utf-8")


def _visible(path: Path) -> bool:
    return not path.name.startswith(".")


def _emr_records(root: Path) -> list[Record]:
    path = root / EMR_ENTRY / EMR_FILE
    if not path.is_file():
        return []
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            fields, label = entry["fields"], entry["label"]
        except (ValueError, KeyError, TypeError) as exc:
            raise DatasetError(f"{path}:{number}: not a {{fields, label}} object: {exc}") from exc
        if not isinstance(fields, dict) or not isinstance(label, str):
            raise DatasetError(f"{path}:{number}: fields must be an object and label a string")
        records.append(Record(label=label, path=None, fields=fields))
    return records


def emr_features(root: Path, spec: DatasetSpec) -> tuple[str, ...]:
    """The EMR feature names: the spec's, else every field with a numeric value, sorted."""
    if spec.emr_features:
        return spec.emr_features
    names: set[str] = set()
    for record in _emr_records(root):
        fields = record.fields or {}
        names.update(str(k) for k, v in fields.items() if field_number(v) is not None)
    if not names:
        raise DatasetError(f"{root / EMR_ENTRY / EMR_FILE}: no numeric fields")
    return tuple(sorted(names))


def list_records(root: Path, category: str) -> list[Record]:
    """The category's records in their fixed order (labels sorted, then file names)."""
    check_category(category)
    if category == EMR_ENTRY:
        return _emr_records(root)
    folder = root / category
    if not folder.is_dir():
        return []
    records = []
    for label_dir in sorted(p for p in folder.iterdir() if p.is_dir() and _visible(p)):
        for path in sorted(p for p in label_dir.iterdir() if p.is_file() and _visible(p)):
            records.append(Record(label=label_dir.name, path=path))
    return records


def split_indices(
    y: Sequence[int] | IntArray, seed: int, frozen: Sequence[bool] | None = None
) -> Split:
    """Stratified train/val/test indices, fixed by ``seed`` (see the module docstring).

    ``frozen`` (one flag per record): the flagged records are the test split, the
    others are split into train and validation only.
    """
    labels = np.asarray(y, dtype=np.int64)
    mask = None if frozen is None else np.asarray(frozen, dtype=bool)
    parts: dict[str, list[int]] = {"train": [], "val": [], "test": []}
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        if mask is not None:
            parts["test"].extend(members[mask[members]].tolist())
            members = members[~mask[members]]
            if members.size < 2:
                raise DatasetError(
                    f"label index {label} has {members.size} records besides the frozen "
                    "test set; need ≥ 2"
                )
            n_test = 0
        elif members.size < 3:
            raise DatasetError(f"label index {label} has {members.size} records; need ≥ 3")
        else:
            n_test = max(1, round(members.size * TEST_FRACTION))
        order = np.random.default_rng([seed, int(label)]).permutation(members)
        n_val = max(1, round((members.size - n_test) * VAL_FRACTION))
        parts["test"].extend(order[:n_test].tolist())
        parts["val"].extend(order[n_test : n_test + n_val].tolist())
        parts["train"].extend(order[n_test + n_val :].tolist())
    return Split(
        *(np.sort(np.asarray(parts[name], dtype=np.int64)) for name in ("train", "val", "test"))
    )


def record_key(record: Record) -> str:
    """A record's identity: SHA-256 (128 bits, hex) of its bytes or canonical EMR fields."""
    if record.fields is not None:
        text = json.dumps(dict(record.fields), sort_keys=True, ensure_ascii=False)
        payload = text.encode("utf-8")
    else:
        assert record.path is not None
        payload = record.path.read_bytes()
    return hashlib.sha256(payload).hexdigest()[:32]


def read_frozen(root: Path) -> dict[str, frozenset[str]] | None:
    """``frozen_test.json``'s record keys per category, or None without the file."""
    path = root / FROZEN_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return {str(c): frozenset(str(k) for k in keys) for c, keys in dict(data).items()}
    except (ValueError, TypeError) as exc:
        raise DatasetError(f"{path}: {exc}") from exc


def write_frozen(root: Path, frozen: Mapping[str, Sequence[str] | frozenset[str]]) -> None:
    """Freeze the test set of ``root``: ``{category: record keys}``."""
    root.mkdir(parents=True, exist_ok=True)
    data = {str(c): sorted(keys) for c, keys in frozen.items()}
    (root / FROZEN_FILE).write_text(json.dumps(data, indent=1) + "\n", "utf-8")


def category_split(
    root: Path, category: str, labels: Sequence[str], seed: int
) -> tuple[list[Record], tuple[str, ...], IntArray, Split]:
    """A category's records, their keys and label indices, and its split (frozen or seeded)."""
    records = list_records(root, category)
    if not records:
        raise DatasetError(f"{root / category}: no records (every category needs some)")
    y = label_indices(records, labels, str(root / category))
    keys = tuple(record_key(r) for r in records)
    frozen = read_frozen(root)
    if frozen is None:
        return records, keys, y, split_indices(y, seed)
    test = frozen.get(category, frozenset())
    mask = [key in test for key in keys]
    if not any(mask):
        raise DatasetError(f"{root / FROZEN_FILE}: none of the frozen {category} records is here")
    return records, keys, y, split_indices(y, seed, mask)


def frozen_from_seed(root: Path, labels: Sequence[str], seed: int) -> dict[str, list[str]]:
    """The test keys the seeded split of ``root`` gives (to freeze a model's test set)."""
    out: dict[str, list[str]] = {}
    for category in CATEGORIES:
        records = list_records(root, category)
        y = label_indices(records, labels, str(root / category))
        test = split_indices(y, seed).test
        out[category] = sorted({record_key(records[i]) for i in test})
    return out


def label_indices(records: Sequence[Record], labels: Sequence[str], where: str) -> IntArray:
    """Each record's label as its index in ``labels``; unknown labels are an error."""
    index = {label: i for i, label in enumerate(labels)}
    unknown = sorted({r.label for r in records} - set(index))
    if unknown:
        raise DatasetError(f"{where}: labels {unknown} are not in the label list {list(labels)}")
    return np.asarray([index[r.label] for r in records], dtype=np.int64)


def load_category(
    root: Path,
    category: str,
    labels: Sequence[str],
    seed: int,
    params: Params | None = None,
    features: Sequence[str] | None = None,
) -> CategoryData:
    """Preprocess every record of ``category`` and split them.

    ``params`` is required for file categories; for EMR entries either ``params`` (e.g.
    from a saved model) or ``features`` (then mean/std are fitted on the train split).
    """
    records, keys, y, split = category_split(root, category, labels, seed)
    if category == EMR_ENTRY and params is None:
        if features is None:
            raise ValueError("EMR entries need params or feature names")
        train_fields = [records[i].fields or {} for i in split.train]
        params = fit_emr_params(features, train_fields)
    if params is None:
        raise ValueError(f"{category} needs preprocessing parameters")
    tensors = [preprocess(category, record.item(), params) for record in records]
    x = np.stack(tensors).astype(np.float32)
    _LOGGER.info(
        "%s: %s records (train %s, val %s, test %s), input %s",
        category,
        len(records),
        split.train.size,
        split.val.size,
        split.test.size,
        x.shape[1:],
    )
    return CategoryData(category=category, params=params, split=split, x=x, y=y, keys=keys)


def check_complete(root: Path) -> None:
    """Raise DatasetError unless every category has records."""
    missing = [c for c in CATEGORIES if not list_records(root, c)]
    if missing:
        raise DatasetError(f"{root}: no records for {missing}; every category needs some")


def add_item(
    root: Path, category: str, label: str, item: bytes | Mapping[str, Any], suffix: str = ""
) -> Path:
    """File one confirmed case into the dataset (the learning loop's training set).

    Files are named by the SHA-256 of their bytes (the same record filed twice is
    kept once); EMR fields are appended to ``entries.jsonl``. Returns the path.
    """
    check_category(category)
    if not label or "/" in label or label.startswith("."):
        raise DatasetError(f"bad label {label!r}")
    if category == EMR_ENTRY:
        if not isinstance(item, Mapping):
            raise DatasetError("an EMR entry is a dict of fields")
        path = root / EMR_ENTRY / EMR_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps({"fields": dict(item), "label": label}, ensure_ascii=False)
        with path.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")
        return path
    if not isinstance(item, bytes):
        raise DatasetError(f"a {category} record is the stored file's bytes")
    folder = root / category / label
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (hashlib.sha256(item).hexdigest()[:24] + suffix)
    if not path.exists():
        temporary = path.with_name("." + path.name + ".tmp")
        temporary.write_bytes(item)
        temporary.replace(path)
    return path


def count_items(root: Path) -> dict[str, dict[str, int]]:
    """Records per category and label (what a retraining threshold is checked against)."""
    counts: dict[str, dict[str, int]] = {}
    for category in CATEGORIES:
        per_label: dict[str, int] = {}
        for record in list_records(root, category):
            per_label[record.label] = per_label.get(record.label, 0) + 1
        counts[category] = per_label
    return counts


def emr_params_of(data: CategoryData) -> EmrParams:
    """The fitted EMR parameters of a loaded EMR category."""
    if not isinstance(data.params, EmrParams):
        raise TypeError("not EMR data")
    return data.params

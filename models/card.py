"""The model card: what a model version is, what it expects, how good it is.

Everything the runtime needs besides the ``.tflite`` weights lives in the card JSON
next to it (``<version>.tflite`` + ``<version>.card.json``): the labels (the disease
categories — they come from here, never from code), each branch's input and its
preprocessing parameters, the int8 quantization parameters, the fusion weights, the
per-branch metrics, the training data and its provenance, the SHA-256 of the
``.tflite`` (the runtime refuses a file that does not match) and the intended use.

This module parses and checks a card; :mod:`models.export` writes them. No
TensorFlow here.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from models.categories import CATEGORIES, INPUT_NAMES
from models.preprocess import Params, params_from_json

_LOGGER = logging.getLogger(__name__)

SCHEMA = "clinicam-relevance-card/1"
CARD_SUFFIX = ".card.json"
DEMO_USE = "demonstration model — not for clinical use"


class ModelCardError(ValueError):
    """The card is malformed or does not fit the model file."""


@dataclass(frozen=True)
class BranchCard:
    """One branch (= one data category = one signature) as the card describes it."""

    category: str
    signature: str
    input_name: str
    input_shape: tuple[int, ...]  # without the batch axis
    params: Params
    weight: float


@dataclass(frozen=True)
class ModelCard:
    """The parts of a card the runtime uses; ``data`` is the whole JSON document."""

    version: str
    labels: tuple[str, ...]
    sha256: str
    model_file: str
    intended_use: str
    branches: Mapping[str, BranchCard]
    fusion_method: str
    fusion_epsilon: float
    data: Mapping[str, Any]

    @property
    def weights(self) -> dict[str, float]:
        return {category: branch.weight for category, branch in self.branches.items()}

    @classmethod
    def load(cls, path: Path) -> ModelCard:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ModelCardError(f"cannot read model card {path}: {exc}") from exc
        return cls.from_json(data)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ModelCard:
        """Parse and check a card document (raises ModelCardError)."""
        try:
            if data.get("schema") != SCHEMA:
                raise ModelCardError(f"unknown card schema {data.get('schema')!r}")
            labels = tuple(str(label) for label in data["labels"])
            if len(labels) < 2 or len(set(labels)) != len(labels):
                raise ModelCardError("a card needs at least two distinct labels")
            sha = str(data["model"]["sha256"]).lower()
            if not re.fullmatch(r"[0-9a-f]{64}", sha):
                raise ModelCardError("model.sha256 is not a SHA-256 hex digest")
            weights = {str(k): float(v) for k, v in data["fusion"]["weights"].items()}
            branches: dict[str, BranchCard] = {}
            for category, info in data["branches"].items():
                if category not in CATEGORIES:
                    raise ModelCardError(f"unknown branch category {category!r}")
                branches[category] = BranchCard(
                    category=category,
                    signature=str(info["signature"]),
                    input_name=str(info["input_name"]),
                    input_shape=tuple(int(v) for v in info["input_shape"]),
                    params=params_from_json(category, info["preprocessing"]),
                    weight=weights.get(category, 0.0),
                )
            return cls(
                version=str(data["version"]),
                labels=labels,
                sha256=sha,
                model_file=str(data["model"]["file"]),
                intended_use=str(data["intended_use"]),
                branches=branches,
                fusion_method=str(data["fusion"]["method"]),
                fusion_epsilon=float(data["fusion"]["epsilon"]),
                data=data,
            )
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            if isinstance(exc, ModelCardError):
                raise
            raise ModelCardError(f"malformed model card: {exc!r}") from exc

    def check_branches(self) -> None:
        """Every category has a branch whose input agrees with its parameters."""
        missing = [c for c in CATEGORIES if c not in self.branches]
        if missing:
            raise ModelCardError(f"the card has no branch for {missing}")
        for category, branch in self.branches.items():
            if branch.input_name != INPUT_NAMES[category]:
                raise ModelCardError(f"{category}: input name {branch.input_name!r}")
            if branch.input_shape != branch.params.shape:
                raise ModelCardError(
                    f"{category}: input shape {branch.input_shape} ≠ preprocessing "
                    f"output {branch.params.shape}"
                )


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def card_path_for(tflite_path: Path) -> Path:
    """``x/relevance-1.tflite`` → ``x/relevance-1.card.json``."""
    path = Path(tflite_path)
    return path.with_name(path.stem + CARD_SUFFIX)


def write_card(path: Path, data: Mapping[str, Any]) -> ModelCard:
    """Check ``data`` parses as a card, then write it (UTF-8, indented)."""
    card = ModelCard.from_json(data)
    card.check_branches()
    Path(path).write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", "utf-8")
    _LOGGER.info("model card written to %s", path)
    return card

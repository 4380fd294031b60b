"""Running a relevance model version on the appliance or the server — without TensorFlow.

The appliance (a Raspberry Pi) runs the int8 ``.tflite`` with LiteRT
(``ai_edge_litert``, falling back to the older ``tflite_runtime``); the server may run
the very same file. Loading is strict, because a wrong or swapped model would
produce plausible-looking wrong numbers:

- the ``.tflite`` bytes must hash to the card's SHA-256 (a changed byte is refused);
- the file must have one signature per data category, named as the card says, with
  the card's input name and shape and an output of one value per card label.

``predict`` turns one stored record into the branch's probabilities: the category's
preprocessing function from :mod:`models.preprocess` (the same one training used,
with the card's parameters), quantization to int8 with the input tensor's
scale/zero-point, the category's signature runner, dequantization of the output
(then clipped at 0 and renormalised, because int8 softmax outputs sum to 1 only
within a few 1/256). ``relevance`` runs every record of a patient and fuses them
(:mod:`models.fusion`) with the card's branch weights; records that cannot be used
are skipped and listed with a reason code and text, not fatal: unreadable ones,
out-of-scope ones (an image unlike the branch's training inputs, an EMR entry with
fewer than half of the expected fields — :mod:`models.scope`), and records of a branch
trained on synthetic data unless synthetic branches are enabled (by default only for
a demonstration model; even then they are capped beside a real-data branch). Imputed
EMR fields are listed per item. The interpreter is used under a lock: one model
object may be shared by threads.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from clinicam.i18n import _
from models.card import DEMO_USE, ModelCard, ModelCardError, card_path_for
from models.categories import CATEGORIES, EMR_ENTRY, OUTPUT_NAME, check_category
from models.fusion import fuse
from models.preprocess import EmrParams, FloatArray, PreprocessError, preprocess
from models.scope import Scope, emr_coverage

_LOGGER = logging.getLogger(__name__)

DEMO_DIR = Path(__file__).resolve().parent / "demo"
DEMO_VERSION = "relevance-demo-1"
DEMO_MODEL = DEMO_DIR / f"{DEMO_VERSION}.tflite"
DEMO_CARD = card_path_for(DEMO_MODEL)

Item = bytes | bytearray | memoryview | str | os.PathLike[str] | Mapping[str, Any]


class ModelLoadError(Exception):
    """The model version cannot be used (integrity, shape or card problem)."""


class ModelIntegrityError(ModelLoadError):
    """The ``.tflite`` bytes do not match the card's SHA-256."""


def _interpreter_class() -> Any:
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # older appliances: tflite-runtime (numpy < 2 only)
        from tflite_runtime.interpreter import Interpreter
    return Interpreter


@dataclass(frozen=True)
class TensorInfo:
    """A signature input or output: name, shape with batch axis, dtype, quantization."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    scale: float
    zero_point: int

    @classmethod
    def from_details(cls, name: str, details: Mapping[str, Any]) -> TensorInfo:
        scale, zero_point = details.get("quantization", (0.0, 0))
        return cls(
            name=name,
            shape=tuple(int(v) for v in details["shape"]),
            dtype=np.dtype(details["dtype"]),
            scale=float(scale),
            zero_point=int(zero_point),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "shape": list(self.shape),
            "dtype": self.dtype.name,
            "scale": self.scale,
            "zero_point": self.zero_point,
        }


class LiteModel:
    """A multi-signature ``.tflite`` file: one signature per category, int8 I/O handled."""

    def __init__(self, content: bytes, num_threads: int = 1) -> None:
        interpreter_class = _interpreter_class()
        try:
            self._interpreter = interpreter_class(model_content=content, num_threads=num_threads)
        except (ValueError, RuntimeError) as exc:
            raise ModelLoadError(f"not a loadable TFLite model: {exc}") from exc
        self._lock = threading.Lock()
        self._runners: dict[str, Any] = {}
        self.inputs: dict[str, TensorInfo] = {}
        self.outputs: dict[str, TensorInfo] = {}
        signatures: dict[str, Any] = self._interpreter.get_signature_list()
        for key, names in signatures.items():
            if len(names["inputs"]) != 1 or list(names["outputs"]) != [OUTPUT_NAME]:
                raise ModelLoadError(
                    f"signature {key!r} must have one input and the output {OUTPUT_NAME!r}"
                )
            runner = self._interpreter.get_signature_runner(key)
            input_name = names["inputs"][0]
            self._runners[key] = runner
            self.inputs[key] = TensorInfo.from_details(
                input_name, runner.get_input_details()[input_name]
            )
            self.outputs[key] = TensorInfo.from_details(
                OUTPUT_NAME, runner.get_output_details()[OUTPUT_NAME]
            )

    @property
    def signatures(self) -> tuple[str, ...]:
        return tuple(self._runners)

    def run(self, signature: str, tensor: FloatArray) -> np.ndarray[Any, np.dtype[np.float64]]:
        """Probabilities for one preprocessed input (no batch axis) through ``signature``."""
        if signature not in self._runners:
            raise KeyError(f"the model has no signature {signature!r}")
        info, out = self.inputs[signature], self.outputs[signature]
        x = np.asarray(tensor, dtype=np.float32).reshape(info.shape)
        if info.dtype == np.int8:
            quantized = np.round(x / np.float32(info.scale)) + info.zero_point
            feed: np.ndarray[Any, Any] = np.clip(quantized, -128, 127).astype(np.int8)
        else:
            feed = x.astype(info.dtype)
        with self._lock:
            raw = self._runners[signature](**{info.name: feed})[OUTPUT_NAME]
        values = np.asarray(raw).reshape(-1)
        if out.dtype == np.int8:
            probabilities = (values.astype(np.float64) - out.zero_point) * out.scale
        else:
            probabilities = values.astype(np.float64)
        probabilities = np.clip(probabilities, 0.0, None)
        total = probabilities.sum()
        return probabilities / total if total > 0 else np.full(values.size, 1.0 / values.size)


@dataclass(frozen=True)
class ItemResult:
    """One record's branch output."""

    index: int  # position in the list given to ``relevance``
    category: str
    probabilities: tuple[float, ...]
    imputed: tuple[str, ...] = ()  # EMR fields missing: the training mean was used


@dataclass(frozen=True)
class SkippedItem:
    """A record that could not be used, and why."""

    index: int
    category: str
    reason: str
    code: str = "unreadable"  # unreadable | out_of_scope | too_few_fields | synthetic


@dataclass(frozen=True)
class RelevanceResult:
    """A patient's relevance per disease category, and how it was computed."""

    labels: tuple[str, ...]
    values: tuple[float, ...]  # one per label, in [0, 1], summing to 1
    per_item: tuple[ItemResult, ...]
    branches_used: tuple[str, ...]
    weights: dict[str, float]  # renormalised branch weights used
    model_version: str
    intended_use: str
    skipped: tuple[SkippedItem, ...] = ()
    equal_weights_fallback: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    branch_probabilities: dict[str, tuple[float, ...]] = field(default_factory=dict)
    provenance: dict[str, str] = field(default_factory=dict)  # branch → "real" | "synthetic"
    synthetic_capped: bool = False
    synthetic_enabled: bool = False

    def as_dict(self) -> dict[str, float]:
        """``{label: relevance}`` (e.g. for the relevance chart)."""
        return dict(zip(self.labels, self.values, strict=True))

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready record of the result (what the server stores, R7)."""
        return {
            "model_version": self.model_version,
            "intended_use": self.intended_use,
            "labels": list(self.labels),
            "relevance": self.as_dict(),
            "branches_used": list(self.branches_used),
            "weights": self.weights,
            "equal_weights_fallback": self.equal_weights_fallback,
            "per_item": [
                {
                    "index": r.index,
                    "category": r.category,
                    "probabilities": list(r.probabilities),
                    "imputed": list(r.imputed),
                }
                for r in self.per_item
            ],
            "skipped": [
                {"index": s.index, "category": s.category, "reason": s.reason, "code": s.code}
                for s in self.skipped
            ],
            "branches": {
                c: {
                    "probabilities": list(p),
                    "weight": self.weights.get(c, 0.0),
                    "data": self.provenance.get(c, "real"),
                }
                for c, p in self.branch_probabilities.items()
            },
            "provenance": self.provenance,
            "synthetic_capped": self.synthetic_capped,
            "synthetic_enabled": self.synthetic_enabled,
        }


def _item_payload(category: str, item: Item) -> bytes | Mapping[str, Any]:
    if category == EMR_ENTRY:
        if not isinstance(item, Mapping):
            raise PreprocessError("an EMR entry is a dict of fields")
        return item
    if isinstance(item, bytes | bytearray | memoryview):
        return bytes(item)
    if isinstance(item, str | os.PathLike):
        try:
            return Path(item).read_bytes()
        except OSError as exc:
            raise PreprocessError(f"cannot read the record file: {exc}") from exc
    raise PreprocessError(f"a {category} record is file bytes or a path")


class RelevanceModel:
    """A loaded, verified model version: per-item prediction and patient relevance."""

    def __init__(self, lite: LiteModel, card: ModelCard) -> None:
        self.lite = lite
        self.card = card
        self._check()
        training = card.data.get("training_data", {})
        self.synthetic = frozenset(
            c
            for c in CATEGORIES
            if isinstance(training.get(c), Mapping) and training[c].get("synthetic")
        )
        self.scopes: dict[str, Scope] = {}
        for category, info in card.data.get("branches", {}).items():
            if isinstance(info, Mapping) and isinstance(info.get("scope"), Mapping):
                try:
                    self.scopes[category] = Scope.from_json(info["scope"])
                except (KeyError, TypeError, ValueError) as exc:
                    raise ModelLoadError(f"{category}: malformed scope in the card: {exc}") from exc

    @property
    def demonstration(self) -> bool:
        """A demonstration model: its synthetic branches are used (capped) by default."""
        return self.card.intended_use == DEMO_USE

    @classmethod
    def load(
        cls, tflite_path: Path | str, card_path: Path | str | None = None, *, num_threads: int = 1
    ) -> RelevanceModel:
        """Load ``tflite_path`` with its card (default: ``<stem>.card.json`` beside it)."""
        path = Path(tflite_path)
        card_file = Path(card_path) if card_path is not None else card_path_for(path)
        card = ModelCard.load(card_file)
        content = path.read_bytes()
        digest = hashlib.sha256(content).hexdigest()
        if digest != card.sha256:
            raise ModelIntegrityError(
                f"{path.name}: SHA-256 {digest} does not match the card's {card.sha256}"
            )
        model = cls(LiteModel(content, num_threads=num_threads), card)
        _LOGGER.info(
            "loaded relevance model %s (%s labels, %s bytes)",
            card.version,
            len(card.labels),
            len(content),
        )
        return model

    @classmethod
    def load_demo(cls, *, num_threads: int = 1) -> RelevanceModel:
        """The demonstration model shipped in ``models/demo/``."""
        return cls.load(DEMO_MODEL, DEMO_CARD, num_threads=num_threads)

    def _check(self) -> None:
        card, lite = self.card, self.lite
        try:
            card.check_branches()
        except ModelCardError as exc:
            raise ModelLoadError(str(exc)) from exc
        for category in CATEGORIES:
            branch = card.branches[category]
            if branch.signature not in lite.inputs:
                raise ModelLoadError(f"the model has no signature {branch.signature!r}")
            info, out = lite.inputs[branch.signature], lite.outputs[branch.signature]
            if info.name != branch.input_name or info.shape != (1, *branch.input_shape):
                raise ModelLoadError(
                    f"{category}: model input {info.name}{list(info.shape)} ≠ card "
                    f"{branch.input_name}{[1, *branch.input_shape]}"
                )
            if out.shape != (1, len(card.labels)):
                raise ModelLoadError(
                    f"{category}: the model outputs {out.shape[-1]} values but the card "
                    f"has {len(card.labels)} labels {list(card.labels)}"
                )

    @property
    def labels(self) -> tuple[str, ...]:
        return self.card.labels

    @property
    def version(self) -> str:
        return self.card.version

    def tensor(self, category: str, item: Item) -> FloatArray:
        """The branch's float32 input for ``item`` (exactly what ``predict`` feeds)."""
        check_category(category)
        params = self.card.branches[category].params
        return preprocess(category, _item_payload(category, item), params)

    def predict(self, category: str, item: Item) -> np.ndarray[Any, np.dtype[np.float64]]:
        """Probabilities over :attr:`labels` for one stored record of ``category``.

        ``item``: the file's bytes (or its path) for file categories, the field dict
        for ``emr_entry``. Raises PreprocessError for unreadable records.
        """
        tensor = self.tensor(category, item)
        return self.lite.run(self.card.branches[category].signature, tensor)

    def _score(self, index: int, category: str, item: Item, allow_synthetic: bool) -> ItemResult:
        """One item's branch output; SkipItem when it must not be scored."""
        check_category(category)
        if category in self.synthetic and not allow_synthetic:
            raise SkipItem(
                "synthetic",
                _(
                    "this branch was trained on synthetic data; it is used only when a site "
                    "enables demonstration branches"
                ),
            )
        params = self.card.branches[category].params
        imputed: tuple[str, ...] = ()
        if category == EMR_ENTRY and isinstance(item, Mapping) and isinstance(params, EmrParams):
            coverage = emr_coverage(item, params)
            if not coverage.enough:
                raise SkipItem(
                    "too_few_fields",
                    _(
                        "the EMR entry has {present} of the {expected} fields the model expects; "
                        "too few to score",
                        present=coverage.present,
                        expected=coverage.expected,
                    ),
                )
            imputed = coverage.imputed
        tensor = self.tensor(category, item)
        scope = self.scopes.get(category)
        if scope is not None:
            distance = scope.distance(tensor)
            if distance > scope.threshold:
                raise SkipItem(
                    "out_of_scope",
                    _(
                        "out of scope: unlike the inputs this branch was trained on (distance "
                        "{distance} > {threshold})",
                        distance=f"{distance:.1f}",
                        threshold=f"{scope.threshold:.1f}",
                    ),
                )
        probabilities = self.lite.run(self.card.branches[category].signature, tensor)
        return ItemResult(index, category, tuple(float(p) for p in probabilities), imputed)

    def relevance(
        self, items: Sequence[tuple[str, Item]], *, allow_synthetic: bool | None = None
    ) -> RelevanceResult | None:
        """Fuse all of a patient's records into one relevance per label.

        ``allow_synthetic``: use the branches trained on synthetic data (capped beside a
        real-data branch); default: only for a demonstration model. Returns None when no
        record could be used (none given, or all skipped — see ``skipped`` reasons).
        """
        allow = self.demonstration if allow_synthetic is None else allow_synthetic
        per_item: list[ItemResult] = []
        skipped: list[SkippedItem] = []
        for index, (category, item) in enumerate(items):
            try:
                per_item.append(self._score(index, category, item, allow))
            except SkipItem as exc:
                _LOGGER.info("record %s (%s) not scored: %s", index, category, exc.reason)
                skipped.append(SkippedItem(index, category, exc.reason, exc.code))
            except (PreprocessError, ValueError) as exc:
                _LOGGER.warning("record %s (%s) skipped: %s", index, category, exc)
                skipped.append(SkippedItem(index, category, str(exc)))
        fused = fuse(
            [(r.category, r.probabilities) for r in per_item],
            self.card.weights,
            len(self.labels),
            self.card.fusion_epsilon,
            synthetic=self.synthetic,
        )
        if fused is None:
            return None
        return RelevanceResult(
            labels=self.labels,
            values=tuple(float(v) for v in fused.values),
            per_item=tuple(per_item),
            branches_used=tuple(c for c in CATEGORIES if c in fused.weights),
            weights=fused.weights,
            model_version=self.version,
            intended_use=self.card.intended_use,
            skipped=tuple(skipped),
            equal_weights_fallback=fused.equal_weights_fallback,
            branch_probabilities={
                c: tuple(float(v) for v in p) for c, p in fused.branch_probabilities.items()
            },
            provenance={c: "synthetic" if c in self.synthetic else "real" for c in fused.weights},
            synthetic_capped=fused.synthetic_capped,
            synthetic_enabled=allow,
        )


class SkipItem(Exception):
    """An item that must not be scored: a reason ``code`` and the text saying why."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason

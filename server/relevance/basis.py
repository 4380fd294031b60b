"""The basis of a relevance result (issue 18): what it was computed from, and by what.

Every time relevance is shown (API, room panel, chart caption) the reader gets, next
to the fused percentages: each branch's own probabilities, its weight and whether it
learned from real or synthetic data; the record items used (with their imputed EMR
fields) and skipped (with the reason); and the version, intended use and training
data of the model **that produced this result** — from its own card (the model in
use, or the registry's copy for an older version), never from whichever model is
current. A server run stores the basis the runtime reports; for an appliance's result
the basis is rebuilt from the per-item probabilities it posted and the producing
model's card (same fusion code), or says that the card is not known here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from clinicam.i18n import ENGLISH, Text, TextList, _, translate

NOT_A_DIAGNOSIS = _("decision support — not a diagnosis")
SHORT_NAMES = {
    "clinical_photo": _("photo"),
    "record_scan": _("scan"),
    "ct_image": _("CT"),
    "voice_note": _("voice"),
    "emr_entry": _("EMR"),
}
SEPARATOR = " · "


class CardText(Text):
    """A card's own free text: as written, or its ``<key>_zh`` variant for zh-CN (a card
    is not in the catalogue; what it says is the model maker's)."""

    variants: dict[str, str]

    def __new__(cls, text: str, variants: Mapping[str, str] | None = None) -> CardText:
        obj = str.__new__(cls, text)
        obj.msgid = text
        obj.params = {}
        obj.variants = {k: v for k, v in (variants or {}).items() if v}
        return obj

    def __reduce__(self) -> tuple[Any, ...]:
        return (CardText, (str(self), self.variants))

    def render(self, locale: str) -> str:
        return self.variants.get(locale, str(self)) if locale != ENGLISH else str(self)


def card_text(card: Mapping[str, Any], key: str) -> CardText:
    """``card[key]``, with its zh-CN variant (``card[key + "_zh"]``) when the card has one."""
    zh = card.get(f"{key}_zh")
    return CardText(str(card.get(key, "")), {"zh-CN": str(zh)} if isinstance(zh, str) else None)


def training_summary(training_data: Any) -> str:
    """E.g. "Wisconsin diagnostic breast cancer (EMR) + synthetic data (photo, scan, …)"
    (a :class:`TextList`: the branch names and "synthetic data" translate, a source's
    name stays as the card writes it)."""
    if not isinstance(training_data, dict):
        return ""
    real: dict[str, list[str]] = {}
    synthetic: list[str] = []
    for category, info in training_data.items():
        name = SHORT_NAMES.get(str(category), str(category))
        if not isinstance(info, dict):
            continue
        if info.get("synthetic"):
            synthetic.append(name)
        else:
            source = str(info.get("source", "real data")).split(" (")[0]
            real.setdefault(source, []).append(name)
    parts: list[str] = [
        _("{source} ({branches})", source=source, branches=TextList(names, ", "))
        for source, names in real.items()
    ]
    if synthetic:
        parts.append(_("synthetic data ({branches})", branches=TextList(synthetic, ", ")))
    return TextList(parts, " + ") if parts else ""


def where(produced_by: str) -> Text:
    return _("on the appliance") if produced_by.startswith("appliance") else _("on the server")


def caption(
    card: Mapping[str, Any] | None,
    version: str,
    produced_by: str,
    synthetic_used: bool | None = None,
) -> TextList:
    """The chart's caption, each part translatable: the version first (readable at tile
    size, never cut), "decision support — not a diagnosis", the card's intended use (as
    written, or its zh-CN variant), the training data, whether the branches trained on
    synthetic data counted (when known), where it was computed."""
    parts: list[str] = [_("model {version}", version=version)]
    if card is None:
        parts += [_("its card is not on this server"), NOT_A_DIAGNOSIS]
    else:
        intended = card_text(card, "intended_use")
        if "not a diagnosis" not in intended:
            parts.append(NOT_A_DIAGNOSIS)
        if intended:
            parts.append(intended)
        trained = training_summary(card.get("training_data", {}))
        if trained:
            parts.append(_("trained on {data}", data=trained))
        if "synthetic" in provenance_of(card).values() and synthetic_used is not None:
            parts.append(
                _("synthetic-data branches counted (demonstration)")
                if synthetic_used
                else _("synthetic-data branches not counted")
            )
    parts.append(_("computed {where}", where=where(produced_by)))
    return TextList(parts, SEPARATOR)


def synthetic_counted(basis: Mapping[str, Any]) -> bool | None:
    """Did branches trained on synthetic data count in this result? None: no such input."""
    branches = basis.get("branches")
    if isinstance(branches, Mapping) and any(
        isinstance(b, Mapping) and b.get("data") == "synthetic" and float(b.get("weight", 0)) > 0
        for b in branches.values()
    ):
        return True
    skipped = basis.get("skipped")
    if isinstance(skipped, list) and any(
        isinstance(s, Mapping) and s.get("code") == "synthetic" for s in skipped
    ):
        return False
    return None


def provenance_of(card: Mapping[str, Any] | None) -> dict[str, str]:
    """Branch → "real" | "synthetic", from the card's training data."""
    training = card.get("training_data", {}) if card is not None else {}
    if not isinstance(training, Mapping):
        return {}
    return {
        str(c): "synthetic" if isinstance(i, Mapping) and i.get("synthetic") else "real"
        for c, i in training.items()
    }


def from_runtime(result: Any, refs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The basis of a runtime result (``models.runtime.RelevanceResult``); ``refs``: the
    record items in the order they were given (category and id). A result object
    without ``to_json`` (an older runtime) gives its items only."""
    if not hasattr(result, "to_json"):
        return from_inputs(
            [{**refs[r.index], "probabilities": list(r.probabilities)} for r in result.per_item],
            None,
        )
    data = result.to_json()
    return {
        "branches": data["branches"],
        "items": [
            {**refs[i["index"]], "probabilities": i["probabilities"], "imputed": i["imputed"]}
            for i in data["per_item"]
        ],
        "skipped": [
            {**refs[s["index"]], "code": s["code"], "reason": s["reason"]} for s in data["skipped"]
        ],
        "synthetic_capped": data["synthetic_capped"],
        "synthetic_enabled": data["synthetic_enabled"],
        "equal_weights_fallback": data["equal_weights_fallback"],
    }


SKIP_CODES = frozenset({"unreadable", "out_of_scope", "too_few_fields", "synthetic"})


def _reported_skip(reported: Any) -> dict[str, str]:
    """Why the appliance did not score an item, as it said (a known code and a short
    reason), else that it did not say."""
    if isinstance(reported, Mapping) and reported.get("code") in SKIP_CODES:
        reason = reported.get("reason")
        return {
            "code": str(reported["code"]),
            "reason": reason[:300] if isinstance(reason, str) else "",
        }
    return {"code": "not_reported", "reason": "not scored on the appliance (no reason reported)"}


def from_inputs(
    inputs: Sequence[Mapping[str, Any]], card: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The basis of an appliance's result: its per-item probabilities, fused again with
    the producing model's card (weights and provenance) to show each branch's part."""
    from models.fusion import fuse

    used = [i for i in inputs if isinstance(i.get("probabilities"), list)]
    skipped = [
        {"category": i.get("category"), "id": i.get("id"), **_reported_skip(i.get("skipped"))}
        for i in inputs
        if not isinstance(i.get("probabilities"), list)
    ]
    basis: dict[str, Any] = {
        "items": [
            {
                "category": i.get("category"),
                "id": i.get("id"),
                "probabilities": list(i["probabilities"]),
                "imputed": list(i.get("imputed", [])),
            }
            for i in used
        ],
        "skipped": skipped,
        "branches": {},
    }
    if card is None or not used:
        return basis
    provenance = provenance_of(card)
    weights = dict(card.get("fusion", {}).get("weights", {}))
    synthetic = {c for c, p in provenance.items() if p == "synthetic"}
    try:
        fused = fuse(
            [(str(i["category"]), i["probabilities"]) for i in used],
            weights,
            len(card.get("labels", [])),
            synthetic=synthetic,
        )
    except ValueError:
        return basis
    if fused is not None:
        basis["branches"] = {
            c: {
                "probabilities": [float(v) for v in p],
                "weight": fused.weights[c],
                "data": provenance.get(c, "real"),
            }
            for c, p in fused.branch_probabilities.items()
        }
        basis["synthetic_capped"] = fused.synthetic_capped
    return basis


def model_part(card: Mapping[str, Any] | None, version: str, produced_by: str) -> dict[str, Any]:
    """The producing model as the basis names it."""
    return {
        "version": version,
        "card_known": card is not None,
        "intended_use": card_text(card, "intended_use") if card is not None else "",
        "training_data": training_summary(card.get("training_data", {})) if card else "",
        "provenance": provenance_of(card),
        "caption": caption(card, version, produced_by),
        "computed": where(produced_by),
    }


def localized(result: Mapping[str, Any], locale: str) -> dict[str, Any]:
    """A stored result's JSON with its texts (the caption, the notice, the producing
    model's part of the basis) rendered in ``locale``."""
    out = dict(result)
    text = result.get("caption", "")
    out["caption"] = translate(text, locale) if isinstance(text, str) else text
    basis = result.get("basis")
    if isinstance(basis, Mapping):
        inner = dict(basis)
        if isinstance(inner.get("notice"), str):
            inner["notice"] = translate(inner["notice"], locale)
        model = inner.get("model")
        if isinstance(model, Mapping):
            inner["model"] = {
                k: translate(v, locale) if isinstance(v, str) else v for k, v in model.items()
            }
        out["basis"] = inner
    return out

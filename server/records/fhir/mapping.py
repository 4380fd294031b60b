"""Observations and Conditions mapped to EMR entry fields."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from clinicam.i18n import _
from server.records.fhir.reading import _not_a_patient, _Patients, _ref_text, _reject_constant
from server.records.fhir.resources import (
    _Annotation,
    _BundleEntry,
    _CodeableConcept,
    _Coding,
    _Condition,
    _extension_value,
    _Observation,
    _ObservationComponent,
    _parse_datetime,
    _validate,
    _Valued,
)
from server.records.fhir.results import FhirEntry, FhirError
from server.records.fhir.systems import EMR_FIELDS_EXTENSION

_LOGGER = logging.getLogger(__name__)


def _coding_fields(concept: _CodeableConcept) -> dict[str, str]:
    """The first coding as {system, code, display}, display falling back to the text."""
    first = concept.coding[0] if concept.coding else _Coding()
    fields = {"system": first.system, "code": first.code, "display": first.display}
    if fields["display"] is None:
        fields["display"] = concept.text
    return {k: v for k, v in fields.items() if v is not None}


def _concept_label(concept: _CodeableConcept) -> str | None:
    for coding in concept.coding:
        if coding.display or coding.code:
            return coding.display or coding.code
    return concept.text


def _concept_code(concept: _CodeableConcept | None) -> str | None:
    """A status concept (clinicalStatus…) as its code, e.g. ``active``."""
    if concept is None:
        return None
    for coding in concept.coding:
        if coding.code:
            return coding.code
    return concept.text


def _value_fields(valued: _Valued, where: str) -> dict[str, Any]:
    if valued.valueQuantity is not None:
        quantity = valued.valueQuantity
        out: dict[str, Any] = {"value": quantity.value}
        unit = quantity.unit or quantity.code
        if unit is not None:
            out["unit"] = unit
        return out
    if valued.valueCodeableConcept is not None:
        return {"value": _concept_label(valued.valueCodeableConcept)}
    if valued.valueDateTime is not None:
        _parse_datetime(valued.valueDateTime, f"{where}.valueDateTime")
        return {"value": valued.valueDateTime}
    for choice in (valued.valueString, valued.valueBoolean, valued.valueInteger):
        if choice is not None:
            return {"value": choice}
    return {}


def _unread_value_types(raw: Mapping[str, Any]) -> list[str]:
    read = set(_Valued.model_fields)
    return sorted(k for k in raw if k.startswith("value") and k not in read)


def _notes(notes: list[_Annotation]) -> str | None:
    return "\n".join(n.text for n in notes) or None


def _observation(
    entry: _BundleEntry, index: int, patients: _Patients, skipped: list[str]
) -> FhirEntry | None:
    where = f"entry[{index}] Observation"
    obs = _validate(_Observation, entry.resource, where)
    patient = patients.resolve(obs.subject)
    if patient is None:
        skipped.append(_not_a_patient(where, _ref_text(obs.subject)))
        return None
    field, effective = _effective(obs)
    recorded = _parse_datetime(effective, f"{where}.{field}")
    verbatim = _extension_value(obs.extension, EMR_FIELDS_EXTENSION)
    if verbatim is not None:  # Clinicam's own entry: its fields exactly as they were
        return FhirEntry(
            patient.fhir_id, "Observation", recorded, _verbatim(verbatim, where), verbatim=True
        )
    raw = entry.resource or {}
    for unread in _unread_value_types(raw):
        skipped.append(_("{where}: value type not imported", where=f"{where}.{unread}"))
    fields: dict[str, Any] = {"code": _coding_fields(obs.code), "status": obs.status}
    fields.update(_value_fields(obs, where))
    categories = [c for c in (_concept_label(c) for c in obs.category) if c]
    if categories:
        fields["category"] = categories
    components = [_component(c, f"{where}.component[{i}]") for i, c in enumerate(obs.component)]
    if components:
        fields["components"] = components
    _put_optional(fields, note=_notes(obs.note), fhir_id=obs.id)
    if effective is not None:
        fields["effective"] = effective
    if recorded is None and obs.issued is not None:
        recorded = _parse_datetime(obs.issued, f"{where}.issued")
    return FhirEntry(patient.fhir_id, "Observation", recorded, fields)


def _verbatim(text: str, where: str) -> dict[str, Any]:
    try:
        fields = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        fields = None
    if not isinstance(fields, dict) or not fields:
        raise FhirError(_("{where}: the emr-fields extension is not a JSON object", where=where))
    return fields


def _effective(obs: _Observation) -> tuple[str, str | None]:
    """Which effective[x] is given (for error messages) and its text."""
    if obs.effectiveDateTime is not None:
        return "effectiveDateTime", obs.effectiveDateTime
    if obs.effectiveInstant is not None:
        return "effectiveInstant", obs.effectiveInstant
    if obs.effectivePeriod is not None:
        return "effectivePeriod.start", obs.effectivePeriod.start
    return "effective", None


def _component(component: _ObservationComponent, where: str) -> dict[str, Any]:
    return {"code": _coding_fields(component.code), **_value_fields(component, where)}


def _put_optional(fields: dict[str, Any], **values: Any) -> None:
    fields.update({k: v for k, v in values.items() if v is not None})


def _condition(
    entry: _BundleEntry, index: int, patients: _Patients, skipped: list[str]
) -> FhirEntry | None:
    where = f"entry[{index}] Condition"
    cond = _validate(_Condition, entry.resource, where)
    patient = patients.resolve(cond.subject)
    if patient is None:
        skipped.append(_not_a_patient(where, _ref_text(cond.subject)))
        return None
    fields: dict[str, Any] = {}
    if cond.code is not None:
        fields["code"] = _coding_fields(cond.code)
    onset = cond.onsetDateTime or cond.onsetString
    if cond.onsetDateTime is not None:
        _parse_datetime(cond.onsetDateTime, f"{where}.onsetDateTime")
    categories = [c for c in (_concept_label(c) for c in cond.category) if c]
    _put_optional(
        fields,
        clinicalStatus=_concept_code(cond.clinicalStatus),
        verificationStatus=_concept_code(cond.verificationStatus),
        category=categories or None,
        onset=onset,
        recordedDate=cond.recordedDate,
        note=_notes(cond.note),
        fhir_id=cond.id,
    )
    recorded = _parse_datetime(cond.recordedDate, f"{where}.recordedDate")
    return FhirEntry(patient.fhir_id, "Condition", recorded, fields)

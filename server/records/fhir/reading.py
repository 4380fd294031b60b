"""Reading the Bundle's JSON, and the bundle's patients with every reference to them."""

from __future__ import annotations

import json
import logging
from typing import Any

from clinicam.i18n import _
from server.records.fhir.resources import (
    _Bundle,
    _BundleEntry,
    _HumanName,
    _Identifier,
    _parse_date,
    _Patient,
    _Reference,
    _validate,
)
from server.records.fhir.results import (
    BUNDLE_TYPES,
    MAX_BUNDLE_BYTES,
    MAX_ENTRIES,
    FhirError,
    FhirPatient,
)

_LOGGER = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------
# Reading the bundle
# --------------------------------------------------------------------------------------


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in JSON")


def _load_json(raw: bytes) -> Any:
    if len(raw) > MAX_BUNDLE_BYTES:
        raise FhirError(
            _(
                "bundle of {size} bytes exceeds {limit} bytes",
                size=len(raw),
                limit=MAX_BUNDLE_BYTES,
            )
        )
    try:
        return json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise FhirError(_("not JSON: {problem}", problem=str(exc))) from exc
    except RecursionError as exc:
        raise FhirError(_("not JSON: nested too deeply")) from exc


def _load_bundle(raw: bytes) -> _Bundle:
    document = _load_json(raw)
    if not isinstance(document, dict) or document.get("resourceType") != "Bundle":
        found = document.get("resourceType") if isinstance(document, dict) else None
        raise FhirError(_("not a FHIR Bundle (resourceType {found})", found=repr(found)))
    entries = document.get("entry")
    if isinstance(entries, list) and len(entries) > MAX_ENTRIES:
        raise FhirError(
            _(
                "bundle has {count} entries, more than {limit}",
                count=len(entries),
                limit=MAX_ENTRIES,
            )
        )
    bundle = _validate(_Bundle, document, "Bundle")
    if bundle.type not in BUNDLE_TYPES:
        raise FhirError(
            _(
                "Bundle.type: {found} is not one of {allowed}",
                found=repr(bundle.type),
                allowed=str(sorted(BUNDLE_TYPES)),
            )
        )
    return bundle


def _resource_type(entry: _BundleEntry, index: int) -> str | None:
    if entry.resource is None:
        return None
    kind = entry.resource.get("resourceType")
    if not isinstance(kind, str):
        raise FhirError(
            _("{where}: missing or not a string", where=f"entry[{index}].resource.resourceType")
        )
    return kind


def _identifier_value(identifiers: list[_Identifier]) -> str | None:
    """The medical record number if typed as one, else the official/usual, else the first."""

    def rank(ident: _Identifier) -> int:
        codes = {c.code for c in ident.type.coding} if ident.type else set()
        if "MR" in codes:
            return 0
        return 1 if ident.use in ("official", "usual") else 2

    candidates = sorted((i for i in identifiers if i.value), key=rank)
    return candidates[0].value if candidates else None


def _display_name(names: list[_HumanName]) -> str:
    """The official (else usual, else first) name: its text, else given names and family."""
    if not names:
        return ""
    order = {"official": 0, "usual": 1}
    chosen = sorted(names, key=lambda n: order.get(n.use or "", 2))[0]
    if chosen.text:
        return chosen.text.strip()
    return " ".join([*chosen.given, chosen.family or ""]).strip()


class _Patients:
    """The bundle's patients and every string that refers to each of them."""

    def __init__(self) -> None:
        self.patients: list[FhirPatient] = []
        self._by_ref: dict[str, FhirPatient] = {}

    def add(self, entry: _BundleEntry, index: int, skipped: list[str]) -> None:
        where = f"entry[{index}] Patient"
        resource = _validate(_Patient, entry.resource, where)
        fhir_id = resource.id or entry.fullUrl
        if not fhir_id:
            skipped.append(_("{where}: no id and no fullUrl, nothing can refer to it", where=where))
            return
        refs = {r for r in (entry.fullUrl, resource.id and f"Patient/{resource.id}") if r}
        clash = sorted(r for r in refs if r in self._by_ref)
        if clash:
            raise FhirError(
                _(
                    "{where}: {ref} appears twice in the bundle",
                    where=f"{where}.id",
                    ref=repr(clash[0]),
                )
            )
        birth = resource.birthDate
        patient = FhirPatient(
            fhir_id=fhir_id,
            identifier=_identifier_value(resource.identifier),
            name=_display_name(resource.name),
            birth_date=_parse_date(birth, f"{where}.birthDate") if birth else None,
            sex=resource.gender,
        )
        self.patients.append(patient)
        for ref in refs:
            self._by_ref[ref] = patient

    def resolve(self, reference: _Reference | None) -> FhirPatient | None:
        """``Patient/<id>`` (also versioned, ``…/_history/<v>``) or an entry's fullUrl.

        Absolute URLs match only a fullUrl of this bundle: a patient on another server
        with the same id is a different patient.
        """
        if reference is None or not reference.reference:
            return None
        ref = reference.reference
        if ref in self._by_ref:
            return self._by_ref[ref]
        return self._by_ref.get(ref.split("/_history/", 1)[0])


def _ref_text(reference: _Reference | None) -> str:
    return repr(reference.reference) if reference and reference.reference else "(none)"


def _not_a_patient(where: str, subject: str) -> str:
    return _(
        "{where}: subject {subject} is not a patient of the bundle", where=where, subject=subject
    )

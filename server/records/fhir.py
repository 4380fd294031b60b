"""Import a FHIR R4 Bundle from a hospital system into neutral records.

A referral from a district hospital arrives as a FHIR Bundle (a document, a search
result, a transaction…): the patient, a few observations and diagnoses, and the
images or letters that go with them. This module turns that JSON into plain
dataclasses that the records layer files as EMR entries and uploads; it never touches
the database itself, so an import can be shown to a clinician for review first.

The input comes from outside the clinic and is treated as hostile:

- sizes are bounded before work is done (whole document, entry count, each
  attachment's base64 length before it is decoded);
- what is read is type-checked with pydantic models in strict mode (no silent
  coercion of ``"5"`` to 5); everything else FHIR allows is ignored;
- base64 is decoded strictly, and an attachment's declared ``size`` and ``hash`` must
  match the data;
- URLs are never followed: an attachment given only by ``url`` is skipped and the
  reason reported, as are resources we do not import and entries whose subject is not
  a patient of the bundle.

Errors raise :class:`FhirError` naming the entry and field, e.g.
``entry[3] Media.content.data: not valid base64``, so the sender can be told exactly
what to fix.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

_LOGGER = logging.getLogger(__name__)

MAX_BUNDLE_BYTES: Final = 200 * 1024 * 1024
MAX_ENTRIES: Final = 10_000
BUNDLE_TYPES: Final = frozenset({"collection", "document", "transaction", "searchset", "batch"})


class FhirError(ValueError):
    """The bundle is not acceptable; the message names the entry and field."""


# --------------------------------------------------------------------------------------
# What the import produces
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FhirPatient:
    """A patient of the bundle; ``identifier`` is the MRN-like value, without system."""

    fhir_id: str
    identifier: str | None
    name: str
    birth_date: date | None


@dataclass(frozen=True)
class FhirEntry:
    """An Observation or Condition, to become an EMR entry.

    ``fields`` is JSON-ready: ``code`` ({system, code, display}), ``value`` (a number
    with ``unit``, a string, a boolean…), ``status``, ``category``, ``clinicalStatus``,
    ``verificationStatus``, ``onset``, ``effective`` (the original date text),
    ``components``, ``note`` and ``fhir_id`` where the resource has them.
    """

    patient_ref: str
    kind: Literal["Observation", "Condition"]
    recorded_at: datetime | None
    fields: dict[str, Any]


@dataclass(frozen=True)
class FhirAttachment:
    """An inline attachment of a Media or DocumentReference, to become a file upload."""

    patient_ref: str
    source: Literal["Media", "DocumentReference"]
    content_type: str | None
    title: str | None
    data: bytes
    created: datetime | None


@dataclass(frozen=True)
class FhirImport:
    """Everything imported, and a reason for each thing that was not."""

    patients: list[FhirPatient]
    entries: list[FhirEntry]
    attachments: list[FhirAttachment]
    skipped: list[str]


# --------------------------------------------------------------------------------------
# The subset of FHIR R4 that is read (strict types, everything else ignored)
# --------------------------------------------------------------------------------------


class _Fhir(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)


class _Coding(_Fhir):
    system: str | None = None
    code: str | None = None
    display: str | None = None


class _CodeableConcept(_Fhir):
    coding: list[_Coding] = Field(default_factory=list)
    text: str | None = None


class _Reference(_Fhir):
    reference: str | None = None


class _Identifier(_Fhir):
    use: str | None = None
    type: _CodeableConcept | None = None
    system: str | None = None
    value: str | None = None


class _HumanName(_Fhir):
    use: str | None = None
    text: str | None = None
    family: str | None = None
    given: list[str] = Field(default_factory=list)


class _Patient(_Fhir):
    id: str | None = None
    identifier: list[_Identifier] = Field(default_factory=list)
    name: list[_HumanName] = Field(default_factory=list)
    birthDate: str | None = None


class _Quantity(_Fhir):
    value: float | None = None
    unit: str | None = None
    system: str | None = None
    code: str | None = None


class _Period(_Fhir):
    start: str | None = None
    end: str | None = None


class _Annotation(_Fhir):
    text: str


class _Valued(_Fhir):
    """The value[x] choices that are imported."""

    valueQuantity: _Quantity | None = None
    valueString: str | None = None
    valueCodeableConcept: _CodeableConcept | None = None
    valueBoolean: bool | None = None
    valueInteger: int | None = None
    valueDateTime: str | None = None


class _ObservationComponent(_Valued):
    code: _CodeableConcept


class _Observation(_Valued):
    id: str | None = None
    status: str
    category: list[_CodeableConcept] = Field(default_factory=list)
    code: _CodeableConcept
    subject: _Reference | None = None
    effectiveDateTime: str | None = None
    effectiveInstant: str | None = None
    effectivePeriod: _Period | None = None
    issued: str | None = None
    note: list[_Annotation] = Field(default_factory=list)
    component: list[_ObservationComponent] = Field(default_factory=list)


class _Condition(_Fhir):
    id: str | None = None
    clinicalStatus: _CodeableConcept | None = None
    verificationStatus: _CodeableConcept | None = None
    category: list[_CodeableConcept] = Field(default_factory=list)
    code: _CodeableConcept | None = None
    subject: _Reference
    onsetDateTime: str | None = None
    onsetString: str | None = None
    recordedDate: str | None = None
    note: list[_Annotation] = Field(default_factory=list)


class _Attachment(_Fhir):
    contentType: str | None = None
    data: str | None = None
    url: str | None = None
    size: int | str | None = None  # unsignedInt in R4, integer64 (a JSON string) in R5
    hash: str | None = None
    title: str | None = None
    creation: str | None = None


class _Media(_Fhir):
    subject: _Reference | None = None
    createdDateTime: str | None = None
    content: _Attachment


class _DocumentContent(_Fhir):
    attachment: _Attachment


class _DocumentReference(_Fhir):
    subject: _Reference | None = None
    date: str | None = None
    description: str | None = None
    content: list[_DocumentContent] = Field(min_length=1)


class _BundleEntry(_Fhir):
    fullUrl: str | None = None
    resource: dict[str, Any] | None = None


class _Bundle(_Fhir):
    resourceType: Literal["Bundle"]
    type: str
    entry: list[_BundleEntry] = Field(default_factory=list)


_ModelT = TypeVar("_ModelT", bound=_Fhir)


def _location(loc: Sequence[int | str]) -> str:
    """Pydantic's ``("content", 0, "attachment")`` as ``content[0].attachment``."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text


def _validate(model: type[_ModelT], raw: Any, where: str) -> _ModelT:
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise FhirError(f"{where}{_location(first['loc'])}: {first['msg']}") from exc


# --------------------------------------------------------------------------------------
# FHIR primitive types
# --------------------------------------------------------------------------------------

_FHIR_DATE = re.compile(r"(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?")
_FHIR_DATETIME = re.compile(
    r"\d{4}(?:-\d{2}(?:-\d{2}(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2}))?)?)?"
)


def _parse_date(text: str, where: str) -> date | None:
    """A FHIR ``date``; a partial one (``1961`` or ``1961-04``) gives None."""
    match = _FHIR_DATE.fullmatch(text)
    if match is None:
        raise FhirError(f"{where}: not a FHIR date: {text!r}")
    if match[3] is None:
        return None
    try:
        return date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError as exc:
        raise FhirError(f"{where}: not a valid date: {text!r}") from exc


def _parse_datetime(text: str | None, where: str) -> datetime | None:
    """A FHIR ``dateTime``/``instant``; only a full one, with its time zone, gives a value.

    A bare date or a partial one cannot be placed on the clock without guessing a zone,
    so it gives None (the original text is kept in the entry's fields).
    """
    if text is None:
        return None
    if not _FHIR_DATETIME.fullmatch(text):
        raise FhirError(f"{where}: not a FHIR dateTime: {text!r}")
    if "T" not in text:
        _parse_date(text, where)  # still reject 2025-02-30
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError as exc:
        raise FhirError(f"{where}: not a valid dateTime: {text!r}") from exc


def _decode_base64(text: str, where: str) -> bytes:
    """Strict base64 (FHIR allows whitespace between groups, nothing else)."""
    compact = "".join(text.split())
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise FhirError(f"{where}: not valid base64") from exc


def _max_base64_chars(max_bytes: int) -> int:
    return 4 * -(-max_bytes // 3)


# --------------------------------------------------------------------------------------
# Reading the bundle
# --------------------------------------------------------------------------------------


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in JSON")


def _load_json(raw: bytes) -> Any:
    if len(raw) > MAX_BUNDLE_BYTES:
        raise FhirError(f"bundle of {len(raw)} bytes exceeds {MAX_BUNDLE_BYTES} bytes")
    try:
        return json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise FhirError(f"not JSON: {exc}") from exc
    except RecursionError as exc:
        raise FhirError("not JSON: nested too deeply") from exc


def _load_bundle(raw: bytes) -> _Bundle:
    document = _load_json(raw)
    if not isinstance(document, dict) or document.get("resourceType") != "Bundle":
        found = document.get("resourceType") if isinstance(document, dict) else None
        raise FhirError(f"not a FHIR Bundle (resourceType {found!r})")
    entries = document.get("entry")
    if isinstance(entries, list) and len(entries) > MAX_ENTRIES:
        raise FhirError(f"bundle has {len(entries)} entries, more than {MAX_ENTRIES}")
    bundle = _validate(_Bundle, document, "Bundle")
    if bundle.type not in BUNDLE_TYPES:
        raise FhirError(f"Bundle.type: {bundle.type!r} is not one of {sorted(BUNDLE_TYPES)}")
    return bundle


def _resource_type(entry: _BundleEntry, index: int) -> str | None:
    if entry.resource is None:
        return None
    kind = entry.resource.get("resourceType")
    if not isinstance(kind, str):
        raise FhirError(f"entry[{index}].resource.resourceType: missing or not a string")
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
            skipped.append(f"{where}: no id and no fullUrl, nothing can refer to it")
            return
        refs = {r for r in (entry.fullUrl, resource.id and f"Patient/{resource.id}") if r}
        clash = sorted(r for r in refs if r in self._by_ref)
        if clash:
            raise FhirError(f"{where}.id: {clash[0]!r} appears twice in the bundle")
        birth = resource.birthDate
        patient = FhirPatient(
            fhir_id=fhir_id,
            identifier=_identifier_value(resource.identifier),
            name=_display_name(resource.name),
            birth_date=_parse_date(birth, f"{where}.birthDate") if birth else None,
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
        skipped.append(f"{where}: subject {_ref_text(obs.subject)} is not a patient of the bundle")
        return None
    raw = entry.resource or {}
    for unread in _unread_value_types(raw):
        skipped.append(f"{where}.{unread}: value type not imported")
    fields: dict[str, Any] = {"code": _coding_fields(obs.code), "status": obs.status}
    fields.update(_value_fields(obs, where))
    categories = [c for c in (_concept_label(c) for c in obs.category) if c]
    if categories:
        fields["category"] = categories
    components = [_component(c, f"{where}.component[{i}]") for i, c in enumerate(obs.component)]
    if components:
        fields["components"] = components
    _put_optional(fields, note=_notes(obs.note), fhir_id=obs.id)
    field, effective = _effective(obs)
    recorded = _parse_datetime(effective, f"{where}.{field}")
    if effective is not None:
        fields["effective"] = effective
    if recorded is None and obs.issued is not None:
        recorded = _parse_datetime(obs.issued, f"{where}.issued")
    return FhirEntry(patient.fhir_id, "Observation", recorded, fields)


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
        skipped.append(f"{where}: subject {_ref_text(cond.subject)} is not a patient of the bundle")
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


def _ref_text(reference: _Reference | None) -> str:
    return repr(reference.reference) if reference and reference.reference else "(none)"


@dataclass(frozen=True)
class _AttachmentSpec:
    """One attachment to read, with what its resource adds around it."""

    where: str
    source: Literal["Media", "DocumentReference"]
    attachment: _Attachment
    patient: FhirPatient
    fallback_created: datetime | None
    fallback_title: str | None


def _declared_size(size: int | str | None, where: str) -> int | None:
    if size is None or isinstance(size, int):
        return size
    if not size.isdigit():
        raise FhirError(f"{where}.size: not an integer: {size!r}")
    return int(size)


def _read_attachment(
    spec: _AttachmentSpec, max_bytes: int, skipped: list[str]
) -> FhirAttachment | None:
    att, where = spec.attachment, spec.where
    if att.data is None:
        reason = "given only by url, not fetched" if att.url else "has no data"
        skipped.append(f"{where}: attachment {reason}")
        return None
    limit = _max_base64_chars(max_bytes)
    if len(att.data) > limit and len("".join(att.data.split())) > limit:
        raise FhirError(f"{where}.data: attachment larger than {max_bytes} bytes")
    data = _decode_base64(att.data, f"{where}.data")
    if len(data) > max_bytes:
        raise FhirError(f"{where}.data: attachment larger than {max_bytes} bytes")
    declared = _declared_size(att.size, where)
    if declared is not None and declared != len(data):
        raise FhirError(f"{where}.size: says {declared} bytes, the data has {len(data)}")
    if att.hash is not None:
        expected = _decode_base64(att.hash, f"{where}.hash")
        if expected != hashlib.sha1(data).digest():
            raise FhirError(f"{where}.hash: does not match the SHA-1 of the data")
    return FhirAttachment(
        patient_ref=spec.patient.fhir_id,
        source=spec.source,
        content_type=att.contentType,
        title=att.title or spec.fallback_title,
        data=data,
        created=_parse_datetime(att.creation, f"{where}.creation") or spec.fallback_created,
    )


def _media(
    entry: _BundleEntry, index: int, patients: _Patients, skipped: list[str]
) -> list[_AttachmentSpec]:
    where = f"entry[{index}] Media"
    media = _validate(_Media, entry.resource, where)
    patient = patients.resolve(media.subject)
    if patient is None:
        skipped.append(
            f"{where}: subject {_ref_text(media.subject)} is not a patient of the bundle"
        )
        return []
    created = _parse_datetime(media.createdDateTime, f"{where}.createdDateTime")
    return [_AttachmentSpec(f"{where}.content", "Media", media.content, patient, created, None)]


def _document_reference(
    entry: _BundleEntry, index: int, patients: _Patients, skipped: list[str]
) -> list[_AttachmentSpec]:
    where = f"entry[{index}] DocumentReference"
    doc = _validate(_DocumentReference, entry.resource, where)
    patient = patients.resolve(doc.subject)
    if patient is None:
        skipped.append(f"{where}: subject {_ref_text(doc.subject)} is not a patient of the bundle")
        return []
    created = _parse_datetime(doc.date, f"{where}.date")
    return [
        _AttachmentSpec(
            f"{where}.content[{i}].attachment",
            "DocumentReference",
            item.attachment,
            patient,
            created,
            doc.description,
        )
        for i, item in enumerate(doc.content)
    ]


def parse_bundle(raw: bytes, *, max_attachment_bytes: int = 50 * 1024 * 1024) -> FhirImport:
    """Read a FHIR R4 Bundle (JSON bytes) into patients, entries and attachments.

    Patients are read first, so other entries may refer to a patient listed after them.
    Raises :class:`FhirError` on anything malformed; skips, with a reason, what is
    well-formed but not imported.
    """
    bundle = _load_bundle(raw)
    skipped: list[str] = []
    kinds = [_resource_type(entry, i) for i, entry in enumerate(bundle.entry)]
    patients = _Patients()
    for index, (entry, kind) in enumerate(zip(bundle.entry, kinds, strict=True)):
        if kind == "Patient":
            patients.add(entry, index, skipped)
    entries: list[FhirEntry] = []
    attachments: list[FhirAttachment] = []
    for index, (entry, kind) in enumerate(zip(bundle.entry, kinds, strict=True)):
        if kind == "Patient":
            continue
        if kind in ("Observation", "Condition"):
            read_entry = _observation if kind == "Observation" else _condition
            found = read_entry(entry, index, patients, skipped)
            entries.extend([found] if found else [])
        elif kind in ("Media", "DocumentReference"):
            read_specs = _media if kind == "Media" else _document_reference
            for spec in read_specs(entry, index, patients, skipped):
                attachment = _read_attachment(spec, max_attachment_bytes, skipped)
                attachments.extend([attachment] if attachment else [])
        else:
            skipped.append(f"entry[{index}] {kind or '(no resource)'}: not imported")
    _LOGGER.info(
        "FHIR bundle: %s patients, %s entries, %s attachments, %s skipped",
        len(patients.patients),
        len(entries),
        len(attachments),
        len(skipped),
    )
    return FhirImport(patients.patients, entries, attachments, skipped)

"""The subset of FHIR R4 that is read (strict pydantic models) and its primitive types."""

from __future__ import annotations

import base64
import binascii
import logging
import re
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from clinicam.i18n import _
from server.records.fhir.results import FhirError

_LOGGER = logging.getLogger(__name__)


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


class _Extension(_Fhir):
    url: str
    valueCode: str | None = None
    valueString: str | None = None


def _extension_value(extensions: Sequence[_Extension], url: str) -> str | None:
    """The first code or string value of the extension ``url``, if present."""
    for ext in extensions:
        if ext.url == url:
            return ext.valueCode if ext.valueCode is not None else ext.valueString
    return None


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
    gender: str | None = None


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
    extension: list[_Extension] = Field(default_factory=list)
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
    extension: list[_Extension] = Field(default_factory=list)
    subject: _Reference | None = None
    createdDateTime: str | None = None
    content: _Attachment


class _DocumentContent(_Fhir):
    attachment: _Attachment


class _DocumentReference(_Fhir):
    extension: list[_Extension] = Field(default_factory=list)
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
        raise FhirError(
            _(
                "{where}: {problem}",
                where=f"{where}{_location(first['loc'])}",
                problem=first["msg"],
            )
        ) from exc


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
        raise FhirError(_("{where}: not a FHIR date: {text}", where=where, text=repr(text)))
    if match[3] is None:
        return None
    try:
        return date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError as exc:
        raise FhirError(
            _("{where}: not a valid date: {text}", where=where, text=repr(text))
        ) from exc


def _parse_datetime(text: str | None, where: str) -> datetime | None:
    """A FHIR ``dateTime``/``instant``; only a full one, with its time zone, gives a value.

    A bare date or a partial one cannot be placed on the clock without guessing a zone,
    so it gives None (the original text is kept in the entry's fields).
    """
    if text is None:
        return None
    if not _FHIR_DATETIME.fullmatch(text):
        raise FhirError(_("{where}: not a FHIR dateTime: {text}", where=where, text=repr(text)))
    if "T" not in text:
        _parse_date(text, where)  # still reject 2025-02-30
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError as exc:
        raise FhirError(
            _("{where}: not a valid dateTime: {text}", where=where, text=repr(text))
        ) from exc


def _decode_base64(text: str, where: str) -> bytes:
    """Strict base64 (FHIR allows whitespace between groups, nothing else)."""
    compact = "".join(text.split())
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise FhirError(_("{where}: not valid base64", where=where)) from exc


def _max_base64_chars(max_bytes: int) -> int:
    return 4 * -(-max_bytes // 3)

"""Media and DocumentReference attachments: inline data decoded and checked."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from clinicam.i18n import _
from server.records.fhir.reading import _not_a_patient, _Patients, _ref_text
from server.records.fhir.resources import (
    _Attachment,
    _BundleEntry,
    _decode_base64,
    _DocumentReference,
    _extension_value,
    _max_base64_chars,
    _Media,
    _parse_datetime,
    _validate,
)
from server.records.fhir.results import FhirAttachment, FhirError, FhirPatient
from server.records.fhir.systems import CATEGORY_EXTENSION

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class _AttachmentSpec:
    """One attachment to read, with what its resource adds around it."""

    where: str
    source: Literal["Media", "DocumentReference"]
    attachment: _Attachment
    patient: FhirPatient
    fallback_created: datetime | None
    fallback_title: str | None
    category: str | None = None


def _declared_size(size: int | str | None, where: str) -> int | None:
    if size is None or isinstance(size, int):
        return size
    if not size.isdigit():
        raise FhirError(_("{where}.size: not an integer: {size}", where=where, size=repr(size)))
    return int(size)


def _read_attachment(
    spec: _AttachmentSpec, max_bytes: int, skipped: list[str]
) -> FhirAttachment | None:
    att, where = spec.attachment, spec.where
    if att.data is None:
        if att.url:
            skipped.append(_("{where}: attachment given only by url, not fetched", where=where))
        else:
            skipped.append(_("{where}: attachment has no data", where=where))
        return None
    limit = _max_base64_chars(max_bytes)
    too_large = _(
        "{where}.data: attachment larger than {limit} bytes", where=where, limit=max_bytes
    )
    if len(att.data) > limit and len("".join(att.data.split())) > limit:
        raise FhirError(too_large)
    data = _decode_base64(att.data, f"{where}.data")
    if len(data) > max_bytes:
        raise FhirError(too_large)
    declared = _declared_size(att.size, where)
    if declared is not None and declared != len(data):
        raise FhirError(
            _(
                "{where}.size: says {declared} bytes, the data has {size}",
                where=where,
                declared=declared,
                size=len(data),
            )
        )
    if att.hash is not None:
        expected = _decode_base64(att.hash, f"{where}.hash")
        if expected != hashlib.sha1(data).digest():
            raise FhirError(_("{where}.hash: does not match the SHA-1 of the data", where=where))
    return FhirAttachment(
        patient_ref=spec.patient.fhir_id,
        source=spec.source,
        content_type=att.contentType,
        title=att.title or spec.fallback_title,
        data=data,
        created=_parse_datetime(att.creation, f"{where}.creation") or spec.fallback_created,
        category=spec.category,
    )


def _media(
    entry: _BundleEntry, index: int, patients: _Patients, skipped: list[str]
) -> list[_AttachmentSpec]:
    where = f"entry[{index}] Media"
    media = _validate(_Media, entry.resource, where)
    patient = patients.resolve(media.subject)
    if patient is None:
        skipped.append(_not_a_patient(where, _ref_text(media.subject)))
        return []
    created = _parse_datetime(media.createdDateTime, f"{where}.createdDateTime")
    category = _extension_value(media.extension, CATEGORY_EXTENSION)
    return [
        _AttachmentSpec(
            f"{where}.content", "Media", media.content, patient, created, None, category
        )
    ]


def _document_reference(
    entry: _BundleEntry, index: int, patients: _Patients, skipped: list[str]
) -> list[_AttachmentSpec]:
    where = f"entry[{index}] DocumentReference"
    doc = _validate(_DocumentReference, entry.resource, where)
    patient = patients.resolve(doc.subject)
    if patient is None:
        skipped.append(_not_a_patient(where, _ref_text(doc.subject)))
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
            _extension_value(doc.extension, CATEGORY_EXTENSION),
        )
        for i, item in enumerate(doc.content)
    ]

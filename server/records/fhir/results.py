"""What a FHIR import produces (plain dataclasses), its limits and its error."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final, Literal

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
    sex: str | None = None  # FHIR gender: female, male, other, unknown


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
    verbatim: bool = False  # Clinicam's own entry (``emr-fields``): file the fields as they are


@dataclass(frozen=True)
class FhirAttachment:
    """An inline attachment of a Media or DocumentReference, to become a file upload."""

    patient_ref: str
    source: Literal["Media", "DocumentReference"]
    content_type: str | None
    title: str | None
    data: bytes
    created: datetime | None
    category: str | None = None  # Clinicam's ``record-category`` extension, if given


@dataclass(frozen=True)
class FhirImport:
    """Everything imported, and a reason for each thing that was not."""

    patients: list[FhirPatient]
    entries: list[FhirEntry]
    attachments: list[FhirAttachment]
    skipped: list[str]

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

from server.records.fhir.parse import parse_bundle
from server.records.fhir.results import (
    BUNDLE_TYPES,
    MAX_BUNDLE_BYTES,
    MAX_ENTRIES,
    FhirAttachment,
    FhirEntry,
    FhirError,
    FhirImport,
    FhirPatient,
)

__all__ = [
    "BUNDLE_TYPES",
    "MAX_BUNDLE_BYTES",
    "MAX_ENTRIES",
    "FhirAttachment",
    "FhirEntry",
    "FhirError",
    "FhirImport",
    "FhirPatient",
    "parse_bundle",
]

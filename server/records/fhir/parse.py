"""One Bundle parsed into patients, EMR entries and attachments."""

from __future__ import annotations

import logging

from clinicam.i18n import _
from server.records.fhir.attachments import _document_reference, _media, _read_attachment
from server.records.fhir.mapping import _condition, _observation
from server.records.fhir.reading import _load_bundle, _Patients, _resource_type
from server.records.fhir.results import FhirAttachment, FhirEntry, FhirImport

_LOGGER = logging.getLogger(__name__)


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
            skipped.append(
                _("{where}: not imported", where=f"entry[{index}] {kind or '(no resource)'}")
            )
    _LOGGER.info(
        "FHIR bundle: %s patients, %s entries, %s attachments, %s skipped",
        len(patients.patients),
        len(entries),
        len(attachments),
        len(skipped),
    )
    return FhirImport(patients.patients, entries, attachments, skipped)

"""Clinicam's own FHIR systems and extensions: written by the export, read by the import."""

from __future__ import annotations

from typing import Final

SYSTEM_BASE: Final = "https://clinicam.org/fhir"
PATIENT_SYSTEM: Final = f"{SYSTEM_BASE}/patient-id"
PSEUDONYM_SYSTEM: Final = f"{SYSTEM_BASE}/pseudonym"
RECORD_SYSTEM: Final = f"{SYSTEM_BASE}/record"
BLOB_SYSTEM: Final = f"{SYSTEM_BASE}/blob-sha256"
USER_SYSTEM: Final = f"{SYSTEM_BASE}/user"
# On a Media or DocumentReference: the record category the file was filed as.
CATEGORY_EXTENSION: Final = f"{SYSTEM_BASE}/StructureDefinition/record-category"
# On an Observation: the EMR entry's fields, verbatim, as a JSON object.
EMR_FIELDS_EXTENSION: Final = f"{SYSTEM_BASE}/StructureDefinition/emr-fields"

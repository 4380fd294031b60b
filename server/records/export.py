"""De-identified export of one patient's records (R15), checked before it leaves.

The export is a ZIP: DICOM per PS3.15's basic profile (dates shifted consistently),
photos and scanned pages re-encoded from pixels only, EMR entries with identity keys
dropped and identifiers and dates scrubbed, and a manifest with the pseudonymous
patient ID. Voice notes (a voice identifies a person) and PDF documents (text that
cannot be cleaned reliably) are left out and listed as such. Before the ZIP is
offered, every member is scanned for the patient's name and identifiers; any hit
aborts the export.
"""

from __future__ import annotations

import json
import logging
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from clinicam.i18n import _
from server.records.deid import (
    Pseudonymizer,
    deidentify_dicom,
    deidentify_emr,
    scan_for_identifiers,
    strip_image_metadata,
)
from server.records.models import Patient
from server.records.store import EMR, RecordStore

_LOGGER = logging.getLogger(__name__)


class ExportLeak(Exception):
    """The self-check found an identifier in the de-identified output: nothing exported."""


@dataclass
class ExportResult:
    path: Path
    pseudonym: str
    files: int
    left_out: list[str] = field(default_factory=list)


def _identifiers(patient: Patient) -> list[str]:
    """What must not appear: the identifier and the full name (also as DICOM Last^First).

    Single name words are redacted from EMR text by :func:`deidentify_emr`, but are not
    searched for on their own here: a word like "Patient" in a name would match the
    de-identification method text that DICOM requires.
    """
    return [value for value in (patient.external_id, patient.display_name) if value]


def build_export(
    session: Session, store: RecordStore, patient: Patient, folder: Path
) -> ExportResult:
    """Write the de-identified ZIP into ``folder``; :class:`ExportLeak` if the check fails."""
    pseudo = Pseudonymizer()
    pseudonym = pseudo.pseudonym("patient", patient.external_id)
    needles = _identifiers(patient)
    listing = store.listing(session, patient.id)
    members: dict[str, bytes] = {}
    left_out: list[str] = []
    for category, rows in listing.items():
        for row in rows:
            name = f"{category}/{pseudo.pseudonym('record', f'{category}:{row.id}')}"
            if category == EMR:
                fields = deidentify_emr(row.fields, pseudo, identifiers=needles)
                recorded = pseudo.shift_date(row.recorded_at.date()).isoformat()
                members[name + ".json"] = json.dumps(
                    {"recorded_on": recorded, "fields": fields}, indent=1
                ).encode()
                continue
            with store.blobs.open(row.blob_sha256) as stream:
                data = stream.read()
            if category == "ct_image":
                members[name + ".dcm"] = deidentify_dicom(data, pseudo, patient_pseudonym=pseudonym)
            elif str(row.media_type).startswith("image/"):
                cleaned, media_type = strip_image_metadata(data)
                members[name + (".jpg" if media_type == "image/jpeg" else ".png")] = cleaned
            else:
                left_out.append(f"{category} {row.id} ({row.media_type}): not de-identifiable")
    manifest: dict[str, Any] = {
        "patient": pseudonym,
        "profile": "DICOM PS3.15 E.1 basic profile, retain longitudinal (modified dates)",
        "files": sorted(members),
        "left_out": left_out,
    }
    members["manifest.json"] = json.dumps(manifest, indent=1).encode()
    for member, data in members.items():
        found = scan_for_identifiers(data, needles)
        if found:
            _LOGGER.error("export of patient %d stopped: identifier in %s", patient.id, member)
            raise ExportLeak(
                _(
                    "de-identification self-check failed in {member}; nothing exported",
                    member=member,
                )
            )
    fd, name = tempfile.mkstemp(dir=folder, prefix="export-", suffix=".zip")
    path = Path(name)
    try:
        with open(fd, "wb") as raw, zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED) as archive:
            for member, data in sorted(members.items()):
                archive.writestr(member, data)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return ExportResult(path, pseudonym, len(members), left_out)

"""Exporting a retrain's cases (R9, R15): consent checked at export, de-identified.

A case is a patient's newest confirmed diagnosis (the label) and all of the patient's
stored course data. Training consent is checked when the cases are counted *and
again here, in the transaction that reads the records*: a patient who withdrew in
between exports nothing. What leaves the clinical context for the training process is
de-identified as the consent text promises (EMR fields as in the patient export,
DICOM by the basic profile, images re-encoded from their pixels alone; a voice note
identifies its speaker and is left out), and a consent manifest (``consent.json``,
:mod:`models.consent`) lists the patients by pseudonym — without it the offline
training tools refuse the cases. The internal patient ids stay on the server: they
are what the model registry's lineage records (``model_training_patients``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from server.access.consent import has_consent
from server.access.models import CONSENT_TRAINING
from server.db import Database, utcnow
from server.records.deid.dicom import deidentify_dicom
from server.records.deid.emr import deidentify_emr
from server.records.deid.photos import strip_image_metadata
from server.records.deid.pseudonyms import Pseudonymizer
from server.records.models import Patient
from server.records.store import RecordStore
from server.relevance.course import CourseItem, course_items
from server.relevance.learning import LabelledCase

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExportedPatient:
    """One patient whose items went into the export (internal id: server side only)."""

    patient_id: int
    pseudonym: str
    label: str
    items: int


@dataclass
class CaseExport:
    """What an export wrote: per patient, and what was withheld and why."""

    checked_at: datetime
    patients: list[ExportedPatient] = field(default_factory=list)
    withdrawn: list[int] = field(default_factory=list)  # consent no longer holds
    left_out: list[str] = field(default_factory=list)

    @property
    def items(self) -> int:
        return sum(p.items for p in self.patients)

    def lineage(self) -> list[dict[str, Any]]:
        """What the registry keeps (JSON-ready)."""
        return [
            {"patient_id": p.patient_id, "label": p.label, "items": p.items} for p in self.patients
        ]


def _deidentified(
    item: CourseItem, data: bytes, pseudo: Pseudonymizer, pseudonym: str
) -> tuple[bytes, str]:
    """The file as it may leave (bytes, suffix); ValueError if it cannot be cleaned."""
    if item.category == "ct_image":
        return deidentify_dicom(data, pseudo, patient_pseudonym=pseudonym), ".dcm"
    if item.category in ("clinical_photo", "record_scan"):
        cleaned, media_type = strip_image_metadata(data)
        return cleaned, ".jpg" if media_type == "image/jpeg" else ".png"
    raise ValueError("a voice recording identifies its speaker; not de-identifiable")


def _export_patient(
    session: Session,
    store: RecordStore,
    case: LabelledCase,
    folder: Path,
    pseudo: Pseudonymizer,
    out: CaseExport,
) -> None:
    from models.dataset import add_item

    patient = session.get(Patient, case.patient_id)
    if patient is None:
        return
    pseudonym = pseudo.pseudonym("P", patient.external_id)
    needles = [v for v in (patient.external_id, patient.display_name) if v]
    count = 0
    for item in course_items(session, store, case.patient_id):
        if item.fields is not None:
            add_item(
                folder,
                item.category,
                case.label,
                deidentify_emr(item.fields, pseudo, identifiers=needles),
            )
            count += 1
            continue
        with store.blobs.open(item.sha256 or "") as stream:
            data = stream.read()
        try:
            cleaned, suffix = _deidentified(item, data, pseudo, pseudonym)
        except ValueError as exc:
            out.left_out.append(f"{pseudonym} {item.category} {item.record_id}: {exc}")
            continue
        add_item(folder, item.category, case.label, cleaned, suffix)
        count += 1
    if count:
        out.patients.append(ExportedPatient(case.patient_id, pseudonym, case.label, count))


def export_cases(
    database: Database, store: RecordStore, cases: list[LabelledCase], folder: Path
) -> CaseExport:
    """Every case whose training consent holds now, de-identified, with its manifest."""
    from models.consent import ConsentManifest, ManifestPatient

    out = CaseExport(checked_at=utcnow())
    pseudo = Pseudonymizer()
    with database.session() as session:
        for case in cases:
            if not has_consent(session, case.patient_id, CONSENT_TRAINING):
                _LOGGER.info("patient %d withdrew training consent: not exported", case.patient_id)
                out.withdrawn.append(case.patient_id)
                continue
            _export_patient(session, store, case, folder, pseudo, out)
    manifest = ConsentManifest(
        checked_at=out.checked_at.isoformat(timespec="seconds"),
        patients=tuple(ManifestPatient(p.pseudonym, p.label, p.items) for p in out.patients),
        left_out=tuple(out.left_out),
    )
    manifest.write(folder)
    return out

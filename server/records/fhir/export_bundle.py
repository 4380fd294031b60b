"""A patient's complete record as one FHIR R4 Bundle (O8: FHIR out).

The bundle is a ``document``: its first entry is a Composition whose sections list
every other entry by category (photos, scans, CT, voice notes, EMR entries, and what
other domains contribute: consultations as Encounters, consents, confirmed
diagnoses…), then the Patient, the resources, and one Provenance per record saying
who created it and when (from the audit trail's ``record.create`` entry, else from
the row). A document rather than a ``collection``: a receiving system (an IPS-style
patient summary import, a FHIR server's ``POST /Bundle``) finds in the Composition
what the bundle is, whom it is about and where each part is, and the bundle has an
identifier and a timestamp; Clinicam's importer reads both kinds.

Every resource is built with the ``fhir.resources`` R4B models (R4B is R4 with a few
additions; none of them is used here), so it is validated as it is made, and the
serialised JSON is parsed back into a Bundle before it is returned.

Extending it: :class:`FhirBundleBuilder` keeps an ordered registry of contributors
(:data:`~server.records.fhir.export_context.Contributor`), one per section.
:meth:`FhirBundleBuilder.register` adds one: another domain (the consultations, the
consents, the diagnoses, a signed report) passes in a function that returns its
resources for the patient; the builder adds them to the Composition, gives each a
Provenance, and de-identifies nothing for it: the contributor uses the context's
helpers, which already do.

De-identified (``pseudonymizer`` given): the Patient is its pseudonym and sex only;
people are pseudonyms, dates are shifted, free text is scrubbed; then every file and
the JSON itself are scanned for the patient's name, identifier and birth date, and any
hit raises :class:`~server.records.export.ExportLeak`: nothing leaves.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.composition import Composition
from fhir.resources.R4B.patient import Patient as FhirPatient
from fhir.resources.R4B.provenance import Provenance
from sqlalchemy import select
from sqlalchemy.orm import Session

from clinicam.i18n import _
from server.audit.log import AuditEntry
from server.records.deid import Pseudonymizer, scan_for_identifiers
from server.records.export import ExportLeak
from server.records.fhir.export_context import (
    Contribution,
    Contributor,
    ExportContext,
    coding,
)
from server.records.fhir.export_records import RECORD_CONTRIBUTORS
from server.records.fhir.results import MAX_BUNDLE_BYTES
from server.records.fhir.systems import PATIENT_SYSTEM, PSEUDONYM_SYSTEM
from server.records.models import Patient
from server.records.store import RecordStore

_LOGGER = logging.getLogger(__name__)

FHIR_JSON: Final = "application/fhir+json"
# Files inline in one bundle: base64 grows them by 4/3, and the importer reads bundles
# of up to MAX_BUNDLE_BYTES; what does not fit keeps its resource without data.
MAX_INLINE_BYTES: Final = MAX_BUNDLE_BYTES * 3 // 4 - 8 * 1024 * 1024
_GENDERS: Final = ("female", "male", "other", "unknown")  # the registry's and FHIR's
_PROVENANCE_ACTIVITY: Final = "http://terminology.hl7.org/CodeSystem/v3-DataOperation"
_PROVENANCE_ROLE: Final = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
SECTION_TITLES: Final = {  # i18n: not for people (FHIR section titles, machine-read)
    "clinical_photo": "Clinical photos",
    "record_scan": "Scanned records",
    "ct_image": "CT images",
    "voice_note": "Voice notes",
    "emr_entry": "EMR entries",
}


@dataclass(frozen=True)
class FhirExport:
    """A bundle as JSON bytes, what it holds per section, and what was left out."""

    data: bytes
    patient: str  # the identifier, or the pseudonym when de-identified
    deidentified: bool
    counts: dict[str, int]
    left_out: list[str] = field(default_factory=list)


def _needles(patient: Patient) -> list[str]:
    found = [patient.external_id, patient.display_name]
    if patient.birth_date is not None:
        found.append(patient.birth_date.isoformat())
    return [value for value in found if value]


def _patient_resource(ctx: ExportContext) -> FhirPatient:
    patient = ctx.patient
    resource: dict[str, Any] = {}
    if patient.sex in _GENDERS:
        resource["gender"] = patient.sex
    if ctx.pseudo is not None:
        resource["identifier"] = [
            {"system": PSEUDONYM_SYSTEM, "value": ctx.key("patient", patient.external_id)}
        ]
        return FhirPatient.model_validate(resource)
    mr = coding("http://terminology.hl7.org/CodeSystem/v2-0203", "MR", "Medical record number")
    resource["identifier"] = [
        {"use": "official", "type": mr, "system": PATIENT_SYSTEM, "value": patient.external_id}
    ]
    resource["name"] = [{"use": "official", "text": patient.display_name}]
    if patient.birth_date is not None:
        resource["birthDate"] = patient.birth_date.isoformat()
    return FhirPatient.model_validate(resource)


def _created_entries(session: Session, patient: Patient) -> dict[tuple[str, int], AuditEntry]:
    """Each record's ``record.create`` audit entry, by (category, id)."""
    query = select(AuditEntry).where(
        AuditEntry.action == "record.create",
        AuditEntry.target == f"patient:{patient.external_id}",
    )
    out: dict[tuple[str, int], AuditEntry] = {}
    for entry in session.scalars(query):
        detail = entry.detail or {}
        if isinstance(detail.get("category"), str) and isinstance(detail.get("id"), int):
            out.setdefault((detail["category"], detail["id"]), entry)
    return out


def _provenance(
    ctx: ExportContext, item: Contribution, audit: AuditEntry | None
) -> Provenance | None:
    who = audit.actor if audit is not None else item.created_by
    at = audit.at if audit is not None else item.created_at
    agent = ctx.person(who)
    if agent is None or at is None:
        return None
    resource: dict[str, Any] = {
        "target": [{"reference": item.ref}],
        "recorded": ctx.when(at),
        "activity": coding(_PROVENANCE_ACTIVITY, "CREATE", "create"),
        "agent": [{"type": coding(_PROVENANCE_ROLE, "author", "Author"), "who": agent}],
    }
    if audit is not None and not ctx.deidentified:
        resource["policy"] = [f"urn:clinicam:audit:{audit.seq}:{audit.hash}"]
    return Provenance.model_validate(resource)


class FhirBundleBuilder:
    """Builds the Bundle from an ordered registry of per-section contributors."""

    def __init__(
        self,
        store: RecordStore,
        *,
        max_attachment_bytes: int | None = None,
        max_inline_bytes: int = MAX_INLINE_BYTES,
    ) -> None:
        self._store = store
        self._max_attachment_bytes = max_attachment_bytes or store.max_bytes
        self._max_inline_bytes = max_inline_bytes
        self._contributors: dict[str, Contributor] = dict(RECORD_CONTRIBUTORS)
        self._titles: dict[str, str] = dict(SECTION_TITLES)

    def register(
        self,
        section: str,
        contributor: Contributor,
        *,
        title: str | None = None,
        first: bool = False,
    ) -> None:
        """Add (or replace) the contributor of ``section``, after the others or ``first``
        (run before the records, so they can link to its resources with
        :meth:`ExportContext.known_ref`, as snapshots link to their consultation).

        ``title`` is the Composition section's title (the section's key if none)."""
        self._contributors.pop(section, None)
        if first:
            self._contributors = {section: contributor, **self._contributors}
        else:
            self._contributors[section] = contributor
        if title:
            self._titles[section] = title

    @property
    def sections(self) -> list[str]:
        return list(self._contributors)

    def build(
        self, session: Session, patient: Patient, *, pseudonymizer: Pseudonymizer | None = None
    ) -> FhirExport:
        """The patient's bundle (sync; run it off the event loop), validated and checked."""
        ctx = ExportContext(
            session,
            patient,
            self._store.blobs,
            self._max_attachment_bytes,
            self._max_inline_bytes,
            pseudonymizer,
            _needles(patient),
        )
        patient_resource = _patient_resource(ctx)
        items: list[Contribution] = []
        for contribute in self._contributors.values():
            items.extend(contribute(ctx))
        audit = _created_entries(session, patient)
        provenance = []
        for item in items:
            made = _provenance(ctx, item, audit.get(item.record) if item.record else None)
            if made is not None:
                provenance.append((ctx.ref("Provenance", item.ref), made))
        composition = self._composition(ctx, items)
        entries = [
            (ctx.ref("Composition", "record"), composition),
            (ctx.patient_ref, patient_resource),
            *((item.ref, item.resource) for item in items),
            *provenance,
        ]
        bundle_id = f"urn:uuid:{uuid.uuid4()}"
        bundle = Bundle.model_validate(
            {
                "identifier": {"system": "urn:ietf:rfc:3986", "value": bundle_id},
                "type": "document",
                "timestamp": datetime.now(UTC).isoformat(),
                "entry": [{"fullUrl": ref, "resource": res} for ref, res in entries],
            }
        )
        data = bundle.model_dump_json(exclude_none=True).encode()
        Bundle.model_validate_json(data)  # what leaves must read back as a valid Bundle
        counts: dict[str, int] = {}
        for item in items:
            counts[item.section] = counts.get(item.section, 0) + 1
        counts["provenance"] = len(provenance)
        if ctx.deidentified:
            # The bundle's own random ids (urn:uuid) are left out of the scan: hex and
            # dashes would otherwise "contain" a short identifier such as F-0 by chance.
            scanned = data
            for generated in (*ctx.generated_refs(), bundle_id):
                scanned = scanned.replace(generated.encode(), b"urn:uuid:")
            _check_no_identifiers(patient, ctx.identifiers, [scanned, *ctx.attachments])
        label = ctx.key("patient", patient.external_id)
        return FhirExport(data, label, ctx.deidentified, counts, ctx.left_out)

    def _composition(self, ctx: ExportContext, items: list[Contribution]) -> Composition:
        by_section: dict[str, list[str]] = {}
        for item in items:
            by_section.setdefault(item.section, []).append(item.ref)
        sections = [
            {
                "title": self._titles.get(section, section),
                "code": {"text": section},
                "entry": [{"reference": ref} for ref in by_section[section]],
            }
            for section in self._contributors
            if section in by_section
        ]
        resource: dict[str, Any] = {
            "status": "final",
            "type": coding("http://loinc.org", "11503-0", "Medical records"),
            "subject": ctx.subject(),
            "date": ctx.when(datetime.now(UTC)),
            "author": [{"display": "Clinicam"}],
            "title": "Patient record",
        }
        if sections:
            resource["section"] = sections
        return Composition.model_validate(resource)


def _check_no_identifiers(patient: Patient, needles: list[str], blobs: Iterable[bytes]) -> None:
    for number, blob in enumerate(blobs):
        if scan_for_identifiers(blob, needles):
            where = "bundle" if number == 0 else f"attachment {number}"
            _LOGGER.error("FHIR export of patient %d stopped: identifier in %s", patient.id, where)
            raise ExportLeak(
                _(
                    "de-identification self-check failed in {member}; nothing exported",
                    member=where,
                )
            )

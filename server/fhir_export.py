"""The FHIR export's parts from other domains than the records, and the builder with them.

The records know nothing of consultations, consents or diagnoses (import-linter keeps
it so); this module, above those domains, gives the bundle builder
(:class:`server.records.fhir.export_bundle.FhirBundleBuilder`) one contributor each:

- ``consultation``: every consultation of the patient as an Encounter (states mapped
  to FHIR's, the chair and invited experts as participants, the reason);
- ``consent``: every recorded consent decision as a Consent (training → research,
  export → patient privacy; permit or deny);
- ``diagnosis``: every diagnosis an expert confirmed as a final DiagnosticReport,
  linked to its consultation's Encounter.

:func:`bundle_builder` is the one place the server and the CLI get the builder from;
a new part (the signed consultation report) is one more ``register`` line there.
"""

from __future__ import annotations

import logging
from typing import Any, Final

from fhir.resources.R4B.consent import Consent as FhirConsent
from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from fhir.resources.R4B.encounter import Encounter
from sqlalchemy import select

from server.access.models import CONSENT_EXPORT, CONSENT_TRAINING, Consent
from server.directory import models as directory
from server.records.fhir.export_bundle import FhirBundleBuilder
from server.records.fhir.export_context import Contribution, ExportContext, coding
from server.records.models import ConsultationReport
from server.records.store import REPORT, RecordStore
from server.relevance.models import Diagnosis
from server.reports.envelope import verify_envelope

_LOGGER = logging.getLogger(__name__)

CONSULTATION: Final = "consultation"
CONSENT: Final = "consent"
DIAGNOSIS: Final = "diagnosis"
_ENCOUNTER_STATUS: Final = {
    directory.REQUESTED: "planned",
    directory.SCHEDULED: "planned",
    directory.LIVE: "in-progress",
    directory.ENDED: "finished",
    directory.DECLINED: "cancelled",
    directory.CANCELLED: "cancelled",
    directory.NO_SHOW: "cancelled",
}
_ACT_CODE: Final = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
_PARTICIPATION: Final = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
_CONSENT_SCOPE: Final = "http://terminology.hl7.org/CodeSystem/consentscope"
_CONSENT_POLICY: Final = "http://terminology.hl7.org/CodeSystem/consentpolicycodes"
_PURPOSES: Final = {  # purpose → (scope, policy rule, what it covers)
    CONSENT_TRAINING: ("research", "hipaa-research", "Use of records to train decision support"),
    CONSENT_EXPORT: ("patient-privacy", "hipaa-auth", "De-identified export of records"),
}


def encounters(ctx: ExportContext) -> list[Contribution]:
    rows = ctx.session.scalars(
        select(directory.ConsultationRow)
        .where(directory.ConsultationRow.patient_id == ctx.patient.external_id)
        .order_by(directory.ConsultationRow.created_at)
    )
    out: list[Contribution] = []
    for row in rows:
        invited = ctx.session.scalars(
            select(directory.InvitationRow.username)
            .where(directory.InvitationRow.cid == row.cid)
            .order_by(directory.InvitationRow.username)
        )
        people = [(row.chair, "PPRF")] if row.chair else []
        people += [(name, "CON") for name in invited if name != row.chair]
        start = row.started_at or row.scheduled_start
        end = row.ended_at or (row.scheduled_end if row.started_at is None else None)
        resource: dict[str, Any] = {
            "identifier": [{"system": "urn:clinicam:consultation", "value": ctx.key("C", row.cid)}],
            "status": _ENCOUNTER_STATUS.get(row.state, "unknown"),
            "class": {"system": _ACT_CODE, "code": "VR", "display": "virtual"},
            "subject": ctx.subject(),
            "participant": [
                {"type": [coding(_PARTICIPATION, code)], "individual": ctx.person(name)}
                for name, code in people
            ],
        }
        if start is not None:
            resource["period"] = {"start": ctx.when(start), "end": ctx.when(end)}
        reason = ctx.text(" — ".join(t for t in (row.title, row.reason) if t))
        if reason:
            resource["reasonCode"] = [{"text": reason}]
        if not resource["participant"]:
            del resource["participant"]
        ref = ctx.ref("Encounter", row.cid)
        made = Encounter.model_validate(resource)
        out.append(Contribution(CONSULTATION, ref, made, row.requested_by, row.created_at))
    return out


def consents(ctx: ExportContext) -> list[Contribution]:
    rows = ctx.session.scalars(
        select(Consent).where(Consent.patient_id == ctx.patient.id).order_by(Consent.id)
    )
    out: list[Contribution] = []
    for row in rows:
        scope, rule, covers = _PURPOSES.get(row.purpose, ("patient-privacy", "hipaa-auth", ""))
        policy = coding(_CONSENT_POLICY, rule)
        if covers:
            policy["text"] = covers
        resource = {
            "status": "active",
            "scope": coding(_CONSENT_SCOPE, scope),
            "category": [coding("http://loinc.org", "59284-0", "Patient Consent")],
            "patient": ctx.subject(),
            "dateTime": ctx.when(row.recorded_at),
            "policyRule": policy,
            "provision": {
                "type": "permit" if row.granted else "deny",
                "purpose": [{"system": "urn:clinicam:consent-purpose", "code": row.purpose}],
            },
        }
        ref = ctx.ref("Consent", str(row.id))
        made = FhirConsent.model_validate(resource)
        out.append(Contribution(CONSENT, ref, made, row.recorded_by, row.recorded_at))
    return out


def diagnostic_reports(ctx: ExportContext) -> list[Contribution]:
    rows = ctx.session.scalars(
        select(Diagnosis).where(Diagnosis.patient_id == ctx.patient.id).order_by(Diagnosis.id)
    )
    out: list[Contribution] = []
    for row in rows:
        resource: dict[str, Any] = {
            "status": "final",
            "code": {"text": "Confirmed diagnosis"},
            "subject": ctx.subject(),
            "issued": ctx.when(row.created_at),
            "effectiveDateTime": ctx.when(row.created_at),
            "conclusionCode": [{"coding": [{"system": "urn:clinicam:label", "code": row.label}]}],
            "conclusion": ctx.text(" — ".join(t for t in (row.label, row.note) if t)),
        }
        performer = ctx.person(row.confirmed_by)
        if performer is not None:
            resource["performer"] = [performer]
        encounter = ctx.known_ref("Encounter", row.consultation_id or "")
        if encounter is not None:
            resource["encounter"] = {"reference": encounter}
        ref = ctx.ref("DiagnosticReport", str(row.id))
        made = DiagnosticReport.model_validate(resource)
        out.append(Contribution(DIAGNOSIS, ref, made, row.confirmed_by, row.created_at))
    return out


def bundle_builder(store: RecordStore) -> FhirBundleBuilder:
    """The builder with every part of a patient's record (server and CLI alike)."""
    builder = FhirBundleBuilder(store)
    builder.register(CONSULTATION, encounters, title="Consultations", first=True)
    builder.register(CONSENT, consents, title="Consents")
    builder.register(DIAGNOSIS, diagnostic_reports, title="Confirmed diagnoses")
    builder.register(REPORT, consultation_reports, title="Consultation reports")
    return builder


def consultation_reports(ctx: ExportContext) -> list[Contribution]:
    """Each consultation's latest signed report as a DiagnosticReport whose presented form
    is the signed envelope itself (so the signature travels and ``clinicam report verify``
    still checks it); a de-identified export leaves reports out (a signed text cannot be
    scrubbed without breaking its signature)."""
    rows = list(
        ctx.session.scalars(
            select(ConsultationReport)
            .where(ConsultationReport.patient_id == ctx.patient.id)
            .order_by(ConsultationReport.consultation_id, ConsultationReport.version)
        )
    )
    if ctx.deidentified:
        ctx.left_out += [f"report/{row.id} (signed: not de-identifiable)" for row in rows]
        return []
    latest = {row.consultation_id: row for row in rows}
    out: list[Contribution] = []
    for row in latest.values():
        with ctx.blobs.open(row.blob_sha256) as stream:
            data = stream.read()
        checked = verify_envelope(data)
        if not checked.valid or checked.envelope is None:
            ctx.left_out.append(f"report/{row.id} (its signature does not verify)")
            continue
        content = checked.envelope["content"]
        conclusion = "\n\n".join(
            str(content.get(k) or "") for k in ("findings", "recommendation") if content.get(k)
        )
        resource: dict[str, Any] = {
            "status": "final",
            "category": [{"text": "consultation report"}],
            "code": {
                "coding": [{"system": "http://loinc.org", "code": "11488-4"}],
                "text": "Consult note",
            },
            "subject": ctx.subject(),
            "issued": ctx.when(row.signed_at),
            "performer": [ctx.person(row.signed_by)],
            "presentedForm": [
                ctx.attachment(data, "application/json", f"report v{row.version}", row.signed_at)
            ],
        }
        encounter = ctx.known_ref("Encounter", row.consultation_id)
        if encounter is not None:
            resource["encounter"] = {"reference": encounter}
        if conclusion:
            resource["conclusion"] = conclusion
        ref = ctx.ref("DiagnosticReport", f"report/{row.id}")
        made = DiagnosticReport.model_validate(resource)
        out.append(
            Contribution(REPORT, ref, made, row.signed_by, row.signed_at, record=(REPORT, row.id))
        )
    return out

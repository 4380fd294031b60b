"""A signed report as FHIR R4 resources (issue 20): Encounter, Media for the snapshots,
DiagnosticReport and Composition, each built and validated by ``fhir.resources``.

The models are the package's R4B ones (FHIR 4.3, the R4 family it ships). Resource
ids derive from the envelope's digest, so the same signed version always gives the
same resources; :func:`report_resources` is what a patient's complete FHIR export
includes, :func:`report_bundle` the download of one report.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from xml.sax.saxutils import escape

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.composition import Composition
from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from fhir.resources.R4B.encounter import Encounter
from fhir.resources.R4B.media import Media
from fhir.resources.R4B.resource import Resource
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.records.blobs import BlobStore
from server.records.models import ConsultationReport
from server.reports.envelope import verify_envelope

LOINC = "http://loinc.org"
CONSULT_NOTE = {"system": LOINC, "code": "11488-4", "display": "Consult note"}
VIRTUAL = {
    "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
    "code": "VR",
    "display": "virtual",
}
IDENTIFIER_SYSTEM = "urn:clinicam:consultation"
DIGEST_SYSTEM = "urn:clinicam:report-envelope-sha256"


def _div(text: str) -> dict[str, str]:
    body = escape(text or "—").replace("\n", "<br/>")
    return {"status": "generated", "div": f'<div xmlns="http://www.w3.org/1999/xhtml">{body}</div>'}


def _who(person: Any) -> dict[str, Any]:
    if not isinstance(person, Mapping):
        return {"display": "unknown"}
    return {
        "display": str(person.get("display_name") or person.get("username")),
        "identifier": {"system": "urn:clinicam:account", "value": str(person.get("username"))},
    }


def _period(times: Mapping[str, Any]) -> dict[str, str]:
    period = {}
    if times.get("started_at"):
        period["start"] = str(times["started_at"])
    if times.get("ended_at"):
        period["end"] = str(times["ended_at"])
    return period


def report_resources(
    envelope: Mapping[str, Any],
    digest: str,
    *,
    patient_reference: str | None = None,
    photo_url: str | None = None,
) -> list[Resource]:
    """The resources of one signed version: [Encounter, *Media, DiagnosticReport,
    Composition]. ``patient_reference`` (e.g. ``Patient/123``) links them to the
    export's Patient; without it they name the patient by identifier. ``photo_url``:
    a template with ``{id}`` for where a snapshot's content is served."""
    c: Mapping[str, Any] = envelope["content"]
    consult, times = c["consultation"], c.get("times", {})
    patient = c.get("patient", {})
    subject: dict[str, Any] = (
        {"reference": patient_reference}
        if patient_reference
        else {
            "identifier": {"system": "urn:clinicam:patient", "value": patient.get("identifier")},
            "display": patient.get("name"),
        }
    )
    base = f"cr-{digest[:16]}"
    encounter_ref = {"reference": f"Encounter/{base}-enc"}
    parts = c.get("participants", {})
    people = [parts.get("chair")] + [e for e in parts.get("experts", []) if e.get("joined")]
    encounter = Encounter.model_validate(
        {
            "resourceType": "Encounter",
            "id": f"{base}-enc",
            "identifier": [{"system": IDENTIFIER_SYSTEM, "value": consult["id"]}],
            "status": "finished" if times.get("ended_at") else "in-progress",
            "class": VIRTUAL,
            "subject": subject,
            "participant": [{"individual": _who(p)} for p in people if p],
            "period": _period(times) or None,
            "reasonCode": [{"text": c.get("reason") or consult.get("title")}],
        }
    )
    media: list[Media] = []
    for item in c.get("snapshots", []):
        attachment: dict[str, Any] = {
            "contentType": item.get("media_type"),
            "title": item.get("title") or f"#{item['id']}",
        }
        if photo_url:
            attachment["url"] = photo_url.format(id=item["id"])
        media.append(
            Media.model_validate(
                {
                    "resourceType": "Media",
                    "id": f"{base}-m{item['id']}",
                    "status": "completed",
                    "subject": subject,
                    "encounter": encounter_ref,
                    "createdDateTime": item.get("taken_at") or None,
                    "width": item.get("width"),
                    "height": item.get("height"),
                    "content": attachment,
                }
            )
        )
    signer = envelope.get("signer", {})
    diagnoses = c.get("diagnoses", [])
    report = DiagnosticReport.model_validate(
        {
            "resourceType": "DiagnosticReport",
            "id": f"{base}-dr",
            "identifier": [{"system": DIGEST_SYSTEM, "value": digest}],
            "status": "final" if envelope.get("version") == 1 else "amended",
            "code": {"coding": [CONSULT_NOTE], "text": "Consultation report"},
            "subject": subject,
            "encounter": encounter_ref,
            "issued": envelope["signed_at"],
            "performer": [_who(signer)],
            "conclusion": c.get("findings") or None,
            "conclusionCode": [{"text": d["label"]} for d in diagnoses] or None,
            "media": [{"link": {"reference": f"Media/{m.id}"}} for m in media] or None,
        }
    )
    relevance = c.get("relevance", {})
    notice = relevance.get("notice", {}).get("en", "decision support — not a diagnosis")
    result = relevance.get("result")
    relevance_text = notice
    if result:
        values = ", ".join(f"{k} {float(v) * 100:.0f}%" for k, v in result["values"].items())
        relevance_text = f"{values}\n{result['caption'].get('en', '')}\n{notice}"
    audit = "\n".join(f"{a['at']} {a['actor']} {a['action']}" for a in c.get("audit", []))
    sections = [
        ("Reason", c.get("reason", ""), []),
        ("Findings", c.get("findings", ""), [f"DiagnosticReport/{report.id}"]),
        ("Recommendation", c.get("recommendation", ""), []),
        ("Shared notes", c.get("notes", ""), []),
        ("Confirmed diagnosis", "\n".join(d["label"] for d in diagnoses), []),
        ("Snapshots", "", [f"Media/{m.id}" for m in media]),
        ("Relevance (decision support)", relevance_text, []),
        ("Who opened what during the call", audit, []),
    ]
    composition = Composition.model_validate(
        {
            "resourceType": "Composition",
            "id": f"{base}-comp",
            "identifier": {"system": DIGEST_SYSTEM, "value": digest},
            "status": "final" if envelope.get("version") == 1 else "amended",
            "type": {"coding": [CONSULT_NOTE]},
            "subject": subject,
            "encounter": encounter_ref,
            "date": envelope["signed_at"],
            "author": [_who(signer)],
            "title": f"Consultation report — {consult.get('title') or consult['id']}",
            "attester": [{"mode": "legal", "time": envelope["signed_at"], "party": _who(signer)}],
            "section": [
                {
                    "title": title,
                    "text": _div(text),
                    **({"entry": [{"reference": r} for r in refs]} if refs else {}),
                }
                for title, text, refs in sections
            ],
        }
    )
    return [encounter, *media, report, composition]


def report_bundle(envelope: Mapping[str, Any], digest: str, **kwargs: Any) -> dict[str, Any]:
    """One report's resources as a FHIR collection Bundle (JSON-ready)."""
    resources = report_resources(envelope, digest, **kwargs)
    bundle = Bundle.model_validate(
        {
            "resourceType": "Bundle",
            "type": "collection",
            "identifier": {"system": DIGEST_SYSTEM, "value": digest},
            "timestamp": envelope["signed_at"],
            "entry": [
                {
                    "fullUrl": f"urn:clinicam:{r.get_resource_type()}/{r.id}",
                    "resource": r.model_dump(mode="json", exclude_none=True),
                }
                for r in resources
            ],
        }
    )
    out: dict[str, Any] = bundle.model_dump(mode="json", exclude_none=True)
    return out


def patient_report_resources(
    session: Session, blobs: BlobStore, patient_id: int, patient_reference: str | None = None
) -> list[Resource]:
    """Every consultation's latest signed report of a patient, as resources (for the
    patient's complete FHIR export); a stored envelope that does not verify is left out."""
    rows = session.scalars(
        select(ConsultationReport)
        .where(ConsultationReport.patient_id == patient_id)
        .order_by(ConsultationReport.consultation_id, ConsultationReport.version)
    )
    latest = {row.consultation_id: row for row in rows}
    out: list[Resource] = []
    for row in latest.values():
        with blobs.open(row.blob_sha256) as stream:
            verified = verify_envelope(stream.read())
        if verified.valid and verified.envelope is not None:
            out += report_resources(
                verified.envelope, verified.digest, patient_reference=patient_reference
            )
    return out

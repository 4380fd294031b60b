"""What a consultation's report says, gathered from the database at the moment of signing.

Everything here is plain JSON (strings, numbers, lists), so that the signature covers
exactly what any reader sees. The texts a model card or the server writes (the
relevance caption, the training data, "decision support — not a diagnosis") are kept
in both languages, ``{"en": ..., "zh-CN": ...}``; what the chair typed is kept as typed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from clinicam.i18n import CHINESE, ENGLISH, translate
from server.audit.log import AuditEntry
from server.db import iso, utcnow
from server.directory.models import AccountRow, ConsultationRow, InvitationRow
from server.records.models import ClinicalPhoto, Patient, ReportDraft
from server.relevance.basis import NOT_A_DIAGNOSIS
from server.relevance.models import Diagnosis
from server.relevance.service import StoredRelevance

KIND = "clinicam.consultation-report"
MAX_AUDIT_LINES = 500
LOCALES = (ENGLISH, CHINESE)


class NotesSource(Protocol):
    """The consultation's shared notes as the report takes them (issue 20, part 1)."""

    async def text(self, consultation_id: str) -> str:
        """The notes' current text (empty when there are none)."""
        ...


class RelevanceReader(Protocol):
    """The stored relevance results (:class:`server.relevance.service.RelevanceService`)."""

    def latest(self, session: Session, patient_id: int) -> StoredRelevance | None: ...


class NoNotes:
    """A notes source with nothing in it (a site without shared notes)."""

    async def text(self, consultation_id: str) -> str:
        return ""


def both(text: str) -> dict[str, str]:
    """A server-written text in both languages."""
    return {locale: translate(text, locale) for locale in LOCALES}


def _person(accounts: Mapping[str, AccountRow], username: str | None) -> dict[str, str] | None:
    if username is None:
        return None
    row = accounts.get(username)
    return {"username": username, "display_name": row.display_name if row else username}


def _relevance(found: StoredRelevance | None) -> dict[str, Any]:
    out: dict[str, Any] = {"notice": both(NOT_A_DIAGNOSIS), "result": None}
    if found is None:
        return out
    model = found.basis.get("model", {})
    out["result"] = {
        "id": found.id,
        "model_version": found.model_version,
        "produced_by": found.produced_by,
        "computed_at": found.created_at,
        "values": {label: round(value, 4) for label, value in found.as_dict().items()},
        "caption": both(found.caption),
        "intended_use": both(str(model.get("intended_use", ""))),
        "training_data": both(str(model.get("training_data", ""))),
        "card_known": bool(model.get("card_known", False)),
    }
    return out


def _audit_excerpt(
    session: Session, row: ConsultationRow, patient: Patient, until: datetime
) -> list[dict[str, Any]]:
    """Who opened what during the call: entries about this patient or this consultation
    between its start and its end (or now)."""
    start = row.started_at or row.scheduled_start
    if start is None:
        return []
    query = (
        select(AuditEntry)
        .where(
            AuditEntry.at >= start,
            AuditEntry.at <= (row.ended_at or until),
            or_(
                AuditEntry.target == f"patient:{patient.external_id}",
                AuditEntry.target == f"consultation:{row.cid}",
            ),
        )
        .order_by(AuditEntry.seq)
        .limit(MAX_AUDIT_LINES)
    )
    out = []
    for entry in session.scalars(query):
        detail = entry.detail if isinstance(entry.detail, dict) else {}
        what = {k: detail[k] for k in ("what", "category", "id", "label") if k in detail}
        out.append(
            {
                "seq": entry.seq,
                "at": iso(entry.at),
                "actor": entry.actor,
                "action": entry.action,
                "target": entry.target,
                "what": what,
            }
        )
    return out


def _snapshots(session: Session, patient: Patient, ids: Sequence[int]) -> list[dict[str, Any]]:
    if not ids:
        return []
    rows = session.scalars(
        select(ClinicalPhoto)
        .where(ClinicalPhoto.patient_id == patient.id, ClinicalPhoto.id.in_(list(ids)))
        .order_by(ClinicalPhoto.id)
    )
    return [
        {
            "id": photo.id,
            "sha256": photo.blob_sha256,
            "media_type": photo.media_type,
            "width": photo.width,
            "height": photo.height,
            "taken_at": iso(photo.taken_at),
            "title": photo.title,
            "source": photo.source,
            "consultation": photo.consultation_id,
        }
        for photo in rows
    ]


def gather(
    session: Session,
    row: ConsultationRow,
    patient: Patient,
    draft: ReportDraft,
    notes: str,
    relevance: RelevanceReader,
) -> dict[str, Any]:
    """The report's content as of now."""
    invited = list(
        session.scalars(
            select(InvitationRow.username)
            .where(InvitationRow.cid == row.cid)
            .order_by(InvitationRow.username)
        )
    )
    names = {row.chair, row.requested_by, *invited} - {None}
    accounts = {
        a.username: a
        for a in session.scalars(select(AccountRow).where(AccountRow.username.in_(names)))
    }
    excerpt = _audit_excerpt(session, row, patient, utcnow())
    present = {line["actor"] for line in excerpt}
    experts = [
        {**(_person(accounts, name) or {}), "joined": name in present or name == row.chair}
        for name in invited
        if name != row.chair
    ]
    requester = accounts.get(row.requested_by or "")
    diagnoses = session.scalars(
        select(Diagnosis).where(Diagnosis.patient_id == patient.id).order_by(Diagnosis.id)
    )
    return {
        "kind": KIND,
        "consultation": {
            "id": row.cid,
            "title": row.title,
            "specialty": row.specialty,
            "urgency": row.urgency,
            "state": row.state,
        },
        "patient": {
            "identifier": patient.external_id,
            "name": patient.display_name,
            "sex": patient.sex,
            "birth_date": patient.birth_date.isoformat() if patient.birth_date else None,
        },
        "participants": {
            "chair": _person(accounts, row.chair),
            "experts": experts,
            "clinic": patient.clinic or (requester.clinic if requester else None),
            "requested_by": _person(accounts, row.requested_by),
        },
        "times": {
            "scheduled_start": iso(row.scheduled_start),
            "scheduled_end": iso(row.scheduled_end),
            "started_at": iso(row.started_at),
            "ended_at": iso(row.ended_at),
        },
        "reason": row.reason,
        "findings": draft.findings,
        "recommendation": draft.recommendation,
        "notes": notes,
        "diagnoses": [
            {
                "label": d.label,
                "confirmed_by": d.confirmed_by,
                "confirmed_at": iso(d.created_at),
                "consultation": d.consultation_id,
                "note": d.note,
                "in_this_consultation": d.consultation_id == row.cid,
            }
            for d in diagnoses
        ],
        "snapshots": _snapshots(session, patient, draft.snapshots or []),
        "relevance": _relevance(relevance.latest(session, patient.id)),
        "audit": excerpt,
    }

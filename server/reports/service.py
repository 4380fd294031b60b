"""The chair writes, signs and versions a consultation's report; readers fetch it.

:class:`ReportService` owns the transactions and their audit entries: the first draft
is ``report.create``, a changed draft ``report.update``, the first signature
``report.sign`` and each later one ``report.new_version`` — each in the transaction of
its change. Only the consultation's chair (an account with the chair role) writes and
signs, signing after the consultation has ended and with their password again. A
draft is signed once; after a change, signing again files a new version whose
envelope names the previous one's digest (``supersedes``); old versions stay.

Readers reach a filed report through the patient's records: the views check their
grant first (no grant: 404), and a report of another patient is "not found" here.
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select
from sqlalchemy.orm import Session

from clinicam.i18n import _
from server.audit.trail import AuditTrail
from server.auth import verify_secret
from server.db import Database, iso, utcnow
from server.directory.consultations import standing
from server.directory.models import ENDED, LIVE, SCHEDULED, AccountRow, ConsultationRow
from server.domain_errors import Conflict, Forbidden, Invalid, NotFound
from server.records.models import ClinicalPhoto, ConsultationReport, Patient, ReportDraft
from server.records.serving import record_json
from server.records.store import REPORT, RecordStore
from server.reports.content import NotesSource, RelevanceReader, gather
from server.reports.envelope import MEDIA_TYPE, Verified, report_key, sign, verify_envelope
from server.reports.fhir import report_bundle
from server.reports.pdf import render_pdf

_LOGGER = logging.getLogger(__name__)
T = TypeVar("T")

MAX_TEXT = 20_000
MAX_SNAPSHOTS = 24
CHAIR_ROLE = "chair"


class WrongPassword(Forbidden):
    """The signer's password did not match."""


class AlreadySigned(Conflict):
    """The draft is signed as it stands: change it to make a new version."""


@dataclass(frozen=True)
class DraftInput:
    findings: str
    recommendation: str
    snapshots: list[int]


@dataclass(frozen=True)
class Report:
    """A filed version as a reader gets it: its row's view, the envelope and its check."""

    record: dict[str, Any]
    envelope: bytes
    verified: Verified


def _target(cid: str) -> str:
    return f"consultation:{cid}"


def _patient_target(patient: Patient) -> str:
    return f"patient:{patient.external_id}"


def _version_json(row: ConsultationReport) -> dict[str, Any]:
    return {
        "id": row.id,
        "version": row.version,
        "signed_by": row.signed_by,
        "signed_at": iso(row.signed_at),
        "digest": row.blob_sha256,
        "supersedes": row.supersedes,
        "key_id": row.key_id,
    }


class ReportService:
    """Reports for the views (async; the work runs off the event loop)."""

    def __init__(
        self,
        database: Database,
        store: RecordStore,
        audit: AuditTrail,
        relevance: RelevanceReader,
        notes: NotesSource,
        *,
        key_file: Path,
    ) -> None:
        self._database = database
        self._store = store
        self._audit = audit
        self._relevance = relevance
        self.notes = notes
        self._key_file = key_file
        self._key: Ed25519PrivateKey | None = None

    def key(self) -> Ed25519PrivateKey:
        if self._key is None:
            self._key = report_key(self._key_file, create=True)
        return self._key

    async def _in_session(self, work: Callable[[Session], T]) -> T:
        def run() -> T:
            with self._database.session() as session, session.begin():
                return work(session)

        return await asyncio.to_thread(run)

    # --- the chair's side ---------------------------------------------------------------

    @staticmethod
    def _chaired(session: Session, actor: str, cid: str) -> tuple[ConsultationRow, Patient]:
        row = session.get(ConsultationRow, cid)
        account = session.get(AccountRow, actor)
        if row is None:
            raise NotFound(_("no such consultation"))
        if account is None or account.role != CHAIR_ROLE or row.chair != actor:
            raise Forbidden(_("only the consultation's chair writes and signs its report"))
        if row.state not in (LIVE, ENDED) and not (row.state == SCHEDULED and standing(row)):
            raise Conflict(_("a report is written during or after the consultation"))
        patient = session.scalar(select(Patient).where(Patient.external_id == row.patient_id))
        if patient is None:
            raise NotFound(_("the consultation's patient is not in the records"))
        return row, patient

    @staticmethod
    def _versions(session: Session, cid: str) -> list[ConsultationReport]:
        query = (
            select(ConsultationReport)
            .where(ConsultationReport.consultation_id == cid)
            .order_by(ConsultationReport.version)
        )
        return list(session.scalars(query))

    async def draft(self, actor: str, cid: str) -> dict[str, Any]:
        """The chair's draft (empty if none), the snapshots they may choose from, and the
        signed versions so far."""
        notes = await self.notes.text(cid)

        def work(session: Session) -> dict[str, Any]:
            row, patient = self._chaired(session, actor, cid)
            draft = session.get(ReportDraft, cid)
            photos = session.scalars(
                select(ClinicalPhoto)
                .where(ClinicalPhoto.patient_id == patient.id)
                .order_by(ClinicalPhoto.id)
            )
            return {
                "consultation": cid,
                "state": row.state,
                "patient": {"id": patient.id, "identifier": patient.external_id},
                "findings": draft.findings if draft else "",
                "recommendation": draft.recommendation if draft else "",
                "snapshots": list(draft.snapshots) if draft else [],
                "signed": bool(draft and draft.signed),
                "notes": notes,
                "photos": [record_json("clinical_photo", p) for p in photos],
                "versions": [_version_json(v) for v in self._versions(session, cid)],
            }

        return await self._in_session(work)

    async def save_draft(self, actor: str, cid: str, given: DraftInput) -> dict[str, Any]:
        """Create or change the draft (``report.create`` / ``report.update``)."""
        if len(given.findings) > MAX_TEXT or len(given.recommendation) > MAX_TEXT:
            raise Invalid(_("findings and recommendation: at most {n} characters", n=MAX_TEXT))
        if len(given.snapshots) > MAX_SNAPSHOTS:
            raise Invalid(_("at most {n} snapshots in a report", n=MAX_SNAPSHOTS))

        def work(session: Session) -> dict[str, Any]:
            _row, patient = self._chaired(session, actor, cid)
            chosen = sorted(set(given.snapshots))
            if chosen:
                found = set(
                    session.scalars(
                        select(ClinicalPhoto.id).where(
                            ClinicalPhoto.patient_id == patient.id, ClinicalPhoto.id.in_(chosen)
                        )
                    )
                )
                if found != set(chosen):
                    raise Invalid(_("snapshots: only this patient's photos"))
            draft = session.get(ReportDraft, cid)
            action = "report.update"
            if draft is None:
                action = "report.create"
                draft = ReportDraft(consultation_id=cid, patient_id=patient.id)
                session.add(draft)
            draft.findings, draft.recommendation = given.findings, given.recommendation
            draft.snapshots, draft.signed = chosen, False
            draft.updated_at, draft.updated_by = utcnow(), actor
            self._audit.write(session, actor, action, _target(cid), {"snapshots": len(chosen)})
            return {"saved": True, "signed": False}

        return await self._in_session(work)

    async def sign(self, actor: str, cid: str, password: str) -> dict[str, Any]:
        """Sign the draft as it stands: version 1, or a new version superseding the last."""
        notes = await self.notes.text(cid)

        def account_hash(session: Session) -> str | None:
            account = session.get(AccountRow, actor)
            return account.password_hash if account is not None else None

        stored = await self._in_session(account_hash)
        if not await asyncio.to_thread(verify_secret, stored, password):
            await self._audit.record(
                actor, "report.sign_refused", _target(cid), {"reason": "password"}
            )
            raise WrongPassword(_("wrong password: the report was not signed"))
        key = await asyncio.to_thread(self.key)

        def work(session: Session) -> dict[str, Any]:
            row, patient = self._chaired(session, actor, cid)
            if row.state != ENDED:
                raise Conflict(_("end the consultation before signing its report"))
            draft = session.get(ReportDraft, cid)
            if draft is None or not (draft.findings.strip() or draft.recommendation.strip()):
                raise Invalid(_("write the findings or the recommendation before signing"))
            if draft.signed:
                raise AlreadySigned(
                    _("this report is already signed; change it to sign a new version")
                )
            previous = self._versions(session, cid)
            last = previous[-1] if previous else None
            content = gather(session, row, patient, draft, notes, self._relevance)
            chair = session.get(AccountRow, actor)
            assert chair is not None
            now = utcnow()
            data = sign(
                content,
                signer={"username": actor, "display_name": chair.display_name},
                key=key,
                version=(last.version + 1) if last else 1,
                supersedes=last.blob_sha256 if last else None,
                signed_at=now,
            )
            ref = self._store.blobs.put(io.BytesIO(data), max_bytes=len(data) + 1)
            verified = verify_envelope(data)
            assert verified.valid and verified.key_id is not None
            report = ConsultationReport(
                patient_id=patient.id,
                created_by=actor,
                blob_sha256=ref.sha256,
                blob_size=ref.size,
                media_type=MEDIA_TYPE,
                title=row.title[:200],
                consultation_id=cid,
                version=(last.version + 1) if last else 1,
                signed_by=actor,
                signed_at=now,
                key_id=verified.key_id,
                supersedes=last.blob_sha256 if last else None,
            )
            session.add(report)
            session.flush()
            draft.signed = True
            action = "report.new_version" if last else "report.sign"
            detail = {"id": report.id, "version": report.version, "digest": ref.sha256}
            self._audit.write(session, actor, action, _patient_target(patient), detail)
            return {**_version_json(report), "patient": patient.id}

        return await self._in_session(work)

    # --- readers (the view has checked the grant for ``patient``) ------------------------

    async def read(self, actor: str, patient: Patient, raw_id: str, what: str) -> Report:
        """A filed version of ``patient``'s, audited as ``record.read``; anything else
        (another patient's, unknown, malformed) is :class:`NotFound`, audited too."""
        rid = int(raw_id) if raw_id.isdigit() and len(raw_id) <= 12 else None

        def work(session: Session) -> tuple[dict[str, Any], str] | None:
            row = None if rid is None else self._store.get(session, patient.id, REPORT, rid)
            return None if row is None else (record_json(REPORT, row), row.blob_sha256)

        found = await self._in_session(work)
        if found is None:
            await self._audit.record(
                actor,
                "access.denied",
                _patient_target(patient),
                {"what": what, "category": REPORT, "id": raw_id[:12], "status": 404},
            )
            raise NotFound(_("no such record"))
        record, sha = found

        def load() -> bytes:
            with self._store.blobs.open(sha) as stream:
                return stream.read()

        data = await asyncio.to_thread(load)
        await self._audit.record(
            actor,
            "record.read",
            _patient_target(patient),
            {"what": what, "category": REPORT, "id": record["id"]},
        )
        return Report(record, data, verify_envelope(data))

    async def history(self, patient: Patient, consultation_id: str) -> list[dict[str, Any]]:
        """Every signed version of that consultation's report (of this patient)."""

        def work(session: Session) -> list[dict[str, Any]]:
            return [
                _version_json(v)
                for v in self._versions(session, consultation_id)
                if v.patient_id == patient.id
            ]

        return await self._in_session(work)

    def _image(self, sha256: str) -> bytes | None:
        try:
            with self._store.blobs.open(sha256) as stream:
                return stream.read()
        except FileNotFoundError:
            return None

    async def pdf(self, actor: str, patient: Patient, raw_id: str, locale: str) -> bytes:
        """The version as PDF in ``locale`` (its snapshots drawn from the blob store)."""
        report = await self.read(actor, patient, raw_id, "pdf")
        return await asyncio.to_thread(render_pdf, report.verified, locale, self._image)

    async def fhir(self, actor: str, patient: Patient, raw_id: str) -> dict[str, Any]:
        """The version as a FHIR R4 collection Bundle (Encounter, Media, DiagnosticReport,
        Composition); only a valid envelope is exported."""
        report = await self.read(actor, patient, raw_id, "fhir")
        if not report.verified.valid or report.verified.envelope is None:
            raise Conflict(_("the stored report's signature does not verify"))
        base = f"/api/patients/{patient.id}/records/clinical_photo/{{id}}/content"
        return await asyncio.to_thread(
            report_bundle,
            report.verified.envelope,
            report.verified.digest,
            patient_reference=f"Patient/{patient.id}",
            photo_url=base,
        )

"""The access desk: asking, break-glass, the admins' decisions and every records check (R14).

The views parse a request and call one method here; this service owns the rules, the
transaction and the audit entry. Every change (a grant issued, a request queued or
decided, a revocation, a review) is written with its audit entry in one transaction,
so neither exists without the other. A refusal changes nothing: it is audited on its
own and raised as a domain error (:mod:`server.domain_errors`), which the one error
middleware turns into the answer the client sees.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from clinicam.i18n import _
from server.access.grants import (
    AccessControl,
    AccessDenied,
    Actor,
    BreakGlassRefused,
    IssuedGrant,
    NoAccess,
    NotAllowed,
)
from server.access.models import REQUEST_PENDING, AccessGrant, AccessRequest
from server.audit.trail import AuditTrail
from server.db import Database, iso, utcnow
from server.records.models import Patient
from server.roster import Roster

T = TypeVar("T")
RECORDS_REFUSED = {"technician": "technician", "clinic": "clinic staff"}
MAX_LISTED_GRANTS = 500


async def in_transaction(database: Database, work: Callable[[Session], T]) -> T:
    """Run ``work`` in one committed transaction, off the event loop: all of it or none."""

    def run() -> T:
        with database.session() as session, session.begin():
            return work(session)

    return await asyncio.to_thread(run)


def patient_target(patient: Patient) -> str:
    """How the audit log names a patient."""
    return f"patient:{patient.external_id}"


@dataclass(frozen=True)
class Granted:
    """A checked request: who, which patient, under which grant, allowing what.

    ``operations`` is what the presented token allows (never more than ``grant``'s).
    """

    actor: Actor
    patient: Patient
    grant: AccessGrant
    operations: frozenset[str]


@dataclass(frozen=True)
class PatientAccess:
    """One patient on a user's list: their current grants and latest request."""

    patient: Patient
    grants: list[AccessGrant]
    request: AccessRequest | None


@dataclass(frozen=True)
class GrantOverview:
    """The admins' desk: recent grants (with their patients) and pending requests."""

    grants: list[AccessGrant]
    patients: dict[int, Patient]
    pending: list[AccessRequest]
    now: datetime


class AccessDesk:
    """Access to records for people and appliances; sessions from ``database``."""

    def __init__(
        self,
        roster: Roster,
        database: Database,
        audit: AuditTrail,
        control: AccessControl,
    ) -> None:
        self._roster = roster
        self._database = database
        self._audit = audit
        self._control = control

    @staticmethod
    def _may_access_records(actor: Actor) -> None:
        """Technicians look after devices; clinic staff run the bedside station (R16)."""
        if actor.role in RECORDS_REFUSED:
            raise NotAllowed(
                _("{role} accounts cannot access records", role=RECORDS_REFUSED[actor.role])
            )

    @staticmethod
    def _patient(session: Session, identifier: str) -> Patient:
        patient = session.scalar(select(Patient).where(Patient.external_id == identifier))
        if patient is None:
            raise NoAccess(_("no such patient"))
        return patient

    async def ask(
        self,
        actor: Actor,
        identifier: str,
        operations: list[str],
        minutes: int | None,
        reason: str,
    ) -> IssuedGrant | AccessRequest:
        """A grant if a preset rule (or an earlier approval) covers it, else a pending request."""
        self._may_access_records(actor)

        def work(session: Session) -> IssuedGrant | AccessRequest:
            patient = self._patient(session, identifier)
            outcome = self._control.request(session, actor, patient, operations, minutes, reason)
            if isinstance(outcome, AccessRequest):
                action = "access.requested"
                detail: dict[str, Any] = {
                    "request": outcome.id,
                    "operations": outcome.operations,
                    "reason": reason,
                }
            else:
                action = "access.granted"
                detail = {
                    "grant": outcome.grant.id,
                    "operations": outcome.operations,
                    "basis": outcome.grant.basis,
                    "expires_at": iso(outcome.grant.expires_at),
                }
            self._audit.write(session, actor.username, action, patient_target(patient), detail)
            return outcome

        return await in_transaction(self._database, work)

    async def break_glass(self, actor: Actor, identifier: str, reason: str) -> IssuedGrant:
        """Emergency access, flagged for review; a refusal is audited too."""
        self._may_access_records(actor)

        def work(session: Session) -> IssuedGrant:
            patient = self._patient(session, identifier)
            issued = self._control.break_glass(session, actor, patient, reason)
            self._audit.write(
                session,
                actor.username,
                "access.break_glass",
                patient_target(patient),
                {
                    "grant": issued.grant.id,
                    "reason": issued.grant.reason,
                    "expires_at": iso(issued.grant.expires_at),
                    "flagged": True,
                },
            )
            return issued

        try:
            return await in_transaction(self._database, work)
        except BreakGlassRefused:
            await self._audit.record(
                actor.username, "access.break_glass_refused", f"patient:{identifier}", {}
            )
            raise

    async def my_patients(self, actor: Actor) -> list[PatientAccess]:
        """The patients this user may open now, asked for, or consults on."""
        wanted = {c.patient_id for c in self._roster.consultations if actor.username in c.experts}

        def work(session: Session) -> list[PatientAccess]:
            by_patient: dict[int, list[AccessGrant]] = {}
            for grant in self._control.active_grants(session, actor.username, utcnow()):
                by_patient.setdefault(grant.patient_id, []).append(grant)
            latest: dict[int, AccessRequest] = {}
            for row in session.scalars(
                select(AccessRequest)
                .where(AccessRequest.username == actor.username)
                .order_by(AccessRequest.id)
            ):
                latest[row.patient_id] = row
            ids = set(by_patient) | set(latest)
            query = select(Patient).where(Patient.id.in_(ids) | Patient.external_id.in_(wanted))
            return [
                PatientAccess(p, by_patient.get(p.id, []), latest.get(p.id))
                for p in session.scalars(query.order_by(Patient.external_id))
            ]

        return await in_transaction(self._database, work)

    async def overview(self) -> GrantOverview:
        """The newest grants and every pending request, for the admins."""

        def work(session: Session) -> GrantOverview:
            grants = session.scalars(
                select(AccessGrant).order_by(AccessGrant.id.desc()).limit(MAX_LISTED_GRANTS)
            )
            pending = session.scalars(
                select(AccessRequest)
                .where(AccessRequest.status == REQUEST_PENDING)
                .order_by(AccessRequest.id)
            )
            patients = {p.id: p for p in session.scalars(select(Patient))}
            return GrantOverview(list(grants), patients, list(pending), utcnow())

        return await in_transaction(self._database, work)

    async def _decision(
        self,
        admin: Actor,
        refused_target: str,
        verb: str,
        work: Callable[[Session], T],
    ) -> T:
        """Run an admin's decision; a forbidden one (e.g. on one's own) is audited."""
        try:
            return await in_transaction(self._database, work)
        except NotAllowed as exc:
            await self._audit.record(
                admin.username,
                "access.decision_refused",
                refused_target,
                {"action": verb, "reason": exc.message},
            )
            raise

    async def revoke(self, admin: Actor, grant_id: int) -> tuple[AccessGrant, Patient]:
        """End a grant (and all its tokens) now; the grant stays in the history."""

        def work(session: Session) -> tuple[AccessGrant, Patient]:
            grant = self._control.revoke(session, admin.username, grant_id)
            return grant, self._audit_grant(session, admin, grant, "access.revoked")

        return await self._decision(admin, f"grant:{grant_id}", "revoke", work)

    async def review(self, admin: Actor, grant_id: int) -> tuple[AccessGrant, Patient]:
        """Acknowledge someone else's break-glass access."""

        def work(session: Session) -> tuple[AccessGrant, Patient]:
            grant = self._control.review(session, admin.username, grant_id)
            return grant, self._audit_grant(session, admin, grant, "access.break_glass_reviewed")

        return await self._decision(admin, f"grant:{grant_id}", "review", work)

    def _audit_grant(
        self, session: Session, admin: Actor, grant: AccessGrant, action: str
    ) -> Patient:
        patient = session.get(Patient, grant.patient_id)
        assert patient is not None  # grants reference existing patients
        self._audit.write(
            session,
            admin.username,
            action,
            patient_target(patient),
            {"grant": grant.id, "holder": grant.username},
        )
        return patient

    async def decide(self, admin: Actor, request_id: int, approve: bool) -> AccessRequest:
        """Approve (a grant; its token comes with the requester's next ask) or deny."""

        def work(session: Session) -> AccessRequest:
            decided = self._control.decide(session, admin.username, request_id, approve)
            patient = session.get(Patient, decided.patient_id)
            assert patient is not None
            session.flush()
            self._audit.write(
                session,
                admin.username,
                "access.request_approved" if approve else "access.request_denied",
                patient_target(patient),
                {"request": request_id, "requester": decided.username, "grant": decided.grant_id},
            )
            return decided

        verb = "approve" if approve else "deny"
        return await self._decision(admin, f"access-request:{request_id}", verb, work)

    async def check(
        self, actor: Actor, patient_id: int, token: str | None, operation: str, what: str
    ) -> Granted:
        """The grant for this request; refusals are audited and never say more."""

        def work(session: Session) -> Granted:
            checked = self._control.check(session, actor, patient_id, token, operation)
            patient = session.get(Patient, patient_id)
            assert patient is not None  # grants reference existing patients
            session.expunge(patient)
            session.expunge(checked.grant)
            return Granted(actor, patient, checked.grant, checked.operations)

        try:
            return await in_transaction(self._database, work)
        except AccessDenied as exc:
            await self._audit.record(
                actor.username,
                "access.denied",
                f"patient-id:{patient_id}",
                {"operation": operation, "what": what, "refused": exc.refusal},
            )
            raise

    async def check_device(
        self, actor: Actor, patient_id: int, token: str | None, what: str
    ) -> Patient:
        """An appliance's view grant for one patient (relevance course data), or refuse."""

        def work(session: Session) -> Patient:
            self._control.check(session, actor, patient_id, token, "view")
            patient = session.get(Patient, patient_id)
            assert patient is not None
            session.expunge(patient)
            return patient

        try:
            return await in_transaction(self._database, work)
        except AccessDenied:
            await self._audit.record(
                actor.username, "access.denied", f"patient-id:{patient_id}", {"what": what}
            )
            raise

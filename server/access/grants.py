"""Grants: issuing, checking and revoking access to one patient's records (R14).

Every records request names a patient in its path and carries an access token (a
path-scoped cookie set when the grant was issued, or an ``X-Clinicam-Access`` header
for programs). :meth:`AccessControl.check` looks the grant up on every request, so an
admin's revocation takes effect on the very next one. Without a valid grant a request
learns nothing, not even whether the patient exists (404); with a view grant, an edit
is refused (403).

Each ask gets its own token (a second browser or tab of the same user does not end the
first one's), and a token allows exactly the operations that were asked for: asking
for ``view`` while holding a view+edit grant yields a view-only token for that grant.
Nobody decides on their own request: an admin's own access request waits for another
admin, and an admin's own break-glass access is reviewed by another admin; in an
emergency, break-glass is the path (short, flagged, audited).
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from clinicam.i18n import _
from server.access.models import (
    REQUEST_DENIED,
    REQUEST_GRANTED,
    REQUEST_PENDING,
    AccessGrant,
    AccessGrantToken,
    AccessRequest,
)
from server.access.rules import match_rules
from server.config import ServerConfig
from server.db import utcnow
from server.domain_errors import DomainError, Forbidden, Invalid, NotFound
from server.records.models import Patient
from server.roster import Roster

_LOGGER = logging.getLogger(__name__)

OPERATIONS = ("view", "edit")
MIN_BREAK_GLASS_REASON = 10


class AccessDenied(DomainError):
    """A refused access: :class:`NoAccess` (learn nothing) or :class:`NotAllowed`."""

    refusal = "refused"  # what the audit entry of a refused check says


class NoAccess(AccessDenied, NotFound):
    """No such patient, grant or request, or none visible to the asker: say nothing more."""

    refusal = "no access"


class NotAllowed(AccessDenied, Forbidden):
    """Known, but this actor may not do it (an edit on a view grant, one's own request)."""

    refusal = "not allowed"


class BreakGlassRefused(Invalid):
    """Break-glass asked without a reason long enough to review later."""


@dataclass(frozen=True)
class Actor:
    """Who is asking: a logged-in user and their role."""

    username: str
    role: str


@dataclass(frozen=True)
class IssuedGrant:
    """A grant and a new token for it (shown once; only the digest is stored).

    ``operations`` is what the token allows: exactly what was asked for.
    """

    grant: AccessGrant
    token: str
    operations: str


@dataclass(frozen=True)
class CheckedGrant:
    """A request's grant and the operations its token allows."""

    grant: AccessGrant
    operations: frozenset[str]


OWN_REQUEST = _(
    "you cannot decide on your own access request: another admin has to, "
    "or use break-glass in an emergency"
)
OWN_BREAK_GLASS = _("your own break-glass access has to be reviewed by another admin")


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def normalise_operations(operations: Iterable[str]) -> str:
    """``edit`` implies ``view``; stored as a sorted comma list."""
    wanted = set(operations)
    unknown = wanted - set(OPERATIONS)
    if unknown or not wanted:
        raise ValueError(f"operations must be some of {list(OPERATIONS)}")
    if "edit" in wanted:
        wanted.add("view")
    return ",".join(op for op in OPERATIONS if op in wanted)


class AccessControl:
    """Rules from the configuration, grants in the database (sync; call off the loop)."""

    def __init__(self, config: ServerConfig, roster: Roster) -> None:
        self._config = config
        self._roster = roster

    def role_of(self, username: str) -> str:
        account = self._roster.expert(username)
        return account.role if account else "expert"

    def _issue(
        self,
        session: Session,
        actor: str,
        patient: Patient,
        operations: str,
        minutes: int,
        *,
        basis: str,
        reason: str,
        break_glass: bool = False,
    ) -> IssuedGrant:
        token = secrets.token_urlsafe(32)
        now = utcnow()
        grant = AccessGrant(
            token_sha256=token_digest(token),
            username=actor,
            patient_id=patient.id,
            operations=operations,
            basis=basis,
            reason=reason,
            break_glass=break_glass,
            created_at=now,
            expires_at=now + timedelta(minutes=minutes),
        )
        session.add(grant)
        session.flush()
        session.add(
            AccessGrantToken(
                grant_id=grant.id,
                token_sha256=grant.token_sha256,
                operations=operations,
                created_at=now,
            )
        )
        session.flush()
        return IssuedGrant(grant, token, operations)

    def issue_device_grant(
        self,
        session: Session,
        device_user: str,
        patient: Patient,
        minutes: int,
        *,
        basis: str,
        reason: str,
    ) -> IssuedGrant:
        """View access to one patient for an appliance, for a few minutes (R7 course data)."""
        return self._issue(
            session, device_user, patient, "view", minutes, basis=basis, reason=reason
        )

    def request(
        self,
        session: Session,
        actor: Actor,
        patient: Patient,
        operations: Iterable[str],
        minutes: int | None,
        reason: str,
    ) -> IssuedGrant | AccessRequest:
        """The seed's retrieval flow: a grant if a preset rule covers it, else a pending request."""
        ops = normalise_operations(operations)
        wanted_minutes = minutes or self._config.records.default_grant_minutes
        existing = self._covering_grant(session, actor.username, patient.id, ops)
        if existing is not None:  # approved earlier, another session, a lost cookie
            return IssuedGrant(existing, self.add_token(session, existing, ops), ops)
        match = match_rules(
            self._config.access_rules,
            username=actor.username,
            role=actor.role,
            patient_external_id=patient.external_id,
            group=patient.patient_group,
            operations=ops.split(","),
        )
        if match is not None:
            return self._issue(
                session,
                actor.username,
                patient,
                ops,
                min(wanted_minutes, match.max_minutes),
                basis=match.basis,
                reason=reason,
            )
        waiting = session.scalar(
            select(AccessRequest).where(
                AccessRequest.username == actor.username,
                AccessRequest.patient_id == patient.id,
                AccessRequest.operations == ops,
                AccessRequest.status == REQUEST_PENDING,
            )
        )
        if waiting is not None:  # asking twice does not queue twice
            return waiting
        pending = AccessRequest(
            username=actor.username,
            patient_id=patient.id,
            operations=ops,
            minutes=wanted_minutes,
            reason=reason,
            status=REQUEST_PENDING,
        )
        session.add(pending)
        session.flush()
        return pending

    def break_glass(
        self, session: Session, actor: Actor, patient: Patient, reason: str
    ) -> IssuedGrant:
        """Emergency view+edit for a short time, flagged for the admins' review."""
        if len(reason.strip()) < MIN_BREAK_GLASS_REASON:
            raise BreakGlassRefused(
                _(
                    "break-glass access needs a reason of at least {count} characters",
                    count=MIN_BREAK_GLASS_REASON,
                )
            )
        _LOGGER.warning(
            "BREAK-GLASS access by %s to patient %s: %s", actor.username, patient.id, reason
        )
        return self._issue(
            session,
            actor.username,
            patient,
            "view,edit",
            self._config.records.break_glass_minutes,
            basis="break-glass",
            reason=reason.strip(),
            break_glass=True,
        )

    def decide(self, session: Session, admin: str, request_id: int, approve: bool) -> AccessRequest:
        """An admin approves (issuing a grant, token sent on the requester's next ask) or denies."""
        pending = session.get(AccessRequest, request_id)
        if pending is None or pending.status != REQUEST_PENDING:
            raise NoAccess(_("no such pending access request"))
        if pending.username == admin:
            raise NotAllowed(OWN_REQUEST)
        pending.decided_at = utcnow()
        pending.decided_by = admin
        if not approve:
            pending.status = REQUEST_DENIED
            return pending
        patient = session.get(Patient, pending.patient_id)
        assert patient is not None
        issued = self._issue(
            session,
            pending.username,
            patient,
            pending.operations,
            pending.minutes,
            basis=f"approved by {admin}",
            reason=pending.reason,
        )
        pending.status = REQUEST_GRANTED
        pending.grant_id = issued.grant.id
        # The requester never saw this token: asking again collects the grant (new token).
        return pending

    @staticmethod
    def _covering_grant(
        session: Session, username: str, patient_id: int, ops: str
    ) -> AccessGrant | None:
        now = utcnow()
        for grant in session.scalars(
            select(AccessGrant)
            .where(
                AccessGrant.username == username,
                AccessGrant.patient_id == patient_id,
                AccessGrant.break_glass.is_(False),
                AccessGrant.revoked_at.is_(None),
            )
            .order_by(AccessGrant.expires_at.desc())
        ):
            if grant.active(now) and set(ops.split(",")) <= grant.operation_set:
                return grant
        return None

    @staticmethod
    def add_token(session: Session, grant: AccessGrant, operations: str) -> str:
        """One more token for ``grant`` allowing ``operations``; earlier tokens keep working."""
        if not set(operations.split(",")) <= grant.operation_set:
            raise ValueError("a token never allows more than its grant")
        token = secrets.token_urlsafe(32)
        session.add(
            AccessGrantToken(
                grant_id=grant.id,
                token_sha256=token_digest(token),
                operations=operations,
                created_at=utcnow(),
            )
        )
        session.flush()
        return token

    def check(
        self,
        session: Session,
        actor: Actor,
        patient_id: int,
        token: str | None,
        operation: str,
    ) -> CheckedGrant:
        """The active grant behind ``token`` for this user, patient and operation, or refuse."""
        found = None
        if token:
            found = session.execute(
                select(AccessGrant, AccessGrantToken.operations)
                .join(AccessGrantToken, AccessGrantToken.grant_id == AccessGrant.id)
                .where(AccessGrantToken.token_sha256 == token_digest(token))
            ).one_or_none()
        now = utcnow()
        grant = None if found is None else found[0]
        if (
            found is None
            or grant is None
            or grant.username != actor.username
            or grant.patient_id != patient_id
            or not grant.active(now)
        ):
            raise NoAccess(_("no such patient, or no current access grant for it"))
        allowed = grant.operation_set & frozenset(str(found[1]).split(","))
        if operation not in allowed:
            raise NotAllowed(
                _("your grant for this patient does not allow '{operation}'", operation=operation)
            )
        return CheckedGrant(grant, allowed)

    def revoke(self, session: Session, admin: str, grant_id: int) -> AccessGrant:
        grant = session.get(AccessGrant, grant_id)
        if grant is None:
            raise NoAccess(_("no such grant"))
        if grant.revoked_at is None:
            grant.revoked_at = utcnow()
            grant.revoked_by = admin
        return grant

    def review(self, session: Session, admin: str, grant_id: int) -> AccessGrant:
        """An admin acknowledges a break-glass access (it stays in the history)."""
        grant = session.get(AccessGrant, grant_id)
        if grant is None or not grant.break_glass:
            raise NoAccess(_("no such break-glass grant"))
        if grant.username == admin:
            raise NotAllowed(OWN_BREAK_GLASS)
        grant.reviewed_at = grant.reviewed_at or utcnow()
        grant.reviewed_by = grant.reviewed_by or admin
        return grant

    @staticmethod
    def active_grants(session: Session, username: str, now: datetime) -> list[AccessGrant]:
        rows = session.scalars(
            select(AccessGrant).where(
                AccessGrant.username == username,
                AccessGrant.revoked_at.is_(None),
                AccessGrant.expires_at > now,
            )
        )
        return list(rows)


def holds_edit_grant(session: Session, username: str, patient_id: int) -> bool:
    """Does ``username`` hold an active, unrevoked grant with ``edit`` for the patient?
    (What an import into an existing patient needs: passed to the records' filing.)"""
    now = utcnow()
    grants = session.scalars(
        select(AccessGrant).where(
            AccessGrant.username == username,
            AccessGrant.patient_id == patient_id,
            AccessGrant.revoked_at.is_(None),
            AccessGrant.expires_at > now,
        )
    )
    return any("edit" in grant.operation_set for grant in grants)

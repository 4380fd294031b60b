"""Consultations from the clinic's request to their end (issue 19, item 4).

Clinic staff ask for a consultation; a chair schedules it and invites experts (or
declines it with a reason); the requester may cancel it; the first expert to join makes
it live and the chair ends it. A scheduled consultation nobody joined becomes a no-show.
Every change commits with its audit entry, then the in-memory directory is read again.

Consultations imported from the configuration file have no times: they are *standing*
(joinable at any time, never made live or no-show by the clock), as before.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import AwareDatetime, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from clinicam.configfile import StrictModel
from clinicam.const import USERNAME_PATTERN
from clinicam.i18n import _
from server.audit.trail import AuditTrail
from server.config import ConsultationConfig
from server.db import Database, utcnow
from server.directory.book import Account, Consultation, Directory
from server.directory.models import (
    CANCELLED,
    DECLINED,
    ENDED,
    LIVE,
    NO_SHOW,
    REQUESTED,
    SCHEDULED,
    ConsultationRow,
    InvitationRow,
)
from server.domain_errors import Conflict, Forbidden, Invalid, NotFound
from server.records.models import Patient

_LOGGER = logging.getLogger(__name__)

JOIN_EARLY = timedelta(minutes=15)  # experts may join this long before the start
NO_SHOW_GRACE = timedelta(minutes=15)  # after the end, nobody joined: a no-show
SYSTEM = "system"  # the actor of what the clock does
CHAIRING = ("chair", "admin")  # who schedules, declines and ends
INVITABLE = ("expert", "chair")
Changed = Callable[[str, str], None]  # (cid, what) after a commit: the invitations' post
STATE_WORDS: dict[str, str] = {
    REQUESTED: _("requested"),
    SCHEDULED: _("scheduled"),
    LIVE: _("live"),
    ENDED: _("ended"),
    DECLINED: _("declined"),
    CANCELLED: _("cancelled"),
    NO_SHOW: _("a no-show"),
}


class ConsultationRequest(StrictModel):
    """What clinic staff ask for."""

    patient_id: str = Field(min_length=1, max_length=64, description="External identifier.")
    appliance: str = Field(min_length=1, max_length=64)
    reason: str = Field(min_length=1, max_length=2000)
    specialty: str | None = Field(None, max_length=80)
    urgency: Literal["routine", "soon", "urgent"] = "routine"
    preferred_times: list[str] = Field(default_factory=list, max_length=10)
    title: str | None = Field(None, min_length=1, max_length=120)


class ScheduleOrder(StrictModel):
    """A chair's acceptance: when, who (the chair is invited too)."""

    start: AwareDatetime
    end: AwareDatetime
    experts: list[str] = Field(min_length=1, max_length=20)
    chair: str | None = Field(None, pattern=USERNAME_PATTERN, description="An admin names one.")


class StartNowOrder(StrictModel):
    """The urgent path: scheduled now, live as soon as an expert joins."""

    experts: list[str] = Field(default_factory=list, max_length=20)
    chair: str | None = Field(None, pattern=USERNAME_PATTERN)
    minutes: int = Field(60, ge=10, le=240, description="How long it is booked for.")


def next_on(
    consultations: Iterable[Consultation], device_id: str, now: datetime
) -> Consultation | None:
    """The appliance's next (or current) consultation with times, for its clinic station."""
    timed = [
        c
        for c in consultations
        if c.appliance == device_id and c.scheduled_end is not None and c.scheduled_end > now
    ]
    return min(timed, key=lambda c: c.scheduled_start or now) if timed else None


def opens_at(consultation: Consultation) -> datetime | None:
    """When its experts may join (None: any time, a standing one)."""
    if consultation.scheduled_start is None:
        return None
    early = timedelta(0) if consultation.urgency == "urgent" else JOIN_EARLY
    return consultation.scheduled_start - early


def in_its_time(consultation: ConsultationConfig, now: datetime) -> bool:
    """Whether what its appliance sees now belongs to it: a standing one (no times), a live
    one, or one scheduled with ``now`` between its opening and its end; never a booking
    still to come or one whose time has passed (its footage would be filed wrongly)."""
    if not isinstance(consultation, Consultation) or consultation.scheduled_start is None:
        return True
    if consultation.state == LIVE:
        return True
    opens = opens_at(consultation) or consultation.scheduled_start
    return opens <= now <= (consultation.scheduled_end or consultation.scheduled_start)


def standing(row: ConsultationRow) -> bool:
    """From the configuration file: no times, joinable at any time."""
    return row.scheduled_start is None


class ConsultationDesk:
    """Changes consultations; each change commits with its audit entry."""

    def __init__(
        self,
        database: Database,
        audit: AuditTrail,
        directory: Directory,
        *,
        clock: Callable[[], datetime] = utcnow,
        changed: Changed | None = None,
    ) -> None:
        self._database = database
        self._audit = audit
        self._directory = directory
        self._clock = clock
        self.changed: Changed = changed or (lambda cid, what: None)

    # who may
    def _account(self, username: str, roles: Sequence[str]) -> Account:
        account = self._directory.expert(username)
        if account is None or account.role not in roles:
            raise Forbidden(_("only {roles} accounts may do this", roles=" or ".join(roles)))
        return account

    async def _commit(self, work: Callable[[Session], str], what: str) -> str:
        def run() -> str:
            with self._database.session() as session, session.begin():
                cid = work(session)
            self._directory.reload()
            return cid

        cid = await asyncio.to_thread(run)
        self.changed(cid, what)
        return cid

    def _write(self, session: Session, actor: str, what: str, cid: str, **detail: Any) -> None:
        self._audit.write(session, actor, f"consultation.{what}", f"consultation:{cid}", detail)

    # the transitions
    async def request(self, actor: str, order: ConsultationRequest) -> str:
        """Clinic staff ask for a consultation; returns its id."""
        account = self._account(actor, ("clinic",))
        appliance = self._directory.device(order.appliance)
        if appliance is None:
            raise NotFound(_("no such appliance: {device}", device=order.appliance))
        if appliance.clinic != account.clinic:
            raise Forbidden(_("this appliance is not one of your clinic's"))

        def work(session: Session) -> str:
            _patient(session, order.patient_id)
            cid = f"c-{secrets.token_hex(5)}"
            now = self._clock()
            session.add(
                ConsultationRow(
                    cid=cid,
                    title=order.title or order.specialty or order.reason[:120],
                    patient_id=order.patient_id,
                    appliance=order.appliance,
                    state=REQUESTED,
                    reason=order.reason,
                    specialty=order.specialty,
                    urgency=order.urgency,
                    preferred_times=list(order.preferred_times),
                    requested_by=actor,
                    created_at=now,
                    updated_at=now,
                )
            )
            self._write(
                session,
                actor,
                "request",
                cid,
                patient=order.patient_id,
                appliance=order.appliance,
                urgency=order.urgency,
            )
            return cid

        return await self._commit(work, "request")

    async def schedule(self, actor: str, cid: str, order: ScheduleOrder) -> None:
        """A chair accepts a request: its time and its invited experts."""
        account = self._account(actor, CHAIRING)
        chair = self._chair(account, order.chair)
        invited = self._invitees(chair, order.experts)
        now = self._clock()
        if order.start < now - timedelta(minutes=1):
            raise Invalid(_("the start is in the past"))
        if order.end <= order.start:
            raise Invalid(_("the end must come after the start"))

        def work(session: Session) -> str:
            row = _row(session, cid, REQUESTED)
            _no_overlap(session, row, order.start, order.end)
            self._book(session, actor, row, chair, invited, order.start, order.end)
            self._write(
                session,
                actor,
                "schedule",
                cid,
                start=order.start.isoformat(),
                end=order.end.isoformat(),
                chair=chair,
            )
            self._write(session, actor, "invite", cid, experts=invited)
            return cid

        await self._commit(work, "schedule")

    async def start_now(self, actor: str, cid: str, order: StartNowOrder) -> None:
        """Urgent: scheduled from now, live as soon as an expert joins. Clinic staff of
        the appliance's clinic or a chair; with no chair named, the first chair is called."""
        account = self._account(actor, ("clinic", *CHAIRING))
        chair = self._chair(account, order.chair) if account.role != "clinic" else None
        if chair is None:
            chair = order.chair or next(
                (
                    a.username
                    for a in sorted(self._directory.experts, key=lambda a: a.username)
                    if a.role == "chair"
                ),
                None,
            )
            if chair is None:
                raise Conflict(_("no chair account to call"))
        invited = self._invitees(chair, order.experts)
        start = self._clock()
        end = start + timedelta(minutes=order.minutes)

        def work(session: Session) -> str:
            row = _row(session, cid, REQUESTED)
            if account.role == "clinic":
                self._own_clinic(account, row)
            _no_overlap(session, row, start, end)
            row.urgency = "urgent"
            self._book(session, actor, row, chair, invited, start, end)
            self._write(
                session,
                actor,
                "schedule",
                cid,
                start=start.isoformat(),
                end=end.isoformat(),
                chair=chair,
                start_now=True,
            )
            self._write(session, actor, "invite", cid, experts=invited)
            return cid

        await self._commit(work, "schedule")

    async def decline(self, actor: str, cid: str, reason: str) -> None:
        self._account(actor, CHAIRING)
        if not reason.strip():
            raise Invalid(_("say why the request is declined"))

        def work(session: Session) -> str:
            row = _row(session, cid, REQUESTED)
            row.state, row.decline_reason, row.updated_at = DECLINED, reason, self._clock()
            row.chair = row.chair or actor
            self._write(session, actor, "decline", cid, reason=reason)
            return cid

        await self._commit(work, "decline")

    async def cancel(self, actor: str, cid: str) -> None:
        """The requester (or a chair) calls it off before it is live."""
        account = self._account(actor, ("clinic", *CHAIRING))

        def work(session: Session) -> str:
            row = _row(session, cid, REQUESTED, SCHEDULED)
            if account.role == "clinic" and row.requested_by != actor:
                raise Forbidden(_("only the person who asked for it may cancel it"))
            was, row.state, row.updated_at = row.state, CANCELLED, self._clock()
            self._write(session, actor, "cancel", cid, was=was)
            return cid

        await self._commit(work, "cancel")

    async def end(self, actor: str, cid: str) -> None:
        """The chair (or an admin) ends a live or standing consultation."""
        account = self._account(actor, CHAIRING)

        def work(session: Session) -> str:
            row = _row(session, cid, LIVE, SCHEDULED)
            if row.state == SCHEDULED and not standing(row):
                raise Conflict(_("nobody has joined yet: cancel it instead"))
            if account.role != "admin" and row.chair != actor:
                raise Forbidden(_("only the consultation's chair may end it"))
            now = self._clock()
            row.state, row.ended_at, row.ended_by, row.updated_at = ENDED, now, actor, now
            self._write(session, actor, "end", cid)
            return cid

        await self._commit(work, "end")

    async def admit(self, username: str, cid: str) -> bool:
        """``username`` (invited) joins: refused when ended or too early; the first to
        join a scheduled consultation makes it live (True)."""
        consultation = self._directory.consultation(cid)
        if consultation is None:
            raise NotFound(_("no such consultation"))
        if consultation.state == ENDED:
            raise Conflict(_("this consultation has ended"))
        opens = opens_at(consultation)
        if consultation.state == LIVE or opens is None:
            return False
        now = self._clock()
        if now < opens:
            raise Conflict(
                _("this consultation opens at {time} UTC", time=opens.strftime("%Y-%m-%d %H:%M"))
            )

        def work(session: Session) -> str:
            row = _row(session, cid, SCHEDULED, LIVE)
            if row.state == LIVE:
                return cid
            other = session.scalars(
                select(ConsultationRow.cid).where(
                    ConsultationRow.appliance == row.appliance,
                    ConsultationRow.state == LIVE,
                    ConsultationRow.cid != cid,
                )
            ).first()
            if other is not None:
                raise Conflict(
                    _("the appliance is in another live consultation ({cid})", cid=other)
                )
            row.state, row.started_at, row.updated_at = LIVE, now, now
            self._write(session, username, "start", cid)
            return cid

        await self._commit(work, "start")
        return True

    async def mark_no_shows(self) -> list[str]:
        """Scheduled consultations nobody joined by their end (and a grace): no-shows."""
        due = self._clock() - NO_SHOW_GRACE

        def run() -> list[str]:
            with self._database.session() as session, session.begin():
                rows = list(
                    session.scalars(
                        select(ConsultationRow).where(
                            ConsultationRow.state == SCHEDULED,
                            ConsultationRow.scheduled_end.is_not(None),
                            ConsultationRow.scheduled_end < due,
                        )
                    )
                )
                for row in rows:
                    row.state, row.updated_at = NO_SHOW, self._clock()
                    self._write(session, SYSTEM, "no_show", row.cid)
            if rows:
                self._directory.reload()
            return [r.cid for r in rows]

        marked = await asyncio.to_thread(run)
        for cid in marked:
            self.changed(cid, "no_show")
        return marked

    async def check_forever(self, interval_s: float = 60.0) -> None:
        """The periodic check (the app runs it): no-shows."""
        while True:
            try:
                await self.mark_no_shows()
            except Exception:
                _LOGGER.exception("the consultations' periodic check failed")
            await asyncio.sleep(interval_s)

    # helpers
    def _chair(self, account: Account, named: str | None) -> str:
        if account.role == "chair":
            return named or account.username
        if named is None:
            raise Invalid(_("name the consultation's chair"))
        return named

    def _invitees(self, chair: str, experts: Sequence[str]) -> list[str]:
        invited = list(dict.fromkeys([chair, *experts]))
        for username in invited:
            account = self._directory.expert(username)
            if account is None or account.role not in INVITABLE:
                raise Invalid(_("not an expert or chair account: {user}", user=username[:64]))
        chairing = self._directory.expert(chair)
        if chairing is None or chairing.role != "chair":
            raise Invalid(_("not a chair account: {user}", user=chair))
        return invited

    def _own_clinic(self, account: Account, row: ConsultationRow) -> None:
        appliance = self._directory.appliance(row.appliance)
        if appliance is None or appliance.clinic != account.clinic:
            raise Forbidden(_("this appliance is not one of your clinic's"))

    def _book(
        self,
        session: Session,
        actor: str,
        row: ConsultationRow,
        chair: str,
        invited: list[str],
        start: datetime,
        end: datetime,
    ) -> None:
        row.state, row.chair = SCHEDULED, chair
        row.scheduled_start, row.scheduled_end, row.updated_at = start, end, self._clock()
        for username in invited:
            session.add(InvitationRow(cid=row.cid, username=username, invited_by=actor))


def _patient(session: Session, external_id: str) -> Patient:
    patient = session.scalars(select(Patient).where(Patient.external_id == external_id)).first()
    if patient is None:
        raise NotFound(_("no such patient: {patient}", patient=external_id))
    return patient


def _row(session: Session, cid: str, *states: str) -> ConsultationRow:
    """The consultation, if it is in one of ``states`` (else refused, naming its state)."""
    row = session.get(ConsultationRow, cid, with_for_update=True)
    if row is None:
        raise NotFound(_("no such consultation"))
    if row.state not in states:
        if row.state == ENDED:
            raise Conflict(_("this consultation has ended"))
        state = STATE_WORDS.get(row.state, row.state)
        raise Conflict(_("not possible while the consultation is {state}", state=state))
    return row


def _no_overlap(session: Session, row: ConsultationRow, start: datetime, end: datetime) -> None:
    """No other scheduled or live consultation on the appliance overlaps ``start``–``end``."""
    clash = session.scalars(
        select(ConsultationRow).where(
            ConsultationRow.appliance == row.appliance,
            ConsultationRow.cid != row.cid,
            ConsultationRow.state.in_((SCHEDULED, LIVE)),
            ConsultationRow.scheduled_start < end,
            ConsultationRow.scheduled_end > start,
        )
    ).first()
    if clash is not None:
        raise Conflict(
            _(
                "the appliance is booked then by another consultation ({cid})",
                cid=clash.cid,
            )
        )

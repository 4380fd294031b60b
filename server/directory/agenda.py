"""What each person sees of the consultations: their requests, upcoming, live and past.

Experts see the consultations they are invited to, clinic staff their clinic's, chairs and
admins all of them. An invitation is *new* to its invitee until they have looked at it
after its last change (the lobby's in-app notice).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from clinicam.i18n import _
from server.db import Database, iso, utcnow
from server.directory.book import Directory
from server.directory.invitations import Booking, booking_of
from server.directory.models import (
    LIVE,
    REQUESTED,
    SCHEDULED,
    ConsultationRow,
    InvitationRow,
)
from server.domain_errors import Forbidden, NotFound

PAST_SHOWN = 50  # the newest this many past consultations


class ConsultationAgenda:
    """Reads consultations for one person; marks their invitations seen."""

    def __init__(
        self, database: Database, directory: Directory, clock: Callable[[], datetime] = utcnow
    ) -> None:
        self._database = database
        self._directory = directory
        self._clock = clock

    def _sees(self, username: str, row: ConsultationRow, invited: list[str]) -> bool:
        account = self._directory.expert(username)
        if account is None:
            return False
        if account.role in ("chair", "admin"):
            return True
        if account.role == "clinic":
            appliance = self._directory.appliance(row.appliance)
            return appliance is not None and appliance.clinic == account.clinic
        return username in invited

    def _entry(
        self, username: str, row: ConsultationRow, invitations: list[InvitationRow]
    ) -> dict[str, Any]:
        names = {a.username: a.display_name for a in self._directory.all_accounts}
        appliance = self._directory.appliance(row.appliance)
        mine = next((i for i in invitations if i.username == username), None)
        changed = row.updated_at or row.created_at
        entry: dict[str, Any] = {
            "id": row.cid,
            "title": row.title,
            "patient": row.patient_id,
            "appliance": row.appliance,
            "clinic": appliance.clinic if appliance else None,
            "state": row.state,
            "urgency": row.urgency,
            "reason": row.reason,
            "specialty": row.specialty,
            "preferred_times": row.preferred_times,
            "requested_by": row.requested_by,
            "chair": row.chair,
            "experts": [
                {"username": i.username, "name": names.get(i.username, i.username)}
                for i in invitations
            ],
            "start": iso(row.scheduled_start),
            "end": iso(row.scheduled_end),
            "started_at": iso(row.started_at),
            "ended_at": iso(row.ended_at),
            "decline_reason": row.decline_reason,
            "created_at": iso(row.created_at),
            "standing": row.scheduled_start is None and row.state in (SCHEDULED, LIVE),
            "invited": mine is not None,
            "new": mine is not None  # a standing one (from the configuration) is no news
            and row.scheduled_start is not None
            and (mine.seen_at is None or mine.seen_at < changed),
        }
        if row.chair == username or self._role(username) == "admin":
            entry["mail"] = {i.username: i.mail_status for i in invitations if i.mail_status}
        return entry

    def _role(self, username: str) -> str | None:
        account = self._directory.expert(username)
        return account.role if account else None

    async def mine(self, username: str) -> dict[str, list[dict[str, Any]]]:
        """The caller's consultations: requests, upcoming, live and past; for a chair or an
        admin also whom they may invite."""

        def read() -> dict[str, list[dict[str, Any]]]:
            out: dict[str, list[dict[str, Any]]] = {
                "requests": [],
                "upcoming": [],
                "live": [],
                "past": [],
            }
            with self._database.session() as session:
                invitations = _invitations(session)
                rows = session.scalars(select(ConsultationRow).order_by(ConsultationRow.created_at))
                for row in rows:
                    invited = invitations.get(row.cid, [])
                    if not self._sees(username, row, [i.username for i in invited]):
                        continue
                    group = {REQUESTED: "requests", SCHEDULED: "upcoming", LIVE: "live"}
                    out[group.get(row.state, "past")].append(self._entry(username, row, invited))
            out["upcoming"].sort(key=lambda e: e["start"] or "")
            out["past"] = sorted(out["past"], key=_last_change, reverse=True)[:PAST_SHOWN]
            if self._role(username) in ("chair", "admin"):
                out["invitable"] = [
                    {"username": a.username, "name": a.display_name, "role": a.role}
                    for a in sorted(self._directory.experts, key=lambda a: a.display_name)
                    if a.role in ("expert", "chair")
                ]
            return out

        return await asyncio.to_thread(read)

    async def one(self, username: str, cid: str) -> dict[str, Any]:
        """One consultation the caller may see (404 for one that does not exist, 403)."""

        def read() -> dict[str, Any]:
            with self._database.session() as session:
                row = session.get(ConsultationRow, cid)
                if row is None:
                    raise NotFound(_("no such consultation"))
                invited = _invitations(session, cid).get(cid, [])
                if not self._sees(username, row, [i.username for i in invited]):
                    raise Forbidden(_("you are not invited to this consultation"))
                return self._entry(username, row, invited)

        return await asyncio.to_thread(read)

    async def booking(self, username: str, cid: str) -> Booking:
        """The calendar entry of a consultation the caller may see."""

        def read() -> Booking:
            with self._database.session() as session:
                row = session.get(ConsultationRow, cid)
                if row is None:
                    raise NotFound(_("no such consultation"))
                invited = [i.username for i in _invitations(session, cid).get(cid, [])]
                if not self._sees(username, row, invited):
                    raise Forbidden(_("you are not invited to this consultation"))
                return booking_of(row)

        return await asyncio.to_thread(read)

    async def seen(self, username: str, cid: str) -> None:
        """The invitee has looked at the consultation (a read mark, not a change to it)."""

        def work() -> None:
            with self._database.session() as session, session.begin():
                row = session.get(InvitationRow, (cid, username))
                if row is None:
                    raise NotFound(_("no such invitation"))
                row.seen_at = self._clock()

        await asyncio.to_thread(work)


def _invitations(session: Session, cid: str | None = None) -> dict[str, list[InvitationRow]]:
    query = select(InvitationRow).order_by(InvitationRow.invited_at, InvitationRow.username)
    if cid is not None:
        query = query.where(InvitationRow.cid == cid)
    out: dict[str, list[InvitationRow]] = {}
    for inv in session.scalars(query):
        out.setdefault(inv.cid, []).append(inv)
    return out


def _last_change(entry: dict[str, Any]) -> str:
    return str(entry["ended_at"] or entry["end"] or entry["start"] or "")

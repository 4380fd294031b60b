"""The directory as the rest of the server reads it: an in-memory view of its tables.

Every page, sign-in and device call looks people and appliances up, so the directory is
read from memory; the desks that change it (accounts, enrollment, consultations) call
:meth:`Directory.reload` after their transaction commits. One server process owns the
database's directory; several processes would reload on a notice (see issue 21).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from datetime import datetime

from sqlalchemy import select

from server.config import ConsultationConfig, DeviceAccount, ExpertAccount
from server.db import Database
from server.directory.models import (
    LIVE,
    ROOM_STATES,
    SCHEDULED,
    AccountRow,
    ApplianceRow,
    ConsultationRow,
    InvitationRow,
)


class Account(ExpertAccount):
    """An account as the directory holds it."""

    disabled: bool = False
    email: str | None = None
    time_zone: str | None = None
    totp: bool = False  # a second factor is set up
    session_epoch: int = 0


class Appliance(DeviceAccount):
    """An enrolled appliance."""

    name: str
    room: str | None = None
    revoked: bool = False


class Consultation(ConsultationConfig):
    """A consultation with a chair and invited experts (scheduled, live or ended)."""

    state: str
    reason: str = ""
    specialty: str | None = None
    urgency: str = "routine"
    requested_by: str | None = None
    scheduled_start: datetime | None = None
    scheduled_end: datetime | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None


def account_of(row: AccountRow) -> Account:
    return Account(
        username=row.username,
        display_name=row.display_name,
        password_hash=row.password_hash,
        role=row.role,  # checked by the model
        clinic=row.clinic,
        disabled=row.disabled,
        email=row.email,
        time_zone=row.time_zone,
        totp=row.totp_secret is not None,
        session_epoch=row.session_epoch,
    )


def appliance_of(row: ApplianceRow) -> Appliance:
    return Appliance(
        device_id=row.device_id,
        clinic=row.clinic,
        token_hash=row.token_hash,
        name=row.name,
        room=row.room,
        revoked=row.revoked,
    )


def consultation_of(row: ConsultationRow, experts: list[str]) -> Consultation:
    assert row.chair is not None
    return Consultation(
        id=row.cid,
        title=row.title,
        patient_id=row.patient_id,
        appliance=row.appliance,
        chair=row.chair,
        experts=experts,
        state=row.state,
        reason=row.reason,
        specialty=row.specialty,
        urgency=row.urgency,
        requested_by=row.requested_by,
        scheduled_start=row.scheduled_start,
        scheduled_end=row.scheduled_end,
        started_at=row.started_at,
        ended_at=row.ended_at,
    )


class Directory:
    """Accounts, appliances and consultations with rooms, read from memory."""

    def __init__(self, database: Database) -> None:
        self._database = database
        self._lock = threading.Lock()
        self._accounts: dict[str, Account] = {}
        self._appliances: dict[str, Appliance] = {}
        self._consultations: dict[str, Consultation] = {}
        # Told after a reload this process asked for (it changed the tables): with
        # several processes (server.cluster_node) the others are asked to reload too.
        self.on_change: Callable[[], None] | None = None
        self.reload(notify=False)

    def reload(self, *, notify: bool = True) -> None:
        """Read the tables again (blocking: call it in a thread from the event loop);
        ``notify=False``: another process changed them, nobody else needs telling."""
        with self._database.session() as session:
            accounts = {r.username: account_of(r) for r in session.scalars(select(AccountRow))}
            appliances = {
                r.device_id: appliance_of(r) for r in session.scalars(select(ApplianceRow))
            }
            invited: dict[str, list[str]] = {}
            for inv in session.scalars(
                select(InvitationRow).order_by(InvitationRow.invited_at, InvitationRow.username)
            ):
                invited.setdefault(inv.cid, []).append(inv.username)
            rows = session.scalars(
                select(ConsultationRow)
                .where(ConsultationRow.state.in_(ROOM_STATES))
                .order_by(ConsultationRow.created_at, ConsultationRow.cid)
            )
            consultations = {
                r.cid: consultation_of(r, _chair_first(r.chair, invited.get(r.cid, [])))
                for r in rows
                if r.chair is not None
            }
        with self._lock:
            self._accounts, self._appliances = accounts, appliances
            self._consultations = consultations
        if notify and self.on_change is not None:
            self.on_change()

    # The Roster (server.roster): what sign-in, rooms and grants read.
    @property
    def experts(self) -> Sequence[Account]:
        return [a for a in self._accounts.values() if not a.disabled]

    @property
    def devices(self) -> Sequence[Appliance]:
        return [d for d in self._appliances.values() if not d.revoked]

    @property
    def consultations(self) -> Sequence[Consultation]:
        """The open ones: scheduled or live (an ended one keeps no appliance bound)."""
        return [c for c in self._consultations.values() if c.state in (SCHEDULED, LIVE)]

    def expert(self, username: str) -> Account | None:
        account = self._accounts.get(username)
        return account if account is not None and not account.disabled else None

    def device(self, device_id: str) -> Appliance | None:
        appliance = self._appliances.get(device_id)
        return appliance if appliance is not None and not appliance.revoked else None

    def consultation(self, cid: str) -> Consultation | None:
        """Scheduled, live or ended (its room page says so)."""
        return self._consultations.get(cid)

    def stations_of(self, username: str) -> list[DeviceAccount]:
        account = self.expert(username)
        if account is None or account.clinic is None:
            return []
        return [d for d in self.devices if d.clinic == account.clinic]

    # Beyond the roster: disabled accounts and revoked appliances too (for the admin).
    def account(self, username: str) -> Account | None:
        return self._accounts.get(username)

    def appliance(self, device_id: str) -> Appliance | None:
        return self._appliances.get(device_id)

    @property
    def all_accounts(self) -> Sequence[Account]:
        return list(self._accounts.values())

    @property
    def all_appliances(self) -> Sequence[Appliance]:
        return list(self._appliances.values())

    @property
    def clinics(self) -> list[str]:
        return sorted({d.clinic for d in self.devices})


def _chair_first(chair: str | None, invited: list[str]) -> list[str]:
    """The invited experts, the chair among them (the chair is always invited)."""
    if chair is None or chair in invited:
        return invited
    return [chair, *invited]

"""Consultations from the clinic's request to their end: every transition and refusal."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from server.audit.log import AuditEntry
from server.audit.trail import AuditTrail
from server.auth import hash_secret
from server.config import ServerConfig
from server.db import Database, open_database
from server.directory.agenda import ConsultationAgenda
from server.directory.book import Directory
from server.directory.consultations import (
    ConsultationDesk,
    ConsultationRequest,
    ScheduleOrder,
    StartNowOrder,
)
from server.directory.models import ConsultationRow
from server.directory.seed import import_config
from server.domain_errors import Conflict, Forbidden, Invalid, NotFound
from server.records.models import Patient

HASH = hash_secret("pw")
TOKEN = hash_secret("token")
T0 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


def _person(username: str, role: str, clinic: str | None = None) -> dict[str, Any]:
    return {
        "username": username,
        "display_name": username.title(),
        "password_hash": HASH,
        "role": role,
        "clinic": clinic,
    }


@dataclass
class Clock:
    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now


@dataclass
class World:
    database: Database
    directory: Directory
    desk: ConsultationDesk
    agenda: ConsultationAgenda
    clock: Clock
    changes: list[tuple[str, str]]

    def actions(self) -> list[tuple[str, str]]:
        with self.database.session() as session:
            return [
                (e.actor, e.action)
                for e in session.scalars(
                    select(AuditEntry)
                    .where(AuditEntry.action.like("consultation.%"))
                    .order_by(AuditEntry.seq)
                )
            ]

    def state(self, cid: str) -> str:
        with self.database.session() as session:
            row = session.get(ConsultationRow, cid)
            assert row is not None
            return row.state


@pytest.fixture
def world(tmp_path: Path) -> World:
    database = open_database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    audit = AuditTrail(database)
    config = ServerConfig.model_validate(
        {
            "state_dir": str(tmp_path),
            "experts": [
                _person("nurse", "clinic", "Hill Clinic"),
                _person("other-nurse", "clinic", "Hill Clinic"),
                _person("far-nurse", "clinic", "Far Clinic"),
                _person("chair", "chair"),
                _person("alice", "expert"),
                _person("bob", "expert"),
                _person("admin", "admin"),
            ],
            "devices": [
                {"device_id": "cam-1", "clinic": "Hill Clinic", "token_hash": TOKEN},
                {"device_id": "cam-9", "clinic": "Far Clinic", "token_hash": TOKEN},
            ],
        }
    )
    import_config(config, database, audit)
    with database.session() as session, session.begin():
        session.add(Patient(external_id="P-1", display_name="Patient One"))
    directory = Directory(database)
    clock = Clock()
    changes: list[tuple[str, str]] = []
    desk = ConsultationDesk(
        database, audit, directory, clock=clock, changed=lambda c, w: changes.append((c, w))
    )
    return World(
        database, directory, desk, ConsultationAgenda(database, directory, clock), clock, changes
    )


def _ask(**changes: Any) -> ConsultationRequest:
    body: dict[str, Any] = {"patient_id": "P-1", "appliance": "cam-1", "reason": "rash"}
    return ConsultationRequest.model_validate({**body, **changes})


def _slot(hours: float = 2.0, length: float = 1.0, **more: Any) -> ScheduleOrder:
    start = T0 + timedelta(hours=hours)
    return ScheduleOrder(
        start=start,
        end=start + timedelta(hours=length),
        experts=more.pop("experts", ["alice", "bob"]),
        **more,
    )


async def test_request_schedule_live_end(world: World) -> None:
    cid = await world.desk.request("nurse", _ask(specialty="dermatology"))
    assert world.state(cid) == "requested"
    assert world.directory.consultation(cid) is None  # no room before it is scheduled
    await world.desk.schedule("chair", cid, _slot())
    booked = world.directory.consultation(cid)
    assert booked is not None and booked.state == "scheduled"
    assert booked.experts == ["chair", "alice", "bob"] and booked.chair == "chair"
    with pytest.raises(Conflict, match="opens at"):
        await world.desk.admit("alice", cid)  # two hours early
    world.clock.now = T0 + timedelta(hours=1, minutes=50)  # 10 min before: open
    assert await world.desk.admit("alice", cid) is True
    assert world.state(cid) == "live"
    assert await world.desk.admit("bob", cid) is False  # already live
    with pytest.raises(Forbidden):
        await world.desk.end("alice", cid)  # not the chair
    await world.desk.end("chair", cid)
    assert world.state(cid) == "ended"
    with pytest.raises(Conflict, match="this consultation has ended"):
        await world.desk.admit("bob", cid)
    assert world.actions() == [
        ("nurse", "consultation.request"),
        ("chair", "consultation.schedule"),
        ("chair", "consultation.invite"),
        ("alice", "consultation.start"),
        ("chair", "consultation.end"),
    ]
    assert [w for _c, w in world.changes] == ["request", "schedule", "start", "end"]
    past = (await world.agenda.mine("alice"))["past"]
    assert [e["id"] for e in past] == [cid] and past[0]["state"] == "ended"


@pytest.mark.parametrize(
    ("actor", "order", "error", "words"),
    [
        ("nurse", {"patient_id": "P-404"}, NotFound, "no such patient"),
        ("nurse", {"appliance": "cam-404"}, NotFound, "no such appliance"),
        ("nurse", {"appliance": "cam-9"}, Forbidden, "not one of your clinic"),
        ("alice", {}, Forbidden, "only clinic"),
        ("chair", {}, Forbidden, "only clinic"),
    ],
)
async def test_request_refusals(
    world: World, actor: str, order: dict[str, Any], error: type[Exception], words: str
) -> None:
    with pytest.raises(error, match=words):
        await world.desk.request(actor, _ask(**order))
    assert world.actions() == []


@pytest.mark.parametrize(
    ("actor", "slot", "error", "words"),
    [
        ("chair", _slot(hours=-1), Invalid, "in the past"),
        ("chair", _slot(length=-0.5), Invalid, "end must come after"),
        ("alice", _slot(), Forbidden, "only chair or admin"),
        ("nurse", _slot(), Forbidden, "only chair or admin"),
        ("chair", _slot(experts=["nurse"]), Invalid, "not an expert or chair"),
        ("admin", _slot(), Invalid, "name the consultation's chair"),
        ("admin", _slot(chair="alice"), Invalid, "not a chair account"),
    ],
)
async def test_schedule_refusals(
    world: World, actor: str, slot: ScheduleOrder, error: type[Exception], words: str
) -> None:
    cid = await world.desk.request("nurse", _ask())
    with pytest.raises(error, match=words):
        await world.desk.schedule(actor, cid, slot)
    assert world.state(cid) == "requested"
    assert world.actions() == [("nurse", "consultation.request")]


async def test_overlap_on_the_same_appliance_is_refused(world: World) -> None:
    first = await world.desk.request("nurse", _ask())
    second = await world.desk.request("nurse", _ask())
    await world.desk.schedule("chair", first, _slot(hours=2))
    with pytest.raises(Conflict, match=f"booked then by another consultation \\({first}\\)"):
        await world.desk.schedule("chair", second, _slot(hours=2.5))
    await world.desk.schedule("admin", second, _slot(hours=3, chair="chair"))  # right after
    assert world.state(second) == "scheduled"


async def test_one_live_consultation_per_appliance(world: World) -> None:
    first = await world.desk.request("nurse", _ask(urgency="urgent"))
    second = await world.desk.request("nurse", _ask())
    await world.desk.start_now("nurse", first, StartNowOrder(experts=["alice"], minutes=10))
    assert await world.desk.admit("alice", first) is True  # urgent: at once
    await world.desk.schedule("chair", second, _slot(hours=0.25))  # after the urgent 10 min
    world.clock.now = T0 + timedelta(minutes=14)
    with pytest.raises(Conflict, match=f"another live consultation \\({first}\\)"):
        await world.desk.admit("bob", second)
    assert world.state(second) == "scheduled"


async def test_wrong_state_transitions(world: World) -> None:
    cid = await world.desk.request("nurse", _ask())
    await world.desk.decline("chair", cid, "no dermatologist this week")
    assert world.state(cid) == "declined"
    for attempt in (
        world.desk.schedule("chair", cid, _slot()),
        world.desk.cancel("nurse", cid),
        world.desk.decline("chair", cid, "again"),
    ):
        with pytest.raises(Conflict, match="while the consultation is declined"):
            await attempt
    past = (await world.agenda.mine("nurse"))["past"]
    assert past[0]["decline_reason"] == "no dermatologist this week"
    with pytest.raises(Invalid):
        await world.desk.decline("chair", await world.desk.request("nurse", _ask()), "  ")


async def test_only_the_requester_cancels(world: World) -> None:
    cid = await world.desk.request("nurse", _ask())
    with pytest.raises(Forbidden, match="only the person who asked"):
        await world.desk.cancel("other-nurse", cid)
    await world.desk.schedule("chair", cid, _slot())
    await world.desk.cancel("nurse", cid)
    assert world.state(cid) == "cancelled"
    assert world.directory.consultation(cid) is None  # its room is gone
    assert world.actions()[-1] == ("nurse", "consultation.cancel")


async def test_start_now_by_clinic_staff_calls_a_chair(world: World) -> None:
    cid = await world.desk.request("nurse", _ask())
    with pytest.raises(Forbidden):
        await world.desk.start_now("far-nurse", cid, StartNowOrder())
    await world.desk.start_now("nurse", cid, StartNowOrder(experts=["bob"]))
    booked = world.directory.consultation(cid)
    assert booked is not None and booked.chair == "chair" and booked.urgency == "urgent"
    assert booked.scheduled_start == T0 and booked.experts == ["chair", "bob"]
    assert await world.desk.admit("bob", cid) is True


async def test_no_show_after_the_end_and_grace(world: World) -> None:
    cid = await world.desk.request("nurse", _ask())
    await world.desk.schedule("chair", cid, _slot(hours=1))
    world.clock.now = T0 + timedelta(hours=2, minutes=10)  # ended 10 min ago: grace left
    assert await world.desk.mark_no_shows() == []
    world.clock.now = T0 + timedelta(hours=2, minutes=20)
    assert await world.desk.mark_no_shows() == [cid]
    assert world.state(cid) == "no_show"
    assert world.actions()[-1] == ("system", "consultation.no_show")


async def test_standing_consultations_from_the_config_stay_joinable(world: World) -> None:
    with world.database.session() as session, session.begin():
        session.add(
            ConsultationRow(
                cid="c1",
                title="Standing",
                patient_id="P-1",
                appliance="cam-1",
                state="scheduled",
                chair="chair",
            )
        )
    world.directory.reload()
    world.clock.now = T0 + timedelta(days=30)
    assert await world.desk.admit("chair", "c1") is False  # joinable, never made live
    assert await world.desk.mark_no_shows() == []
    await world.desk.end("chair", "c1")
    with pytest.raises(Conflict, match="has ended"):
        await world.desk.admit("chair", "c1")


async def test_agenda_scopes_and_new_invitations(world: World) -> None:
    cid = await world.desk.request("nurse", _ask())
    assert [e["id"] for e in (await world.agenda.mine("chair"))["requests"]] == [cid]
    assert (await world.agenda.mine("far-nurse"))["requests"] == []
    assert (await world.agenda.mine("alice"))["requests"] == []
    await world.desk.schedule("chair", cid, _slot(experts=["alice"]))
    mine = (await world.agenda.mine("alice"))["upcoming"]
    assert [e["id"] for e in mine] == [cid] and mine[0]["new"] is True
    assert (await world.agenda.mine("bob"))["upcoming"] == []
    world.clock.now = T0 + timedelta(minutes=1)
    await world.agenda.seen("alice", cid)
    assert (await world.agenda.mine("alice"))["upcoming"][0]["new"] is False
    with pytest.raises(Forbidden):
        await world.agenda.one("bob", cid)


async def test_no_change_without_its_audit_entry(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    cid = await world.desk.request("nurse", _ask())

    def audit_down(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("audit log unavailable")

    monkeypatch.setattr(AuditTrail, "write", audit_down)
    with pytest.raises(RuntimeError):
        await world.desk.schedule("chair", cid, _slot())
    assert world.state(cid) == "requested"
    assert world.directory.consultation(cid) is None
    with world.database.session() as session:
        assert session.scalars(select(ConsultationRow)).all()[0].chair is None


@pytest.mark.parametrize("change", ["decline", "cancel", "start_now", "admit", "end", "no_show"])
async def test_every_change_commits_with_its_audit_entry_or_not_at_all(
    world: World, monkeypatch: pytest.MonkeyPatch, change: str
) -> None:
    cid = await world.desk.request("nurse", _ask(urgency="urgent"))
    if change in ("admit", "end", "no_show"):
        await world.desk.start_now("nurse", cid, StartNowOrder(experts=["alice"], minutes=10))
    if change == "end":
        await world.desk.admit("alice", cid)
    before, entries = world.state(cid), len(world.actions())

    def audit_down(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("audit log unavailable")

    monkeypatch.setattr(AuditTrail, "write", audit_down)
    attempts = {
        "decline": lambda: world.desk.decline("chair", cid, "no"),
        "cancel": lambda: world.desk.cancel("nurse", cid),
        "start_now": lambda: world.desk.start_now("nurse", cid, StartNowOrder()),
        "admit": lambda: world.desk.admit("alice", cid),
        "end": lambda: world.desk.end("chair", cid),
        "no_show": world.desk.mark_no_shows,
    }
    if change == "no_show":
        world.clock.now = T0 + timedelta(hours=1)
    with pytest.raises(RuntimeError):
        await attempts[change]()
    assert world.state(cid) == before
    assert len(world.actions()) == entries
    open_one = world.directory.consultation(cid)
    assert (open_one.state if open_one else "requested") == before

"""Invitations arrive by e-mail at a real SMTP server on loopback, .ics attached."""

from __future__ import annotations

import email
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import Message
from pathlib import Path
from typing import Any

import icalendar
import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from server.audit.trail import AuditTrail
from server.auth import hash_secret
from server.config import ServerConfig, SmtpConfig
from server.db import Database, open_database
from server.directory.book import Directory
from server.directory.consultations import (
    ConsultationDesk,
    ConsultationRequest,
    ScheduleOrder,
)
from server.directory.invitations import InvitationPost
from server.directory.models import AccountRow, InvitationRow
from server.directory.seed import import_config
from server.records.models import Patient

HASH = hash_secret("pw")
START = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)


class Inbox:
    """An aiosmtpd handler that keeps every message it is given."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], Message]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((list(envelope.rcpt_tos), email.message_from_bytes(envelope.content)))
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def inbox() -> Iterator[tuple[Inbox, int]]:
    handler = Inbox()
    port = _free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


def _setup(tmp_path: Path) -> tuple[Database, AuditTrail, Directory]:
    database = open_database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    audit = AuditTrail(database)
    people = [
        ("nurse", "clinic", "Hill Clinic"),
        ("chair", "chair", None),
        ("alice", "expert", None),
        ("bob", "expert", None),
    ]
    config = ServerConfig.model_validate(
        {
            "state_dir": str(tmp_path),
            "experts": [
                {
                    "username": u,
                    "display_name": u.title(),
                    "password_hash": HASH,
                    "role": r,
                    "clinic": c,
                }
                for u, r, c in people
            ],
            "devices": [{"device_id": "cam-1", "clinic": "Hill Clinic", "token_hash": HASH}],
        }
    )
    import_config(config, database, audit)
    with database.session() as session, session.begin():
        session.add(Patient(external_id="P-1", display_name="Patient One"))
        for username, zone in (("alice", "Asia/Shanghai"), ("chair", None)):
            row = session.get(AccountRow, username)
            assert row is not None
            row.email, row.time_zone = f"{username}@hospital.example", zone
    return database, audit, Directory(database)


async def _schedule(desk: ConsultationDesk) -> str:
    cid = await desk.request(
        "nurse", ConsultationRequest(patient_id="P-1", appliance="cam-1", reason="rash")
    )
    order = ScheduleOrder(start=START, end=START + timedelta(hours=1), experts=["alice", "bob"])
    await desk.schedule("chair", cid, order)
    return cid


def _statuses(database: Database, cid: str) -> dict[str, str | None]:
    with database.session() as session:
        rows = session.scalars(select(InvitationRow).where(InvitationRow.cid == cid))
        return {r.username: r.mail_status for r in rows}


async def test_invitations_arrive_with_the_calendar_file(
    tmp_path: Path, inbox: tuple[Inbox, int]
) -> None:
    handler, port = inbox
    database, audit, directory = _setup(tmp_path)
    smtp = SmtpConfig(
        host="127.0.0.1",
        port=port,
        starttls=False,
        from_address="clinicam@hospital.example",
        site_url="https://h.example",
    )

    async def language_of(username: str) -> str | None:
        return "zh-CN" if username == "alice" else None

    post = InvitationPost(database, directory, smtp, language_of, "en")
    desk = ConsultationDesk(database, audit, directory, changed=post.changed)
    cid = await _schedule(desk)
    await post.drain()
    by_rcpt = {rcpt[0]: message for rcpt, message in handler.messages}
    assert sorted(by_rcpt) == ["alice@hospital.example", "chair@hospital.example"]
    alice = by_rcpt["alice@hospital.example"]
    assert "会诊" in str(email.header.make_header(email.header.decode_header(alice["Subject"])))
    text = next(p for p in alice.walk() if p.get_content_type() == "text/plain")
    body = text.get_payload(decode=True).decode()
    assert f"https://h.example/room/{cid}" in body
    local = START.astimezone(__import__("zoneinfo").ZoneInfo("Asia/Shanghai"))
    assert local.strftime("%Y-%m-%d %H:%M") in body  # her own time zone
    ics = next(p for p in alice.walk() if p.get_content_type() == "text/calendar")
    assert ics.get_filename() == f"{cid}.ics"
    event = next(iter(icalendar.Calendar.from_ical(ics.get_payload(decode=True)).walk("VEVENT")))
    assert event.decoded("dtstart") == START
    assert event.decoded("dtend") == START + timedelta(hours=1)
    assert str(event["url"]) == f"https://h.example/room/{cid}"
    chair = next(
        p for p in by_rcpt["chair@hospital.example"].walk() if p.get_content_type() == "text/plain"
    )
    assert "You are invited" in chair.get_payload(decode=True).decode()
    assert _statuses(database, cid) == {"chair": "sent", "alice": "sent", "bob": "no_address"}


async def test_a_mail_server_that_is_down_does_not_hold_up_the_change(tmp_path: Path) -> None:
    database, audit, directory = _setup(tmp_path)
    smtp = SmtpConfig(
        host="127.0.0.1",
        port=_free_port(),
        starttls=False,
        from_address="clinicam@hospital.example",
        timeout_s=2,
    )

    async def language_of(username: str) -> str | None:
        return None

    post = InvitationPost(database, directory, smtp, language_of, "en")
    desk = ConsultationDesk(database, audit, directory, changed=post.changed)
    cid = await _schedule(desk)
    consultation = directory.consultation(cid)
    assert consultation is not None and consultation.state == "scheduled"
    await post.drain()
    statuses = _statuses(database, cid)
    assert statuses["alice"] is not None and statuses["alice"].startswith("failed: ")
    assert statuses["bob"] == "no_address"


async def test_a_cancelled_consultation_is_cancelled_in_the_calendars(
    tmp_path: Path, inbox: tuple[Inbox, int]
) -> None:
    handler, port = inbox
    database, audit, directory = _setup(tmp_path)
    smtp = SmtpConfig(host="127.0.0.1", port=port, starttls=False, from_address="c@h.example")

    async def language_of(username: str) -> str | None:
        return None

    post = InvitationPost(database, directory, smtp, language_of, "en")
    desk = ConsultationDesk(database, audit, directory, changed=post.changed)
    unscheduled = await desk.request(
        "nurse", ConsultationRequest(patient_id="P-1", appliance="cam-1", reason="cough")
    )
    await desk.cancel("nurse", unscheduled)  # no times, no invitees: nothing to mail
    cid = await _schedule(desk)
    await post.drain()
    handler.messages.clear()
    await desk.cancel("nurse", cid)
    await post.drain()
    assert sorted(r[0] for r, _m in handler.messages) == [
        "alice@hospital.example",
        "chair@hospital.example",
    ]
    message = handler.messages[0][1]
    assert message["Subject"].startswith("Cancelled: consultation")
    ics = next(p for p in message.walk() if p.get_content_type() == "text/calendar")
    calendar = icalendar.Calendar.from_ical(ics.get_payload(decode=True))
    assert str(calendar["method"]) == "CANCEL"
    assert str(next(iter(calendar.walk("VEVENT")))["status"]) == "CANCELLED"

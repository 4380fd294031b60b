"""Invitations (issue 19, item 5): a calendar file per consultation, and e-mail.

The lobby shows new invitations in the app (:mod:`server.directory.agenda`). When the
site configures ``[smtp]``, each invitee also gets an e-mail in their own language with
the ``.ics`` attached and a join link (``/room/<cid>``, which still asks them to sign in).
Mail goes out in a thread after the change has committed: a mail server that is down or
refuses never holds up or undoes the change; the fault is logged and the chair sees it
beside the invitee's name.
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import icalendar
from sqlalchemy import select

from clinicam.i18n import _, translate
from server.config import SmtpConfig
from server.db import Database, utcnow
from server.directory.book import Directory
from server.directory.models import ConsultationRow, InvitationRow
from server.domain_errors import Conflict

_LOGGER = logging.getLogger(__name__)

PRODID = "-//Clinicam//Consultations//EN"  # i18n: not for people (calendar product id)
SENT = "sent"  # mail statuses, as the chair's page reads them
NO_ADDRESS = "no_address"
FAILED = "failed: "  # followed by the mail server's words
MAILED = ("schedule", "cancel")  # the changes an invitee is mailed about
LanguageOf = Callable[[str], Awaitable[str | None]]


@dataclass(frozen=True)
class Booking:
    """What a calendar entry says about a consultation."""

    cid: str
    title: str
    start: datetime
    end: datetime
    patient: str
    reason: str
    cancelled: bool = False


def join_path(cid: str) -> str:
    return f"/room/{cid}"


def booking_of(row: ConsultationRow) -> Booking:
    if row.scheduled_start is None or row.scheduled_end is None:
        raise Conflict(_("this consultation has no times (it can be joined at any time)"))
    return Booking(
        cid=row.cid,
        title=row.title,
        start=row.scheduled_start,
        end=row.scheduled_end,
        patient=row.patient_id,
        reason=row.reason,
        cancelled=row.state == "cancelled",
    )


def calendar_of(booking: Booking, link: str, *, sequence: int = 0) -> bytes:
    """The ``.ics`` file: one event, times in UTC, the join link as its URL."""
    calendar = icalendar.Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("method", "CANCEL" if booking.cancelled else "REQUEST")
    event = icalendar.Event()
    event.add("uid", f"{booking.cid}@clinicam")
    event.add("dtstamp", utcnow())
    event.add("dtstart", booking.start)
    event.add("dtend", booking.end)
    event.add("summary", booking.title)
    event.add("description", f"{booking.reason}\n{link}")
    event.add("url", link)
    event.add("sequence", sequence)
    event.add("status", "CANCELLED" if booking.cancelled else "CONFIRMED")
    calendar.add_component(event)
    ical: bytes = calendar.to_ical()
    return ical


def local_time(when: datetime, zone: str | None) -> str:
    """``when`` in the invitee's time zone if they set one, else UTC (named)."""
    try:
        tz = ZoneInfo(zone) if zone else None
    except (ZoneInfoNotFoundError, ValueError):
        tz = None
    if tz is None or zone is None:
        return when.strftime("%Y-%m-%d %H:%M UTC")
    return when.astimezone(tz).strftime("%Y-%m-%d %H:%M ") + zone


class InvitationPost:
    """Mails invitees about a change to their consultation, off the event loop."""

    def __init__(
        self,
        database: Database,
        directory: Directory,
        smtp: SmtpConfig | None,
        language_of: LanguageOf,
        site_language: str,
    ) -> None:
        self._database = database
        self._directory = directory
        self._smtp = smtp
        self._language_of = language_of
        self._site_language = site_language
        self._tasks: set[asyncio.Task[None]] = set()

    def changed(self, cid: str, what: str) -> None:
        """After a committed change (the desk calls this): mail about it if there is mail."""
        if self._smtp is None or what not in MAILED:
            return
        task = asyncio.get_running_loop().create_task(self._post(cid))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait for the mail under way (tests; shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _post(self, cid: str) -> None:
        def read() -> tuple[Booking | None, list[str]]:
            with self._database.session() as session:
                row = session.get(ConsultationRow, cid)
                if row is None or row.scheduled_start is None:
                    return None, []  # a request called off before it had times: no one to tell
                invited = session.scalars(
                    select(InvitationRow.username).where(InvitationRow.cid == cid)
                )
                return booking_of(row), list(invited)

        try:
            booking, invitees = await asyncio.to_thread(read)
            if booking is not None:
                await self._mail(cid, booking, invitees)
        except Exception:
            _LOGGER.exception("invitations for %s not sent", cid)

    async def _mail(self, cid: str, booking: Booking, invitees: list[str]) -> None:
        for username in invitees:
            account = self._directory.account(username)
            if account is None or not account.email:
                await self._note(cid, username, NO_ADDRESS)
                continue
            locale = await self._language_of(username) or self._site_language
            message = self._message(booking, account.email, locale, account.time_zone)
            try:
                await asyncio.to_thread(self._send, message)
            except (OSError, smtplib.SMTPException) as exc:
                _LOGGER.warning("invitation to %s for %s not sent: %s", username, cid, exc)
                await self._note(cid, username, FAILED + str(exc))
            else:
                await self._note(cid, username, SENT)

    def _message(self, booking: Booking, to: str, locale: str, zone: str | None) -> EmailMessage:
        assert self._smtp is not None
        link = (self._smtp.site_url or "").rstrip("/") + join_path(booking.cid)
        start, end = local_time(booking.start, zone), local_time(booking.end, zone)
        if booking.cancelled:
            subject = _("Cancelled: consultation {title}", title=booking.title)
            body = _(
                "The consultation {title} ({start} to {end}) has been cancelled.",
                title=booking.title,
                start=start,
                end=end,
            )
        else:
            subject = _("Invitation: consultation {title}", title=booking.title)
            body = _(
                "You are invited to the consultation {title} for patient {patient}, "
                "from {start} to {end}.\n\nReason: {reason}\n\nJoin (sign in first): {link}",
                title=booking.title,
                patient=booking.patient,
                start=start,
                end=end,
                reason=booking.reason,
                link=link,
            )
        message = EmailMessage()
        message["Subject"] = translate(subject, locale)
        message["From"] = self._smtp.from_address
        message["To"] = to
        message.set_content(translate(body, locale))
        message.add_attachment(
            calendar_of(booking, link),
            maintype="text",
            subtype="calendar",
            filename=f"{booking.cid}.ics",
        )
        return message

    def _send(self, message: EmailMessage) -> None:
        smtp = self._smtp
        assert smtp is not None
        with smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout_s) as client:
            if smtp.starttls:
                client.starttls()
            if smtp.username:
                client.login(smtp.username, smtp.password or "")
            client.send_message(message)

    async def _note(self, cid: str, username: str, status: str) -> None:
        """How the mail went, beside the invitee's name (the chair sees it)."""

        def work() -> None:
            with self._database.session() as session, session.begin():
                row = session.get(InvitationRow, (cid, username))
                if row is not None:
                    row.mail_status = status[:200]

        await asyncio.to_thread(work)

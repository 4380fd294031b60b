"""TOTP two-factor sign-in: enrolment (a secret shown once, confirmed by a first code), the
check of a code at sign-in (each time step used once: no replay), and the site's rule
that some roles must have it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Literal

from sqlalchemy.orm import Session

from clinicam.i18n import _
from server.audit.trail import AuditTrail
from server.config import AccountsConfig
from server.db import Database
from server.directory.book import Directory
from server.directory.models import AccountRow
from server.directory.totp import new_secret, provisioning_uri, qr_svg, step_of
from server.domain_errors import Conflict, Invalid, NotFound

_LOGGER = logging.getLogger(__name__)

ENROLMENT_S: Final = 600.0  # a secret shown but not yet confirmed is forgotten after this
Due = Literal["none", "code", "enrol"]


@dataclass(frozen=True)
class Enrolment:
    """What the person's authenticator app needs, shown once."""

    secret: str
    uri: str
    svg: str


class TotpDesk:
    """Second factors of the accounts in the database."""

    def __init__(
        self,
        database: Database,
        audit: AuditTrail,
        directory: Directory,
        policy: AccountsConfig,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._database = database
        self._audit = audit
        self._directory = directory
        self._policy = policy
        self._clock = clock
        self._enrolling: dict[str, tuple[str, float]] = {}  # username → (secret, shown at)

    def due(self, username: str) -> Due:
        """What sign-in asks of ``username`` after the password."""
        account = self._directory.account(username)
        if account is None:
            return "none"
        if account.totp:
            return "code"
        return "enrol" if account.role in self._policy.totp_required_roles else "none"

    def may_hold_session(self, username: str) -> bool:
        """Enabled, and not of a role that must have a second factor without one (a
        session from before the site required it, or before a promotion, ends)."""
        return self._directory.expert(username) is not None and self.due(username) != "enrol"

    def start_enrolment(self, username: str) -> Enrolment:
        """A new secret for ``username`` (kept until confirmed, or for ten minutes)."""
        if self._directory.account(username) is None:
            raise NotFound(_("no such account: {username}", username=username[:64]))
        now = self._clock()
        self._enrolling = {u: e for u, e in self._enrolling.items() if now - e[1] < ENROLMENT_S}
        secret = new_secret()
        self._enrolling[username] = (secret, now)
        uri = provisioning_uri(secret, username, self._policy.totp_issuer)
        return Enrolment(secret, uri, qr_svg(uri))

    async def confirm(self, username: str, code: str) -> None:
        """The first code from the app: the second factor is on (audited). Raises
        :class:`Invalid` for a wrong code, :class:`Conflict` with no enrolment going on."""
        pending = self._enrolling.get(username)
        if pending is None or self._clock() - pending[1] >= ENROLMENT_S:
            raise Conflict(
                _("no two-factor set-up is going on; start it again"), code="no_enrolment"
            )
        secret = pending[0]
        step = step_of(secret, code, self._clock())
        if step is None:
            raise Invalid(_("wrong code; check the app's clock and try again"), code="wrong_code")

        def work() -> None:
            with self._database.session() as session, session.begin():
                row = _row(session, username)
                replaced = row.totp_secret is not None
                row.totp_secret, row.totp_last_step = secret, step
                self._audit.write(
                    session,
                    username,
                    "account.totp",
                    f"user:{username}",
                    {"change": "replaced" if replaced else "enrolled"},
                )
            self._directory.reload()

        await asyncio.to_thread(work)
        self._enrolling.pop(username, None)
        _LOGGER.info("two-factor sign-in set up for %s", username)

    async def check(self, username: str, code: str) -> bool:
        """Whether ``code`` is ``username``'s current code and not used before (that time
        step, or a later one, already used: a replay); a good code's step is stored."""
        now = self._clock()

        def work() -> bool:
            with self._database.session() as session, session.begin():
                row = session.get(AccountRow, username, with_for_update=True)
                if row is None or row.totp_secret is None or row.disabled:
                    return False
                step = step_of(row.totp_secret, code, now)
                if step is None:
                    return False
                if row.totp_last_step is not None and step <= row.totp_last_step:
                    _LOGGER.warning("replayed two-factor code for %s refused", username)
                    return False
                row.totp_last_step = step
                return True

        return await asyncio.to_thread(work)


def _row(session: Session, username: str) -> AccountRow:
    row = session.get(AccountRow, username, with_for_update=True)
    if row is None:
        raise NotFound(_("no such account: {username}", username=username[:64]))
    return row

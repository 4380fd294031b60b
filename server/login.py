"""Signing in: the throttle first, then argon2 off the event loop, then the session.

A refused attempt costs the event loop a few dictionary look-ups: the throttle answers
before any hashing, and the argon2 check itself runs in the bounded slow-check pool.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from clinicam.i18n import _
from server.audit.trail import AuditTrail
from server.auth import LoginThrottle, Session, SessionStore
from server.roster import Roster
from server.slow_checks import SlowChecks

_LOGGER = logging.getLogger(__name__)


class WrongCredentials(Exception):
    """Unknown user or wrong password (the same answer for both)."""


@dataclass(frozen=True)
class SignedIn:
    username: str
    token: str
    session: Session


@dataclass
class LoginService:
    """Checks a user name and password and opens a session, audited either way."""

    roster: Roster
    throttle: LoginThrottle
    checks: SlowChecks
    sessions: SessionStore
    audit: AuditTrail

    async def sign_in(self, username: str, password: str, address: str) -> SignedIn:
        """Raises :class:`server.auth.Throttled`, :class:`server.slow_checks.ChecksBusy`
        or :class:`WrongCredentials`."""
        attempt = self.throttle.begin(username, address)
        expert = self.roster.expert(username)
        ok = await attempt.check(self.checks, expert.password_hash if expert else None, password)
        if not ok or expert is None:
            attempt.failed()
            _LOGGER.warning("login failed for %r from %s", username, address)
            await self.audit.record(username, "login.failed", "session", {"address": address})
            raise WrongCredentials(_("wrong user name or password"))
        attempt.succeeded()
        token, session = self.sessions.create(expert.username)
        _LOGGER.info("expert %s logged in from %s", expert.username, address)
        await self.audit.record(expert.username, "login", "session", {"address": address})
        return SignedIn(expert.username, token, session)

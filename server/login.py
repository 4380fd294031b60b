"""Signing in: the throttle first, then argon2 off the event loop, then the session.

A refused attempt costs the event loop a few dictionary look-ups: the throttle answers
before any hashing, and the argon2 check itself runs in the bounded slow-check pool.
When a second factor is due (the account has one, or its role must have one), the right
password gives a short-lived pending token instead of a session; the code (after the
set-up, for someone who must enrol first) then opens the session. Codes go through the
same throttle as passwords.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, Literal, Protocol

from clinicam.i18n import _
from server.audit.trail import AuditTrail
from server.auth import LoginThrottle, Session, SessionStore
from server.directory.second_factor import Enrolment
from server.domain_errors import DomainError
from server.roster import Roster
from server.slow_checks import SlowChecks

PENDING_S: Final = 300.0  # the code must follow the password within five minutes
PENDING_TRIES: Final = 5  # wrong codes before the password must be given again

_LOGGER = logging.getLogger(__name__)


class WrongCredentials(Exception):
    """Unknown user or wrong password (the same answer for both)."""


class WrongCode(WrongCredentials):
    """A wrong, replayed or late second-factor code (or an unknown pending sign-in)."""


@dataclass(frozen=True)
class SignedIn:
    username: str
    token: str
    session: Session


@dataclass(frozen=True)
class SecondFactorDue:
    """The password was right; ``pending`` and a code (``code``), or first the set-up of
    the second factor and its first code (``enrol``), finish the sign-in."""

    username: str
    pending: str
    kind: Literal["code", "enrol"]


class SecondFactor(Protocol):
    """The accounts' second factors (:class:`server.directory.second_factor.TotpDesk`)."""

    def due(self, username: str) -> Literal["none", "code", "enrol"]: ...

    def start_enrolment(self, username: str) -> Enrolment: ...

    async def confirm(self, username: str, code: str) -> None: ...

    async def check(self, username: str, code: str) -> bool: ...


class _NoSecondFactor:
    def due(self, username: str) -> Literal["none", "code", "enrol"]:
        return "none"

    def start_enrolment(self, username: str) -> Enrolment:
        raise WrongCode(_("this sign-in has expired; give your password again"))

    async def confirm(self, username: str, code: str) -> None:
        raise WrongCode(_("this sign-in has expired; give your password again"))

    async def check(self, username: str, code: str) -> bool:
        return False


@dataclass
class _Pending:
    username: str
    kind: Literal["code", "enrol"]
    since: float
    tries: int = 0


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass
class LoginService:
    """Checks a user name and password and opens a session, audited either way."""

    roster: Roster
    throttle: LoginThrottle
    checks: SlowChecks
    sessions: SessionStore
    audit: AuditTrail
    second_factor: SecondFactor = field(default_factory=_NoSecondFactor)
    clock: Callable[[], float] = time.monotonic
    _pending: dict[str, _Pending] = field(default_factory=dict)

    async def sign_in(
        self, username: str, password: str, address: str
    ) -> SignedIn | SecondFactorDue:
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
        due = self.second_factor.due(expert.username)
        if due != "none":
            # The failures so far stand until the code is right too: a known password
            # must not wipe the count of wrong codes.
            attempt.abandoned()
            return self._await_code(expert.username, due)
        attempt.succeeded()
        return await self._open(expert.username, address, {})

    async def _open(self, username: str, address: str, detail: dict[str, str]) -> SignedIn:
        token, session = self.sessions.create(username)
        _LOGGER.info("expert %s logged in from %s", username, address)
        await self.audit.record(username, "login", "session", {"address": address, **detail})
        return SignedIn(username, token, session)

    def _await_code(self, username: str, kind: Literal["code", "enrol"]) -> SecondFactorDue:
        now = self.clock()
        self._pending = {d: p for d, p in self._pending.items() if now - p.since < PENDING_S}
        token = secrets.token_urlsafe(32)
        self._pending[_digest(token)] = _Pending(username, kind, now)
        return SecondFactorDue(username, token, kind)

    def _pending_of(self, token: str) -> _Pending:
        pending = self._pending.get(_digest(token))
        if pending is None or self.clock() - pending.since >= PENDING_S:
            self._pending.pop(_digest(token), None)
            raise WrongCode(_("this sign-in has expired; give your password again"))
        if self.roster.expert(pending.username) is None:  # disabled meanwhile
            del self._pending[_digest(token)]
            raise WrongCode(_("this sign-in has expired; give your password again"))
        return pending

    def enrolment(self, token: str) -> Enrolment:
        """The new secret for a sign-in that must set up its second factor first."""
        pending = self._pending_of(token)
        if pending.kind != "enrol":
            raise WrongCode(_("this sign-in has expired; give your password again"))
        return self.second_factor.start_enrolment(pending.username)

    async def finish(self, token: str, code: str, address: str) -> SignedIn:
        """The second step: the code (the set-up's first code when enrolling). Raises
        :class:`server.auth.Throttled` or :class:`WrongCode`."""
        pending = self._pending_of(token)
        attempt = self.throttle.begin(pending.username, address)
        try:
            if pending.kind == "enrol":
                await self.second_factor.confirm(pending.username, code)
                ok = True
            else:
                ok = await self.second_factor.check(pending.username, code)
        except DomainError:  # a wrong first code (Invalid), no set-up going on (Conflict)
            ok = False
        except BaseException:
            attempt.abandoned()
            raise
        if not ok:
            attempt.failed()
            pending.tries += 1
            if pending.tries >= PENDING_TRIES:
                self._pending.pop(_digest(token), None)
            _LOGGER.warning("second factor failed for %r from %s", pending.username, address)
            await self.audit.record(
                pending.username, "login.failed", "session", {"address": address, "step": "code"}
            )
            raise WrongCode(_("wrong or already used code"))
        attempt.succeeded()
        self._pending.pop(_digest(token), None)
        return await self._open(pending.username, address, {"second_factor": pending.kind})

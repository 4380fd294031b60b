"""Expert login: argon2id passwords, server-side sessions, CSRF tokens, throttling."""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from clinicam.files import write_atomically
from server.slow_checks import ChecksBusy, SlowChecks

_LOGGER = logging.getLogger(__name__)

_HASHER = PasswordHasher()  # argon2id with the library's current recommended parameters
# Verified against when the user does not exist, so timing does not reveal names.
_DUMMY_HASH = _HASHER.hash(secrets.token_urlsafe(16))

SESSION_COOKIE = "clinicam_session"
CSRF_HEADER = "X-CSRF-Token"


def hash_secret(secret: str) -> str:
    """An argon2id hash for a password or device token."""
    return _HASHER.hash(secret)


def verify_secret(stored_hash: str | None, secret: str) -> bool:
    """Constant-work check of ``secret`` against an argon2id hash."""
    try:
        return _HASHER.verify(stored_hash or _DUMMY_HASH, secret) and stored_hash is not None
    except (VerificationError, InvalidHashError):
        return False


@dataclass
class Session:
    """One logged-in browser."""

    username: str
    csrf: str
    last_seen: float


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def cookie_digest(token: str) -> str:
    """What a session is stored under (a web front names it to a media worker)."""
    return _digest(token)


@dataclass
class SessionStore:
    """Server-side sessions keyed by an unguessable cookie value, with idle expiry.

    With a ``path`` the sessions survive a server restart (experts stay logged in and
    their pages reconnect by themselves). Only SHA-256 digests of the cookie values
    are stored, in a 0600 file written atomically on login and logout.
    """

    idle_s: float
    path: Path | None = None
    clock: Callable[[], float] = time.time
    # Whether a user may still hold a session (a disabled account may not): asked on
    # every look-up, so a session of someone disabled meanwhile ends at its next request.
    admits: Callable[[str], bool] = field(default=lambda username: True)
    _sessions: dict[str, Session] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.path is None or not self.path.exists():
            return
        try:
            saved = json.loads(self.path.read_text())
            now = self.clock()
            for digest, item in saved.items():
                session = Session(
                    str(item["username"]), str(item["csrf"]), float(item["last_seen"])
                )
                if now - session.last_seen <= self.idle_s:
                    self._sessions[str(digest)] = session
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            _LOGGER.warning("ignored unreadable session file %s: %s", self.path, exc)

    def _save(self) -> None:
        if self.path is not None:
            data = {
                d: {"username": s.username, "csrf": s.csrf, "last_seen": s.last_seen}
                for d, s in self._sessions.items()
            }
            write_atomically(self.path, json.dumps(data).encode())

    def create(self, username: str) -> tuple[str, Session]:
        token = secrets.token_urlsafe(32)
        session = Session(username, secrets.token_urlsafe(32), self.clock())
        self._sessions[_digest(token)] = session
        self._save()
        return token, session

    def get(self, token: str | None) -> Session | None:
        """The live session for ``token`` (touching it), or None if unknown or idle too long."""
        if not token:
            return None
        digest = _digest(token)
        session = self._sessions.get(digest)
        if session is None:
            return None
        now = self.clock()
        if now - session.last_seen > self.idle_s or not self.admits(session.username):
            del self._sessions[digest]
            self._save()
            return None
        session.last_seen = now
        return session

    def adopt(self, token: str, username: str, csrf: str) -> None:
        """Take on a session another process checked (a web front vouching for it to this
        media worker); it lasts while the front keeps vouching (the idle expiry)."""
        if not self.admits(username):
            return
        session = self._sessions.get(_digest(token))
        if session is None or session.username != username or session.csrf != csrf:
            self._sessions[_digest(token)] = Session(username, csrf, self.clock())

    def drop(self, token: str | None) -> None:
        if token and self._sessions.pop(_digest(token), None) is not None:
            self._save()

    def drop_user(self, username: str) -> int:
        """End every session of ``username`` (disabled, or their password reset); returns
        how many there were."""
        ended = [d for d, s in self._sessions.items() if s.username == username]
        for digest in ended:
            del self._sessions[digest]
        if ended:
            self._save()
        return len(ended)


class Throttled(Exception):
    """Too many failed attempts: wait ``retry_after`` seconds."""

    def __init__(self, retry_after: float):
        super().__init__(f"too many failed attempts; try again in {retry_after:.0f} s")
        self.retry_after = retry_after


@dataclass
class _Failures:
    count: int = 0
    last: float = 0.0
    pending: int = 0  # attempts being checked right now (they count against the limit)


ADDRESS_FACTOR = 10  # failures one address may make across all accounts, × max_failures
ACCOUNT_FACTOR = 4  # failures one account may see across all addresses, × max_failures
FORGET_AFTER_S = 3600.0  # a key with no failure for this long starts afresh
MAX_LOCK_S = 900.0
MAX_TRACKED = 100_000


@dataclass
class LoginThrottle:
    """Failed attempts counted per (account, address) pair, per address and per account.

    A pair may fail ``max_failures`` times, an address ``ADDRESS_FACTOR`` times as often
    across all accounts, an account ``ACCOUNT_FACTOR`` times as often across all
    addresses; beyond a limit that key waits 1 s, 2 s, 4 s … (at most 15 min) after its
    last failure. So one attacker behind a clinic's router locks out the account they
    guess from that router, not the colleagues beside them nor the account's owner
    elsewhere. Attempts in progress count against the limits, so a burst of parallel
    guesses cannot slip through before the first one fails.
    """

    max_failures: int
    clock: Callable[[], float] = time.monotonic
    _failures: dict[str, _Failures] = field(default_factory=dict)

    def _limits(self, account: str, address: str) -> list[tuple[str, int]]:
        m = self.max_failures
        return [
            (f"pair:{account}\n{address}", m),
            (f"addr:{address}", ADDRESS_FACTOR * m),
            (f"user:{account}", ACCOUNT_FACTOR * m),
        ]

    def _entry(self, key: str, now: float) -> _Failures:
        entry = self._failures.get(key)
        if entry is None or (entry.pending == 0 and now - entry.last > FORGET_AFTER_S):
            if len(self._failures) >= MAX_TRACKED:
                self._forget_old(now)
            entry = self._failures[key] = _Failures()
        return entry

    def _forget_old(self, now: float) -> None:
        for key in [
            k for k, e in self._failures.items() if e.pending == 0 and now - e.last > MAX_LOCK_S
        ]:
            del self._failures[key]

    def retry_after(self, account: str, address: str) -> float:
        """Seconds to wait before another attempt (0 = go ahead)."""
        now = self.clock()
        wait = 0.0
        for key, limit in self._limits(account, address):
            entry = self._entry(key, now)
            if entry.count >= limit:
                lock = min(2.0 ** (entry.count - limit), MAX_LOCK_S)
                wait = max(wait, entry.last + lock - now)
            elif entry.count + entry.pending >= limit:
                wait = max(wait, 1.0)  # the attempts in progress may use up the limit
        return max(wait, 0.0)

    def begin(self, account: str, address: str) -> LoginAttempt:
        """Start an attempt, or raise :class:`Throttled`; end it with one of its methods."""
        wait = self.retry_after(account, address)
        if wait > 0:
            raise Throttled(wait)
        now = self.clock()
        keys = [key for key, _ in self._limits(account, address)]
        for key in keys:
            self._entry(key, now).pending += 1
        return LoginAttempt(self, keys)

    def _end(self, keys: list[str], *, failed: bool | str, clear: tuple[str, ...] = ()) -> None:
        now = self.clock()
        for key in keys:
            entry = self._entry(key, now)
            entry.pending = max(entry.pending - 1, 0)
            if failed is True or (failed and key.startswith(failed)):
                entry.count += 1
                entry.last = now
            elif key.startswith(clear) and entry.pending == 0:
                del self._failures[key]


@dataclass
class LoginAttempt:
    """One attempt in progress: call exactly one of ``failed``, ``succeeded``, ``abandoned``."""

    throttle: LoginThrottle
    keys: list[str]

    def failed(self) -> None:
        self.throttle._end(self.keys, failed=True)

    def succeeded(self) -> None:
        """The right secret: this pair and this account start afresh (not the address,
        which another account's success must not reset)."""
        self.throttle._end(self.keys, failed=False, clear=("pair:", "user:"))

    def abandoned(self) -> None:
        """Not checked: the client went away."""
        self.throttle._end(self.keys, failed=False)

    def refused_busy(self) -> None:
        """Not checked, the slow-check pool being full: counts against the address only
        (an address that keeps pressing a saturated server is soon throttled, which frees
        the pool; the account and the pair are not to blame)."""
        self.throttle._end(self.keys, failed="addr:")

    async def check(self, checks: SlowChecks, stored_hash: str | None, secret: str) -> bool:
        """``verify_secret`` in the slow-check pool; a check that never ran (pool full,
        client gone) ends this attempt accordingly and re-raises. The caller ends an
        attempt that returns (``failed`` or ``succeeded``)."""
        try:
            return await checks.run(verify_secret, stored_hash, secret)
        except ChecksBusy:
            self.refused_busy()
            raise
        except BaseException:
            self.abandoned()
            raise

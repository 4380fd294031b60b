"""Expert login: argon2id passwords, server-side sessions, CSRF tokens, throttling."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

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


@dataclass
class SessionStore:
    """Server-side sessions keyed by an unguessable cookie value, with idle expiry."""

    idle_s: float
    clock: Callable[[], float] = time.monotonic
    _sessions: dict[str, Session] = field(default_factory=dict)

    def create(self, username: str) -> tuple[str, Session]:
        token = secrets.token_urlsafe(32)
        session = Session(username, secrets.token_urlsafe(32), self.clock())
        self._sessions[token] = session
        return token, session

    def get(self, token: str | None) -> Session | None:
        """The live session for ``token`` (touching it), or None if unknown or idle too long."""
        if not token:
            return None
        session = self._sessions.get(token)
        if session is None:
            return None
        now = self.clock()
        if now - session.last_seen > self.idle_s:
            del self._sessions[token]
            return None
        session.last_seen = now
        return session

    def drop(self, token: str | None) -> None:
        if token:
            self._sessions.pop(token, None)


@dataclass
class LoginThrottle:
    """After ``max_failures`` failures per account or per address, wait before retrying.

    The wait doubles with each further failure (1 s, 2 s, 4 s … capped at 15 min).
    """

    max_failures: int
    clock: Callable[[], float] = time.monotonic
    _failures: dict[str, tuple[int, float]] = field(default_factory=dict)

    def retry_after(self, *keys: str) -> float:
        """Seconds to wait before another attempt for any of ``keys`` (0 = go ahead)."""
        now = self.clock()
        wait = 0.0
        for key in keys:
            count, last = self._failures.get(key, (0, 0.0))
            if count >= self.max_failures:
                lock = min(2.0 ** (count - self.max_failures), 900.0)
                wait = max(wait, last + lock - now)
        return max(wait, 0.0)

    def failed(self, *keys: str) -> None:
        now = self.clock()
        for key in keys:
            count, _ = self._failures.get(key, (0, 0.0))
            self._failures[key] = (count + 1, now)

    def succeeded(self, *keys: str) -> None:
        for key in keys:
            self._failures.pop(key, None)

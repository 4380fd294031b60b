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
        if now - session.last_seen > self.idle_s:
            del self._sessions[digest]
            self._save()
            return None
        session.last_seen = now
        return session

    def drop(self, token: str | None) -> None:
        if token and self._sessions.pop(_digest(token), None) is not None:
            self._save()


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

"""A web front vouching for a signed-in person to a media worker.

The front checks the session cookie and the CSRF token itself, then forwards the
request with :data:`HEADER`: who the session belongs to, its CSRF token, the digest of
its cookie and when the front said so, signed with the site's shared secret (HMAC-
SHA256). The worker adopts the session under that cookie for as long as the front keeps
vouching, so every view finds the person as it would in one process. Workers are on the
internal network; a forged or stale assertion is ignored (the request is then anonymous).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass

HEADER = "X-Clinicam-Forwarded-Session"
MAX_AGE_S = 30.0


@dataclass(frozen=True)
class Vouched:
    """A session the front vouches for."""

    username: str
    csrf: str
    cookie_digest: str
    at: float


def _mac(secret: bytes, payload: bytes) -> str:
    return base64.urlsafe_b64encode(hmac.new(secret, payload, hashlib.sha256).digest()).decode()


def vouch(secret: bytes, session: Vouched) -> str:
    """The header value for ``session``."""
    payload = json.dumps(
        [session.username, session.csrf, session.cookie_digest, round(session.at, 3)],
        separators=(",", ":"),
    ).encode()
    return base64.urlsafe_b64encode(payload).decode() + "." + _mac(secret, payload)


def check(secret: bytes, value: str, now: float) -> Vouched | None:
    """The session in a header value, if the signature holds and it is fresh; else None."""
    encoded, _, mac = value.partition(".")
    try:
        payload = base64.urlsafe_b64decode(encoded.encode())
    except (binascii.Error, ValueError):
        return None
    if not hmac.compare_digest(mac, _mac(secret, payload)):
        return None
    try:
        username, csrf, digest, at = json.loads(payload)
    except (ValueError, TypeError):
        return None
    if not all(isinstance(v, str) for v in (username, csrf, digest)):
        return None
    if not isinstance(at, (int, float)) or abs(now - float(at)) > MAX_AGE_S:
        return None
    return Vouched(username, csrf, digest, float(at))


__all__ = ["HEADER", "MAX_AGE_S", "Vouched", "check", "vouch"]

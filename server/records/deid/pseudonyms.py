"""One export's pseudonyms, replacement UIDs and date shift, from one random secret."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import secrets
from datetime import date, timedelta
from typing import Final

_LOGGER = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------
# Pseudonyms
# --------------------------------------------------------------------------------------

_SECRET_BYTES: Final = 32
_MIN_SECRET_BYTES: Final = 16
_PSEUDONYM_CHARS: Final = 12
_SHIFT_MIN_DAYS: Final = -365
_SHIFT_MAX_DAYS: Final = -30
_KIND = re.compile(r"[A-Za-z][A-Za-z0-9]{0,15}")


class Pseudonymizer:
    """Consistent pseudonyms, UIDs and date shift within one export.

    Everything derives from one secret: ``HMAC-SHA256(secret, domain || value)``. With
    no secret given a random 32-byte one is drawn, so pseudonyms of different exports
    cannot be linked. Passing the same secret again reproduces an export exactly.
    """

    def __init__(self, secret: bytes | None = None) -> None:
        if secret is None:
            secret = secrets.token_bytes(_SECRET_BYTES)
        elif len(secret) < _MIN_SECRET_BYTES:
            raise ValueError(f"the secret must be at least {_MIN_SECRET_BYTES} bytes")
        self._secret = secret
        span = _SHIFT_MAX_DAYS - _SHIFT_MIN_DAYS + 1
        draw = int.from_bytes(self._mac("date-shift", "")[:8], "big")
        self.date_shift_days: Final[int] = _SHIFT_MIN_DAYS + draw % span

    def _mac(self, domain: str, value: str) -> bytes:
        message = domain.encode() + b"\x00" + value.encode("utf-8", "surrogatepass")
        return hmac.new(self._secret, message, hashlib.sha256).digest()

    def pseudonym(self, kind: str, value: str) -> str:
        """``KIND-`` and 12 base32 characters, e.g. ``pseudonym("P", "MRN-1")`` → ``P-K3…``."""
        if not _KIND.fullmatch(kind):
            raise ValueError(f"pseudonym kind must be 1-16 letters or digits, got {kind!r}")
        digest = self._mac("pseudonym:" + kind.upper(), value)
        return f"{kind.upper()}-{base64.b32encode(digest).decode()[:_PSEUDONYM_CHARS]}"

    def uid(self, value: str) -> str:
        """A DICOM UID under ``2.25.`` (UUID-derived root): 128 bits of the HMAC as decimal."""
        number = int.from_bytes(self._mac("uid", value.strip())[:16], "big")
        return f"2.25.{number}"

    def shift_date(self, d: date) -> date:
        """Move ``d`` by this export's fixed whole-day offset (works for datetimes too)."""
        return d + timedelta(days=self.date_shift_days)

"""Time-based one-time codes (RFC 6238): secrets, the authenticator app's link, and which
time step a code belongs to (so a code is used once, and never an older one after it).
"""

from __future__ import annotations

import hmac
import io
import time
from typing import Final

import pyotp
import segno

STEP_S: Final = 30
DRIFT_STEPS: Final = 1  # a phone's clock may be one step off either way
CODE_LENGTH: Final = 6


def new_secret() -> str:
    """A fresh base32 secret (160 bits)."""
    return pyotp.random_base32()


def provisioning_uri(secret: str, username: str, issuer: str) -> str:
    """The ``otpauth://`` link an authenticator app reads."""
    return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=issuer)


def qr_svg(uri: str) -> str:
    """The link as a QR code, an SVG document (no scripts, no external references)."""
    buffer = io.BytesIO()
    segno.make(uri, error="m").save(buffer, kind="svg", scale=4, xmldecl=False, svgns=True)
    return buffer.getvalue().decode()


def step_of(secret: str, code: str, now: float | None = None) -> int | None:
    """The time step ``code`` is valid for (within the allowed drift), or None."""
    code = code.strip().replace(" ", "")
    if len(code) != CODE_LENGTH or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret, interval=STEP_S)
    current = int((time.time() if now is None else now) // STEP_S)
    for step in range(current - DRIFT_STEPS, current + DRIFT_STEPS + 1):
        if hmac.compare_digest(totp.at(step * STEP_S), code):
            return step
    return None

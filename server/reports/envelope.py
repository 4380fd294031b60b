"""The signed report envelope: canonical JSON, an Ed25519 signature, and its check.

An envelope is ``{content, signer, signed_at, key_id, public_key, version, supersedes,
signature}`` written as canonical JSON (sorted keys, no spaces, UTF-8) and one newline.
The signature covers every other field (so it names the signer and the version it
replaces); its digest (SHA-256 of the file's bytes) is how a later version refers to
it. :func:`verify_envelope` refuses a file that is not exactly the canonical text of
what it parses to, so any changed byte fails, even one JSON would read the same.

The site's report-signing key is kept like the audit checkpoint key
(:mod:`server.audit.checkpoint`): a 0600 PEM file outside the database, its public
half beside it, identified by the first 16 hex digits of the SHA-256 of its raw bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from clinicam.i18n import Text, _
from server.audit.checkpoint import create_key_file, key_id, load_key_file, public_pem
from server.audit.log import canonical_json

_LOGGER = logging.getLogger(__name__)

KEY_FILE = "report-signing.key"
PUBLIC_KEY_FILE = "report-signing.pub"
MEDIA_TYPE = "application/vnd.clinicam.report+json"
FORMAT = "clinicam-report-v1"
_DOMAIN = b"clinicam-consultation-report-v1\n"
_SIGNED_FIELDS = (
    "format",
    "content",
    "signer",
    "signed_at",
    "key_id",
    "public_key",
    "version",
    "supersedes",
)


class KeyProblem(Exception):
    """A report-signing key that cannot be used; the message says why."""


def report_key(path: Path, *, create: bool = False) -> Ed25519PrivateKey:
    """The private key in ``path`` (PEM); with ``create``, a new one (0600, with its
    public half beside it as ``report-signing.pub``) when none is there."""
    if not path.is_file():
        if not create:
            raise KeyProblem(_("no report signing key at {path}", path=path))
        key = create_key_file(path, PUBLIC_KEY_FILE)
        if key is not None:
            _LOGGER.warning("created the report signing key %s (publish its .pub)", path)
            return key
    try:
        return load_key_file(path)
    except ValueError as exc:
        raise KeyProblem(exc.args[0]) from None


def public_key_of(pem: bytes) -> Ed25519PublicKey:
    """An Ed25519 public key from a public PEM (or a private one's public half)."""
    try:
        if b"PRIVATE KEY" in pem:
            private = serialization.load_pem_private_key(pem, password=None)
            if isinstance(private, Ed25519PrivateKey):
                return private.public_key()
        else:
            public = serialization.load_pem_public_key(pem)
            if isinstance(public, Ed25519PublicKey):
                return public
    except (ValueError, TypeError) as exc:
        raise KeyProblem(_("not a usable key: {problem}", problem=str(exc))) from None
    raise KeyProblem(_("not an Ed25519 key"))


def _message(envelope: dict[str, Any]) -> bytes:
    return _DOMAIN + canonical_json({k: envelope[k] for k in _SIGNED_FIELDS}).encode()


def encode(envelope: dict[str, Any]) -> bytes:
    """The envelope's one file form: canonical JSON and a newline."""
    return canonical_json(envelope).encode() + b"\n"


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def utc_stamp(when: datetime | None = None) -> str:
    return (when or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def sign(
    content: dict[str, Any],
    *,
    signer: dict[str, str],
    key: Ed25519PrivateKey,
    version: int,
    supersedes: str | None,
    signed_at: datetime | None = None,
) -> bytes:
    """The signed envelope's bytes."""
    public = key.public_key()
    envelope: dict[str, Any] = {
        "format": FORMAT,
        "content": content,
        "signer": signer,
        "signed_at": utc_stamp(signed_at),
        "key_id": key_id(public),
        "public_key": public_pem(public).decode(),
        "version": version,
        "supersedes": supersedes,
    }
    envelope["signature"] = base64.b64encode(key.sign(_message(envelope))).decode()
    return encode(envelope)


@dataclass(frozen=True)
class Verified:
    """What a check of an envelope found: ``valid``, and if not, why (a sentence)."""

    valid: bool
    problem: Text | None
    envelope: dict[str, Any] | None
    key_id: str | None
    digest: str


def _refused(data: bytes, problem: Text, envelope: dict[str, Any] | None = None) -> Verified:
    kid = envelope.get("key_id") if envelope else None
    return Verified(False, problem, envelope, kid if isinstance(kid, str) else None, digest(data))


def verify_envelope(data: bytes, trusted: Ed25519PublicKey | None = None) -> Verified:
    """Check ``data``; with ``trusted``, the envelope must also be signed by that key."""
    try:
        envelope = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return _refused(data, _("not a report envelope (not JSON)"))
    if not isinstance(envelope, dict) or set(envelope) != {*_SIGNED_FIELDS, "signature"}:
        return _refused(data, _("not a report envelope (its fields differ)"))
    if envelope.get("format") != FORMAT:
        return _refused(data, _("not a report envelope (unknown format)"), envelope)
    try:
        canonical = encode(envelope)
    except ValueError:
        return _refused(data, _("not a report envelope (not canonical JSON)"), envelope)
    if canonical != data:
        return _refused(data, _("the file was changed (it is not the signed text)"), envelope)
    try:
        public = public_key_of(str(envelope["public_key"]).encode())
        signature = base64.b64decode(str(envelope["signature"]), validate=True)
    except (KeyProblem, binascii.Error, ValueError):
        return _refused(data, _("the envelope's key or signature is unreadable"), envelope)
    if base64.b64encode(signature).decode() != envelope["signature"]:
        return _refused(data, _("the envelope's key or signature is unreadable"), envelope)
    if key_id(public) != envelope["key_id"]:
        return _refused(data, _("the key id does not match the envelope's key"), envelope)
    if trusted is not None and key_id(trusted) != key_id(public):
        return _refused(data, _("signed with another key than the one given"), envelope)
    try:
        public.verify(signature, _message(envelope))
    except InvalidSignature:
        return _refused(data, _("the signature does not match the content"), envelope)
    return Verified(True, None, envelope, str(envelope["key_id"]), digest(data))

"""Signed checkpoints of the audit log's head, kept outside the database.

The hash chain alone cannot tell a log whose last entries were cut off (and whose head
row was rewritten to match) from an intact shorter log. A checkpoint is a signed
statement ``{seq, hash, at}`` of the head at some moment, written to a file (one JSON
line each) and to the server log, both outside the database; an operator copies them
elsewhere. ``clinicam audit verify --checkpoint FILE`` then finds truncation (the log
ends before a checkpoint's seq) and rewrites (the entry at a checkpoint's seq has
another hash).

Signatures are Ed25519 (``cryptography``): the private key lives in a file outside the
database (0600, ``audit-signing.key`` in the state folder by default); verifying
needs only the public key, which the operator keeps with the checkpoints.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy.orm import Session

from clinicam.i18n import _
from server.audit.log import HEAD_ID, AuditHead, canonical_json

_LOGGER = logging.getLogger(__name__)

KEY_FILE = "audit-signing.key"
PUBLIC_KEY_FILE = "audit-signing.pub"
CHECKPOINT_FILE = "audit-checkpoints.jsonl"
_DOMAIN = b"clinicam-audit-checkpoint-v1\n"


class CheckpointError(Exception):
    """A key or checkpoint file that cannot be used; the message says why."""


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(key: Ed25519PublicKey) -> str:
    return hashlib.sha256(_raw_public(key)).hexdigest()[:16]


def public_pem(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def create_key_file(path: Path, public_name: str) -> Ed25519PrivateKey | None:
    """A new Ed25519 key in ``path`` (PEM, 0600, never over an existing file) with its
    public half beside it as ``public_name``; None if another process made one first."""
    key = Ed25519PrivateKey.generate()
    path.parent.mkdir(parents=True, exist_ok=True)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return None
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
    path.with_name(public_name).write_bytes(public_pem(key.public_key()))
    return key


def load_key_file(path: Path) -> Ed25519PrivateKey:
    """The Ed25519 private key in ``path``; ValueError (a sentence) if it is not one."""
    try:
        loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError, OSError) as exc:
        raise ValueError(
            _("{path} is not a usable private key: {problem}", path=path, problem=str(exc))
        ) from None
    if not isinstance(loaded, Ed25519PrivateKey):
        raise ValueError(_("{path} is not an Ed25519 private key", path=path))
    return loaded


def signing_key(path: Path, *, create: bool = False) -> Ed25519PrivateKey:
    """The private key in ``path`` (PEM); with ``create``, a new one (0600) if it is missing.

    A new key's public half is written beside it as ``audit-signing.pub``.
    """
    if not path.is_file():
        if not create:
            raise CheckpointError(_("no audit signing key at {path}", path=path))
        key = create_key_file(path, PUBLIC_KEY_FILE)
        if key is not None:
            _LOGGER.warning("created the audit signing key %s (keep a copy of its .pub)", path)
            return key
    try:
        return load_key_file(path)
    except ValueError as exc:
        raise CheckpointError(exc.args[0]) from None


def verifying_key(path: Path) -> Ed25519PublicKey:
    """A public key from ``path``: a public PEM, or the private key file itself."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CheckpointError(
            _("cannot read the key {path}: {problem}", path=path, problem=exc.strerror)
        ) from None
    try:
        if b"PRIVATE KEY" in data:
            private = serialization.load_pem_private_key(data, password=None)
            if isinstance(private, Ed25519PrivateKey):
                return private.public_key()
        else:
            public = serialization.load_pem_public_key(data)
            if isinstance(public, Ed25519PublicKey):
                return public
    except (ValueError, TypeError) as exc:
        raise CheckpointError(
            _("{path} is not a usable key: {problem}", path=path, problem=str(exc))
        ) from None
    raise CheckpointError(_("{path} is not an Ed25519 key", path=path))


def _message(record: dict[str, Any]) -> bytes:
    fields = {k: record[k] for k in ("v", "seq", "hash", "at", "key")}
    return _DOMAIN + canonical_json(fields).encode()


def make_checkpoint(session: Session, key: Ed25519PrivateKey) -> dict[str, Any]:
    """A signed record of the current head (read in ``session``)."""
    head = session.get(AuditHead, HEAD_ID)
    if head is None:
        raise CheckpointError(_("the audit_head row is missing"))
    record: dict[str, Any] = {
        "v": 1,
        "seq": int(head.seq),
        "hash": head.hash,
        "at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "key": key_id(key.public_key()),
    }
    record["sig"] = base64.b64encode(key.sign(_message(record))).decode()
    return record


def append_checkpoint(path: Path, record: dict[str, Any]) -> None:
    """Append one line to the checkpoint file and fsync it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
    with os.fdopen(fd, "a", encoding="utf-8") as out:
        out.write(canonical_json(record) + "\n")
        out.flush()
        os.fsync(out.fileno())


@dataclass(frozen=True)
class CheckedCheckpoints:
    """Trusted (seq, hash) pairs, and the lines that could not be trusted."""

    anchors: list[tuple[int, str]]
    refused: list[str]


def read_checkpoints(path: Path, key: Ed25519PublicKey) -> CheckedCheckpoints:
    """Every line of ``path`` whose signature verifies with ``key``; the rest refused."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise CheckpointError(
            _("cannot read the checkpoint file {path}: {problem}", path=path, problem=str(exc))
        ) from None
    anchors: list[tuple[int, str]] = []
    refused: list[str] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            signature = base64.b64decode(record["sig"], validate=True)
            key.verify(signature, _message(record))
            seq, digest = record["seq"], record["hash"]
            if not isinstance(seq, int) or not isinstance(digest, str):
                raise TypeError("seq/hash")
        except InvalidSignature:
            refused.append(
                _("checkpoint line {number}: the signature does not verify", number=number)
            )
            continue
        except (ValueError, KeyError, TypeError):
            refused.append(_("checkpoint line {number}: not a checkpoint record", number=number))
            continue
        anchors.append((seq, digest))
    if not anchors and not refused:
        refused.append(_("checkpoint file {path}: no checkpoints in it", path=path))
    return CheckedCheckpoints(anchors, refused)

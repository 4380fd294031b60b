"""Certificates and keys given in ``clinicam.toml``: inline PEM or a file next to it.

A value that starts with ``-----BEGIN`` is the PEM itself; anything else is the name
of a file in the same folder as ``clinicam.toml`` (no sub-folders). Certificates and
keys are parsed (with ``cryptography`` when installed, as it is with the appliance's
WebRTC stack; otherwise only their PEM framing is checked) so that a truncated or
swapped file is refused before anything is installed. Error messages never contain
key material.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from clinicam.i18n import _

_LOGGER = logging.getLogger(__name__)

PEM_BEGIN = "-----BEGIN"
MAX_PEM_BYTES = 256 * 1024


class PemError(ValueError):
    """The value is not usable; the message says why (without the material)."""


@dataclass(frozen=True)
class PemSource:
    """Resolved PEM text and, when it came from a file, that file's name."""

    text: str
    file_name: str | None


def resolve(value: str, folder: Path) -> PemSource:
    """The PEM text of ``value``: itself if inline, else the named file in ``folder``."""
    if value.lstrip().startswith(PEM_BEGIN):
        return PemSource(value.strip() + "\n", None)
    name = value.strip()
    if not name or "/" in name or "\\" in name or name in (".", ".."):
        raise PemError(_("must be PEM text (-----BEGIN …) or a file name next to clinicam.toml"))
    path = folder / name
    if not path.is_file():
        raise PemError(
            _("file '{name}' is not next to clinicam.toml on the boot partition", name=name)
        )
    data = path.read_bytes()
    if len(data) > MAX_PEM_BYTES:
        raise PemError(_("file '{name}' is too large to be a certificate or key", name=name))
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise PemError(_("file '{name}' is not a PEM text file", name=name)) from None
    if PEM_BEGIN not in text:
        raise PemError(_("file '{name}' is not in PEM format (-----BEGIN …)", name=name))
    return PemSource(text.strip() + "\n", name)


def _require_block(text: str, kinds: tuple[str, ...], what: str) -> None:
    if not any(f"{PEM_BEGIN} {kind}-----" in text for kind in kinds):
        raise PemError(_("is not a PEM {what}", what=what))
    if "-----END" not in text:
        raise PemError(_("the PEM {what} is cut off (no -----END line)", what=what))


def check_certificates(text: str) -> int:
    """Validate one or more PEM certificates; returns how many there are."""
    _require_block(text, ("CERTIFICATE",), _("certificate"))
    try:
        from cryptography import x509
    except ImportError:  # pragma: no cover - cryptography comes with aiortc
        _LOGGER.debug("cryptography not installed: PEM framing checked only")
        return text.count(f"{PEM_BEGIN} CERTIFICATE-----")
    try:
        return len(x509.load_pem_x509_certificates(text.encode()))
    except ValueError:
        raise PemError(_("the certificate cannot be read (damaged or incomplete)")) from None


def check_key_pair(cert_text: str, key_text: str) -> None:
    """Validate a client certificate and its unencrypted private key, and that they match."""
    check_certificates(cert_text)
    _require_block(key_text, ("PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY"), _("private key"))
    if "ENCRYPTED" in key_text:
        raise PemError(_("the private key is password-protected; give an unencrypted key"))
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization
    except ImportError:  # pragma: no cover - cryptography comes with aiortc
        return
    try:
        key = serialization.load_pem_private_key(key_text.encode(), password=None)
    except (ValueError, TypeError):
        raise PemError(_("the private key cannot be read (damaged or incomplete)")) from None
    cert = x509.load_pem_x509_certificates(cert_text.encode())[0]
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if cert.public_key().public_bytes(*spki) != key.public_key().public_bytes(*spki):
        raise PemError(_("the private key does not belong to client_cert_pem"))

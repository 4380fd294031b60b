"""What is wrong with ``clinicam.toml``, said the way a technician can act on it.

Each :class:`Problem` names the key as written in the file (``wifi[2].psk`` is the
second ``[[wifi]]`` network's psk), says what is wrong and how to fix it. Messages
never contain the value of a secret: pydantic's messages do not repeat the input,
and the schema's own messages only repeat harmless values (a time zone name).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pydantic import ValidationError

DOCS = "docs/provisioning.md"

HINTS_BY_KEY = {
    "device.id": "lower-case letters, digits and '-', exactly as the device is registered "
    "on the server",
    "device.timezone": 'a tz database name such as "Africa/Nairobi" or "Europe/Berlin" '
    '("UTC" also works)',
    "server.url": 'the server\'s address, e.g. "https://clinicam.example.org"',
    "server.token": "the device token the server's administrator gave you for this device",
    "mqtt": "give password, or client_cert_pem and client_key_pem",
    "mqtt.host": "the broker's host name, usually the server's",
    "mqtt.ca_cert_pem": "paste the CA certificate (-----BEGIN CERTIFICATE----- …) or put "
    "the file next to clinicam.toml and write its name",
    "mqtt.client_cert_pem": "the device's certificate, as PEM text or a file name next to "
    "clinicam.toml",
    "mqtt.client_key_pem": "the device's unencrypted private key, as PEM text or a file name "
    "next to clinicam.toml",
    "wifi": "each network once, and one country for all of them",
    "wifi.ssid": "the network's name exactly as phones show it",
    "wifi.psk": "the Wi-Fi password, 8 to 63 characters; for an open network write key_mgmt = "
    '"none" and no psk',
    "wifi.country": 'the two-letter code of the country the device is in, e.g. "KE"',
    "wifi.priority": "a whole number from -999 to 999; higher is tried first",
    "toml": "look at the line named above: quotes closed, one key = value per line, "
    "[section] names in brackets; save the file as UTF-8 text",
}
HINTS_BY_SECTION = {
    "pantilt": "servo calibration: see [pantilt] in docs/configuration.md; when unsure, "
    "leave the key out and run 'clinicam appliance calibrate' later",
    "camera": "see [camera] in docs/configuration.md; when unsure, leave the key out",
}
HINTS_BY_TYPE = {
    "extra_forbidden": f"not a setting: check the spelling against {DOCS}",
    "missing": "add this setting",
}


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the file."""

    key: str
    message: str
    hint: str = ""


def dotted(loc: Sequence[int | str]) -> str:
    """``("wifi", 1, "psk")`` → ``wifi[2].psk`` (networks counted from 1)."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part + 1}]"
        else:
            out += f".{part}" if out else part
    return out


def _generic(key: str) -> str:
    """``wifi[2].psk`` → ``wifi.psk`` (for the hint tables)."""
    while "[" in key:
        start = key.index("[")
        key = key[:start] + key[key.index("]", start) + 1 :]
    return key


def hint_for(key: str, error_type: str = "") -> str:
    """The most specific fix we know for ``key``."""
    generic = _generic(key)
    if error_type in HINTS_BY_TYPE:
        return HINTS_BY_TYPE[error_type]
    if generic in HINTS_BY_KEY:
        return HINTS_BY_KEY[generic]
    return HINTS_BY_SECTION.get(generic.split(".")[0], f"see {DOCS}")


def _clean(message: str) -> str:
    for prefix in ("Value error, ", "Assertion failed, "):
        if message.startswith(prefix):
            return message[len(prefix) :]
    return message


def from_validation(
    err: ValidationError,
    *,
    rename: Callable[[str], str] = lambda key: key,
) -> list[Problem]:
    """One problem per pydantic error; ``rename`` maps model keys to the file's keys."""
    problems = []
    for item in err.errors():
        key = rename(dotted(item["loc"]))
        message = _clean(item["msg"])
        if item["type"] == "extra_forbidden":
            message = "unknown key"
        elif item["type"] == "missing":
            message = "missing (this setting is required)"
        if not key and ": " in message:  # model-level rule naming its own key
            key, message = message.split(": ", 1)
        key = key or "(whole file)"
        problems.append(Problem(key, message, hint_for(key, item["type"])))
    return problems

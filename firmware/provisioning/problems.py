"""What is wrong with ``clinicam.toml``, said the way a technician can act on it.

Each :class:`Problem` names the key as written in the file (``wifi[2].psk`` is the
second ``[[wifi]]`` network's psk), says what is wrong and how to fix it. Messages
never contain the value of a secret: pydantic's messages do not repeat the input,
and the schema's own messages only repeat harmless values (a time zone name).

Messages and hints are marked for the catalogue (:func:`clinicam.i18n._`), so that
the log on the boot partition is written in the appliance's language; pydantic's own
(English) messages are replaced by ours, chosen by the error's type.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from clinicam.i18n import N_, Text, _, message_of

DOCS = "docs/provisioning.md"

HINTS_BY_KEY = {
    "device.id": _(
        "lower-case letters, digits and '-', exactly as the device is registered on the server"
    ),
    "device.timezone": _(
        'a tz database name such as "Africa/Nairobi" or "Europe/Berlin" ("UTC" also works)'
    ),
    "device.language": _(
        '"zh-CN" (Simplified Chinese) or "en" (English): the language of the appliance '
        "and of this log"
    ),
    "server.url": _('the server\'s address, e.g. "https://clinicam.example.org"'),
    "server.token": _("the device token the server's administrator gave you for this device"),
    "mqtt": _("give password, or client_cert_pem and client_key_pem"),
    "mqtt.host": _("the broker's host name, usually the server's"),
    "mqtt.ca_cert_pem": _(
        "paste the CA certificate (-----BEGIN CERTIFICATE----- …) or put the file next "
        "to clinicam.toml and write its name"
    ),
    "mqtt.client_cert_pem": _(
        "the device's certificate, as PEM text or a file name next to clinicam.toml"
    ),
    "mqtt.client_key_pem": _(
        "the device's unencrypted private key, as PEM text or a file name next to clinicam.toml"
    ),
    "wifi": _("each network once, and one country for all of them"),
    "wifi.ssid": _("the network's name exactly as phones show it"),
    "wifi.psk": _(
        'the Wi-Fi password, 8 to 63 characters; for an open network write key_mgmt = "none" '
        "and no psk"
    ),
    "wifi.country": _('the two-letter code of the country the device is in, e.g. "KE"'),
    "wifi.priority": _("a whole number from -999 to 999; higher is tried first"),
    "toml": _(
        "look at the line named above: quotes closed, one key = value per line, [section] "
        "names in brackets; save the file as UTF-8 text"
    ),
}
HINTS_BY_SECTION = {
    "pantilt": _(
        "servo calibration: see [pantilt] in docs/configuration.md; when unsure, leave the "
        "key out and run 'clinicam appliance calibrate' later"
    ),
    "camera": _("see [camera] in docs/configuration.md; when unsure, leave the key out"),
}
HINTS_BY_TYPE = {
    "extra_forbidden": _("not a setting: check the spelling against {docs}", docs=DOCS),
    "missing": _("add this setting"),
}

# pydantic's messages are English only: ours, by error type, with the error's context.
MESSAGES_BY_TYPE = {
    "extra_forbidden": N_("unknown key"),
    "missing": N_("missing (this setting is required)"),
    "greater_than": N_("must be greater than {gt}"),
    "greater_than_equal": N_("must be at least {ge}"),
    "less_than": N_("must be less than {lt}"),
    "less_than_equal": N_("must be at most {le}"),
    "multiple_of": N_("must be a multiple of {multiple_of}"),
    "finite_number": N_("must be a finite number"),
    "string_too_short": N_("must have at least {min_length} characters"),
    "string_too_long": N_("must have at most {max_length} characters"),
    "string_pattern_mismatch": N_("does not have the required form"),
    "string_type": N_('must be text in double quotes ("…")'),
    "int_type": N_("must be a whole number"),
    "int_parsing": N_("must be a whole number"),
    "int_from_float": N_("must be a whole number (no decimal part)"),
    "float_type": N_("must be a number"),
    "float_parsing": N_("must be a number"),
    "bool_type": N_("must be true or false (without quotes)"),
    "bool_parsing": N_("must be true or false (without quotes)"),
    "literal_error": N_("must be one of: {expected}"),
    "enum": N_("must be one of: {expected}"),
    "dict_type": N_("must be a table ([section])"),
    "model_type": N_("must be a table ([section])"),
    "model_attributes_type": N_("must be a table ([section])"),
    "list_type": N_("must be a list ([[section]] blocks or [ … ])"),
    "too_short": N_("needs at least {min_length} entries"),
    "too_long": N_("may have at most {max_length} entries"),
    "path_type": N_("must be a file path in double quotes"),
}
INVALID_VALUE = N_("invalid value ({detail})")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the file (``message`` and ``hint`` usually marked :class:`Text`)."""

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
    return HINTS_BY_SECTION.get(generic.split(".")[0], _("see {docs}", docs=DOCS))


def _clean(message: str) -> str:
    for prefix in ("Value error, ", "Assertion failed, "):
        if message.startswith(prefix):
            return message[len(prefix) :]
    return message


def _context(ctx: Mapping[str, Any]) -> dict[str, str]:
    out = {key: str(value) for key, value in ctx.items()}
    if "expected" in out:  # pydantic's "'zh-CN' or 'en'": no English word in a Chinese log
        out["expected"] = out["expected"].replace(" or ", ", ")
    return out


def message_for(item: Mapping[str, Any]) -> str:
    """What one pydantic error says, through the catalogue where we can."""
    kind, ctx = item["type"], item.get("ctx") or {}
    error = ctx.get("error")
    if isinstance(error, BaseException):  # our own validators: their (marked) message
        message = message_of(error)
        return message if isinstance(message, Text) else _clean(item["msg"])
    template = MESSAGES_BY_TYPE.get(kind)
    if template is None:
        return Text(INVALID_VALUE, {"detail": item["msg"]})
    return Text(template, _context(ctx))


def from_validation(
    err: ValidationError,
    *,
    rename: Callable[[str], str] = lambda key: key,
) -> list[Problem]:
    """One problem per pydantic error; ``rename`` maps model keys to the file's keys."""
    problems = []
    for item in err.errors():
        key = rename(dotted(item["loc"]))
        message = message_for(item)
        if not key and ": " in message and not isinstance(message, Text):
            key, message = message.split(": ", 1)  # a model-level rule naming its own key
        key = key or _("(whole file)")
        problems.append(Problem(key, message, hint_for(key, item["type"])))
    return problems

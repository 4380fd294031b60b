"""What provisioning leaves on the boot partition for the technician.

``clinicam-provision.log`` says on its first line whether it worked, then the
details; it is UTF-8 with Windows line ends so that Notepad shows it properly. It is
written in the appliance's language (``device.language`` of the file, else the
device's setting), or, when the file cannot say which (not readable, not TOML), every
line in Chinese and then in English.
``clinicam.toml.applied`` keeps the non-secret part of an applied file for reference.
Neither ever contains a token, password, Wi-Fi password or key: they are built from
problems and the plan's summary only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from clinicam import tomlwrite
from clinicam.files import write_atomically
from clinicam.i18n import CHINESE, ENGLISH, N_, Text, TextList, _, message_of, translate
from firmware.provisioning.problems import Problem

LOG_FILE = "clinicam-provision.log"
APPLIED_FILE = "clinicam.toml.applied"
NEWLINE = "\r\n"
INDENT = "    "
LANGUAGE_NAMES = {CHINESE: N_("Simplified Chinese (zh-CN)"), ENGLISH: N_("English (en)")}


def stamp(when: datetime) -> str:
    """A readable time (the device clock may still be wrong before it has internet)."""
    return when.strftime("%Y-%m-%d %H:%M:%S %Z").strip()


def _indented(message: str, indent: str = INDENT) -> str:
    return TextList((indent, message), separator="")


def render(lines: Iterable[str], locale: str | None) -> list[str]:
    """The lines in ``locale``; with None (the language is not known) each line in
    Chinese, then in English where that differs, so that either reader can act on it."""
    out: list[str] = []
    for line in lines:
        if locale is not None:
            out.append(translate(line, locale))
            continue
        chinese, english = translate(line, CHINESE), translate(line, ENGLISH)
        out += [chinese] if chinese == english else [chinese, english]
    return out


def _text(lines: Iterable[str], locale: str | None) -> bytes:
    return (NEWLINE.join(render(lines, locale)) + NEWLINE).encode("utf-8")


def failure_log(
    file_name: str, problems: Iterable[Problem], when: datetime, locale: str | None = ENGLISH
) -> bytes:
    """The log for a file that could not be used; nothing was changed."""
    lines: list[str] = [
        _("FAILED — nothing was changed"),
        "",
        _(
            "{file} was checked at {time} and has these problems:",
            file=file_name,
            time=stamp(when),
        ),
        "",
    ]
    for problem in problems:
        lines.append(_("{key}: {message}", key=problem.key, message=problem.message))
        if problem.hint:
            lines.append(_indented(_("fix: {hint}", hint=problem.hint)))
    lines += [
        "",
        _("The device keeps its previous settings."),
        _(
            "Correct {file} on this card and start the device again: it checks the file "
            "at every start until it works.",
            file=file_name,
        ),
    ]
    return _text(lines, locale)


def partial_log(
    file_name: str,
    step: str,
    error: BaseException | str,
    when: datetime,
    locale: str | None = ENGLISH,
) -> bytes:
    """The log for a file that was valid but could not be applied completely."""
    detail = message_of(error) if isinstance(error, BaseException) else error
    lines: list[str] = [
        _("FAILED — partly applied; the device will finish it at the next start"),
        "",
        _(
            "{file} is valid, but at {time} writing the {step} failed:",
            file=file_name,
            time=stamp(when),
            step=step if isinstance(step, Text) else Text(step),
        ),
        _indented(detail),
        "",
        _(
            "{file} was left on this card; at the next start it is applied again from "
            "the beginning.",
            file=file_name,
        ),
        _("If this message comes back, the SD card may be full or failing."),
    ]
    return _text(lines, locale)


def _broker(mqtt: Mapping[str, Any]) -> str:
    auth = _("client certificate") if mqtt["auth"] == "client certificate" else _("password")
    return _(
        "broker: {host}:{port} as {username} ({tls}, {auth})",
        host=mqtt["host"],
        port=mqtt["port"],
        username=mqtt["username"],
        tls=_("TLS") if mqtt["tls"] else _("no TLS"),
        auth=auth,
    )


def _describe(summary: Mapping[str, Any]) -> list[str]:
    lines = [_("server: {url}", url=summary["server"]["url"]), _broker(summary["mqtt"])]
    for net in summary["wifi"]:
        lines.append(
            _(
                'Wi-Fi: "{ssid}" (priority {priority}) -> {file}',
                ssid=net["ssid"],
                priority=net["priority"],
                file=net["file"],
            )
        )
    device = summary["device"]
    if device.get("timezone"):
        lines.append(_("time zone: {zone}", zone=device["timezone"]))
    if device.get("language") in LANGUAGE_NAMES:
        name = Text(LANGUAGE_NAMES[device["language"]])
        lines.append(_("language: {language}", language=name))
    for section in ("camera", "pantilt"):
        if section in summary:
            keys = ", ".join(sorted(summary[section]))
            lines.append(_("[{section}] settings applied: {keys}", section=section, keys=keys))
    return lines


def success_log(
    device_id: str,
    summary: Mapping[str, Any],
    notes: Iterable[str],
    when: datetime,
    locale: str | None = ENGLISH,
) -> bytes:
    """The log for a file that was applied."""
    lines: list[str] = [
        _("OK — provisioned {device} at {time}", device=device_id, time=stamp(when)),
        "",
        *_describe(summary),
        "",
        _(
            "Passwords, tokens and keys were moved to /etc/clinicam (readable by the service "
            "only) and removed from this card, together with clinicam.toml."
        ),
        _("What was applied, without secrets, is in {file}.", file=APPLIED_FILE),
    ]
    notes = list(notes)
    if notes:
        lines += ["", _("Notes:"), *(_indented(note, "  - ") for note in notes)]
    return _text(lines, locale)


def applied_file(
    summary: Mapping[str, Any],
    removed: Iterable[str],
    when: datetime,
    locale: str | None = ENGLISH,
) -> bytes:
    """``clinicam.toml.applied``: the non-secret settings, and the card files removed
    (its comment in the log's language; the keys are the file's own)."""
    data: dict[str, Any] = {
        "applied_at": stamp(when),
        **_without_none(summary),
        "removed_files": ["clinicam.toml", *removed],
    }
    comment = _("Applied by clinicam provisioning. Secrets are not in this file.")
    header = "".join(f"# {line}\n" for line in render([comment], locale))
    return (header + tomlwrite.dumps(data)).replace("\n", NEWLINE).encode("utf-8")


def _without_none(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_none(v) for v in value]
    return value


def write(boot: Path, name: str, data: bytes) -> None:
    """Replace ``boot/name`` atomically (FAT keeps no modes: none are set)."""
    write_atomically(boot / name, data)

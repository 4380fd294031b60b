"""What provisioning leaves on the boot partition for the technician.

``clinicam-provision.log`` says on its first line whether it worked, then the
details; it is UTF-8 with Windows line ends so that Notepad shows it properly.
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
from firmware.provisioning.problems import Problem

LOG_FILE = "clinicam-provision.log"
APPLIED_FILE = "clinicam.toml.applied"
NEWLINE = "\r\n"
OK_LINE = "OK — provisioned {device} at {time}"
FAILED_LINE = "FAILED — nothing was changed"
PARTLY_LINE = "FAILED — partly applied; the device will finish it at the next start"


def stamp(when: datetime) -> str:
    """A readable time (the device clock may still be wrong before it has internet)."""
    return when.strftime("%Y-%m-%d %H:%M:%S %Z").strip()


def _text(lines: Iterable[str]) -> bytes:
    return (NEWLINE.join(lines) + NEWLINE).encode("utf-8")


def failure_log(file_name: str, problems: Iterable[Problem], when: datetime) -> bytes:
    """The log for a file that could not be used; nothing was changed."""
    lines = [
        FAILED_LINE,
        "",
        f"{file_name} was checked at {stamp(when)} and has these problems:",
        "",
    ]
    for problem in problems:
        lines.append(f"{problem.key}: {problem.message}")
        if problem.hint:
            lines.append(f"    fix: {problem.hint}")
    lines += [
        "",
        f"The device keeps its previous settings. Correct {file_name} on this card and",
        "start the device again: it checks the file at every start until it works.",
    ]
    return _text(lines)


def partial_log(file_name: str, step: str, error: str, when: datetime) -> bytes:
    """The log for a file that was valid but could not be applied completely."""
    return _text(
        [
            PARTLY_LINE,
            "",
            f"{file_name} is valid, but at {stamp(when)} writing the {step} failed:",
            f"    {error}",
            "",
            f"{file_name} was left on this card; at the next start it is applied again",
            "from the beginning. If this message comes back, the SD card may be full or failing.",
        ]
    )


def _describe(summary: Mapping[str, Any]) -> list[str]:
    mqtt = summary["mqtt"]
    lines = [
        f"server: {summary['server']['url']}",
        f"broker: {mqtt['host']}:{mqtt['port']} as {mqtt['username']} "
        f"({'TLS' if mqtt['tls'] else 'no TLS'}, {mqtt['auth']})",
    ]
    for net in summary["wifi"]:
        lines.append(f'Wi-Fi: "{net["ssid"]}" (priority {net["priority"]}) -> {net["file"]}')
    if summary["device"]["timezone"]:
        lines.append(f"time zone: {summary['device']['timezone']}")
    for section in ("camera", "pantilt"):
        if section in summary:
            lines.append(f"[{section}] settings applied: {', '.join(sorted(summary[section]))}")
    return lines


def success_log(
    device_id: str, summary: Mapping[str, Any], notes: Iterable[str], when: datetime
) -> bytes:
    """The log for a file that was applied."""
    lines = [OK_LINE.format(device=device_id, time=stamp(when)), "", *_describe(summary)]
    lines += [
        "",
        "Passwords, tokens and keys were moved to /etc/clinicam (readable by the service",
        "only) and removed from this card, together with clinicam.toml. What was applied,",
        f"without secrets, is in {APPLIED_FILE}.",
    ]
    notes = list(notes)
    if notes:
        lines += ["", "Notes:", *(f"  - {note}" for note in notes)]
    return _text(lines)


def applied_file(summary: Mapping[str, Any], removed: Iterable[str], when: datetime) -> bytes:
    """``clinicam.toml.applied``: the non-secret settings, and the card files removed."""
    data: dict[str, Any] = {
        "applied_at": stamp(when),
        **_without_none(summary),
        "removed_files": ["clinicam.toml", *removed],
    }
    header = "# Applied by clinicam provisioning. Secrets are not in this file.\n"
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

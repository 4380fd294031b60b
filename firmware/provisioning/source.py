"""Reading ``clinicam.toml`` from the boot partition into a validated :class:`ProvisioningFile`.

Whatever is wrong — not UTF-8, not TOML, cut off, unknown keys, bad values — comes
back as :class:`Invalid` with every problem found, never as a crash.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from clinicam.i18n import _
from firmware.provisioning.problems import HINTS_BY_KEY, Problem, from_validation
from firmware.provisioning.schema import ProvisioningFile

BOOT_FILE = "clinicam.toml"
BOOT_FILE_WINDOWS = "clinicam.toml.txt"  # Windows hides the extension it added
MAX_FILE_BYTES = 1024 * 1024
_TOML_POSITION = re.compile(r"^(?P<detail>.*) \(at line (?P<line>\d+), column (?P<column>\d+)\)$")


class Invalid(Exception):
    """The provisioning file cannot be applied; ``problems`` says why."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(f"{p.key}: {p.message}" for p in problems))
        self.problems = problems


def find(boot: Path) -> Path | None:
    """The provisioning file on the boot partition, if there is one."""
    for name in (BOOT_FILE, BOOT_FILE_WINDOWS):
        if (boot / name).is_file():
            return boot / name
    return None


def _file_problem(message: str) -> Invalid:
    return Invalid([Problem(BOOT_FILE, message, HINTS_BY_KEY["toml"])])


def _toml_message(exc: tomllib.TOMLDecodeError) -> str:
    """Where the TOML is broken, in the reader's language (the parser's detail is English)."""
    found = _TOML_POSITION.match(str(exc))
    if found is None:
        return _("is not valid TOML: {detail}", detail=str(exc))
    return _(
        "is not valid TOML: line {line}, column {column} ({detail})",
        line=found["line"],
        column=found["column"],
        detail=found["detail"],
    )


def read_toml(path: Path) -> dict[str, Any]:
    """The file's tables; a byte-order mark and Windows line ends are fine."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise _file_problem(
            _("cannot be read: {reason}", reason=exc.strerror or str(exc))
        ) from None
    if len(raw) > MAX_FILE_BYTES:
        raise _file_problem(_("is far too large to be a provisioning file"))
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise _file_problem(_("is not UTF-8 text (save it as UTF-8)")) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _file_problem(_toml_message(exc)) from None


def parse(data: dict[str, Any], root: Path) -> ProvisioningFile:
    """Validate the tables (the time zone against the zone files under ``root``)."""
    try:
        return ProvisioningFile.model_validate(data, context={"root": root})
    except ValidationError as exc:
        raise Invalid(from_validation(exc)) from None

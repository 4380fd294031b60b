"""One line of the doctor's report: a check's name, PASS/WARN/FAIL, what was seen, the fix."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Status = Literal["PASS", "WARN", "FAIL"]


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check; ``fix`` tells the technician what to do (empty on PASS)."""

    name: str
    status: Status
    detail: str
    fix: str = ""

    @property
    def ok(self) -> bool:
        """Not a failure (a warning is ok)."""
        return self.status != "FAIL"


class CheckFailed(Exception):
    """Raised inside a check to end it with FAIL, ``detail`` and ``fix``."""

    def __init__(self, detail: str, fix: str) -> None:
        super().__init__(detail)
        self.detail = detail
        self.fix = fix


def passed(name: str, detail: str) -> CheckResult:
    """A PASS line."""
    return CheckResult(name, "PASS", detail)


def warned(name: str, detail: str, fix: str) -> CheckResult:
    """A WARN line."""
    return CheckResult(name, "WARN", detail, fix)


def failed(name: str, detail: str, fix: str) -> CheckResult:
    """A FAIL line."""
    return CheckResult(name, "FAIL", detail, fix)

"""install.sh: detects Debian 12 and Raspberry Pi OS, refuses anything else clearly."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

INSTALL = Path(__file__).resolve().parents[2] / "install.sh"

DEBIAN12 = (
    'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n'
    "VERSION_CODENAME=bookworm\n"
)
RASPBIAN = (
    'PRETTY_NAME="Raspbian GNU/Linux 12 (bookworm)"\nID=raspbian\nID_LIKE=debian\n'
    'VERSION_ID="12"\nVERSION_CODENAME=bookworm\n'
)
UBUNTU = 'PRETTY_NAME="Ubuntu 24.04 LTS"\nID=ubuntu\nVERSION_ID="24.04"\nVERSION_CODENAME=noble\n'
DEBIAN11 = (
    'PRETTY_NAME="Debian GNU/Linux 11 (bullseye)"\nID=debian\nVERSION_ID="11"\n'
    "VERSION_CODENAME=bullseye\n"
)


def _run(
    tmp_path: Path, os_release: str, *args: str, rpi_issue: bool = False
) -> subprocess.CompletedProcess[str]:
    release = tmp_path / "os-release"
    release.write_text(os_release)
    issue = tmp_path / "rpi-issue"
    if rpi_issue:
        issue.write_text("Raspberry Pi reference 2024-11-19\n")
    env = {
        "PATH": "/usr/bin:/bin",
        "CLINICAM_OS_RELEASE": str(release),
        "CLINICAM_RPI_ISSUE": str(issue),
    }
    return subprocess.run(
        ["bash", str(INSTALL), *args], env=env, capture_output=True, text=True, timeout=30
    )


@pytest.mark.parametrize(
    ("text", "rpi", "expected"),
    [(DEBIAN12, False, "debian12"), (DEBIAN12, True, "rpios"), (RASPBIAN, False, "rpios")],
)
def test_supported_systems_are_detected(
    tmp_path: Path, text: str, rpi: bool, expected: str
) -> None:
    result = _run(tmp_path, text, "--detect", rpi_issue=rpi)
    assert result.returncode == 0
    assert result.stdout.strip() == expected


@pytest.mark.parametrize("text", [UBUNTU, DEBIAN11])
def test_unsupported_systems_stop_with_a_clear_message(tmp_path: Path, text: str) -> None:
    result = _run(tmp_path, text, "--role", "dev")
    assert result.returncode == 1
    assert "not supported" in result.stderr and "Debian 12" in result.stderr


def test_bad_role_is_refused_before_anything_is_installed(tmp_path: Path) -> None:
    result = _run(tmp_path, DEBIAN12, "--role", "toaster")
    assert result.returncode == 1 and "unknown role 'toaster'" in result.stderr
    result = _run(tmp_path, DEBIAN12)
    assert result.returncode == 1 and "choose a role" in result.stderr

"""The appliance's subcommands reach their tools, and options work after the action."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


def _clinicam(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "clinicam_app", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_options_after_the_action_are_understood(tmp_path: Path) -> None:
    config = tmp_path / "appliance.toml"
    config.write_text('device_id = "cam-7"\nbackend = "sim"\n')
    done = _clinicam("appliance", "run", "--config", str(config), "--check")
    assert done.returncode == 0 and "configuration OK" in done.stdout
    config.write_text('device_id = "Not Valid!"\n')
    done = _clinicam("appliance", "run", "--config", str(config), "--check")
    assert done.returncode == 2 and "device_id" in done.stderr


@pytest.mark.parametrize("tool", ["doctor", "provision", "update"])
def test_each_tool_answers_help(tool: str) -> None:
    done = _clinicam("appliance", tool, "--help")
    assert done.returncode == 0 and f"clinicam appliance {tool}" in done.stdout


def test_provision_with_nothing_to_do(tmp_path: Path) -> None:
    boot = tmp_path / "boot"
    boot.mkdir()
    done = _clinicam("appliance", "provision", "--boot", str(boot), "--root", str(tmp_path))
    assert done.returncode == 0 and "nothing to provision" in done.stdout

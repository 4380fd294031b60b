"""The doctor's system checks: clock synchronisation, free disk space, temperature."""

from __future__ import annotations

import logging
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from firmware.provisioning.doctor_result import CheckResult, Status, failed, passed, warned
from firmware.provisioning.sysfiles import under

_LOGGER = logging.getLogger(__name__)

CLOCK, DISK, TEMPERATURE = "clock", "disk space", "temperature"
NTP_FIX = "check NTP / internet"
MIN_FREE_BYTES = 500 * 1024 * 1024
MIN_FREE_FRACTION = 0.10
THERMAL_ZONE = "/sys/class/thermal/thermal_zone0/temp"
TEMP_WARN_C, TEMP_FAIL_C = 70.0, 80.0
GB = 1024**3


def check_clock(timeout_s: float) -> CheckResult:
    """``timedatectl``'s NTPSynchronized; WARN when it cannot tell."""
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    exe = shutil.which("timedatectl")
    if exe is None:
        return warned(CLOCK, f"cannot tell (no timedatectl); clock says {now}", NTP_FIX)
    try:
        proc = subprocess.run(
            [exe, "show", "-p", "NTPSynchronized", "--value"],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return warned(CLOCK, f"cannot tell ({exc}); clock says {now}", NTP_FIX)
    answer = proc.stdout.strip()
    if proc.returncode != 0 or answer not in ("yes", "no"):
        why = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[0]
        return warned(CLOCK, f"cannot tell ({why}); clock says {now}", NTP_FIX)
    if answer == "no":
        return failed(
            CLOCK,
            f"not synchronised; clock says {now}",
            f"{NTP_FIX}: the device needs internet access to an NTP server "
            "(timedatectl timesync-status); certificates and recordings need the right time",
        )
    return passed(CLOCK, f"synchronised (NTP); {now}")


def disk_verdict(free: int, total: int) -> Status:
    """FAIL below 500 MB or 10 % free, else PASS."""
    if free < MIN_FREE_BYTES or free < MIN_FREE_FRACTION * total:
        return "FAIL"
    return "PASS"


def check_disk(state_dir: Path) -> CheckResult:
    """Free space on the file system that holds the state folder."""
    path = state_dir
    while not path.exists() and path != path.parent:
        path = path.parent
    usage = shutil.disk_usage(path)
    share = usage.free / usage.total if usage.total else 0.0
    detail = (
        f"{usage.free / GB:.1f} GB free of {usage.total / GB:.1f} GB ({share:.0%}) "
        f"where {state_dir} is"
    )
    if disk_verdict(usage.free, usage.total) == "FAIL":
        return failed(
            DISK,
            detail,
            f"free space: delete old snapshots in {state_dir} or use a larger SD card "
            f"(at least {MIN_FREE_BYTES // 1024**2} MB and {MIN_FREE_FRACTION:.0%} free)",
        )
    return passed(DISK, detail)


def check_temperature(root: Path) -> CheckResult:
    """SoC temperature: FAIL above 80 °C, WARN above 70 °C or when not available."""
    path = under(root, THERMAL_ZONE)
    try:
        celsius = int(path.read_text().strip()) / 1000.0
    except (OSError, ValueError):
        return warned(
            TEMPERATURE, "not available", "only readable on the Pi (vcgencmd measure_temp)"
        )
    detail = f"{celsius:.1f} °C"
    cooling = "improve cooling: heatsink or fan, a ventilated case, out of direct sun"
    if celsius > TEMP_FAIL_C:
        return failed(TEMPERATURE, f"{detail}: too hot, the Pi slows down", cooling)
    if celsius > TEMP_WARN_C:
        return warned(TEMPERATURE, f"{detail}: warm", cooling)
    return passed(TEMPERATURE, detail)

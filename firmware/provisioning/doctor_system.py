"""The doctor's system checks: clock synchronisation, free disk space, temperature."""

from __future__ import annotations

import logging
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from clinicam.i18n import _
from firmware.provisioning.doctor_result import CheckResult, Status, failed, passed, warned
from firmware.provisioning.sysfiles import under

_LOGGER = logging.getLogger(__name__)

CLOCK, DISK, TEMPERATURE = _("clock"), _("disk space"), _("temperature")
NTP_FIX = _("check NTP / internet")
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
        return warned(CLOCK, _("cannot tell (no timedatectl); clock says {now}", now=now), NTP_FIX)
    try:
        proc = subprocess.run(
            [exe, "show", "-p", "NTPSynchronized", "--value"],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return warned(
            CLOCK, _("cannot tell ({why}); clock says {now}", why=str(exc), now=now), NTP_FIX
        )
    answer = proc.stdout.strip()
    if proc.returncode != 0 or answer not in ("yes", "no"):
        why = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[0]
        return warned(CLOCK, _("cannot tell ({why}); clock says {now}", why=why, now=now), NTP_FIX)
    if answer == "no":
        return failed(
            CLOCK,
            _("not synchronised; clock says {now}", now=now),
            _(
                "{fix}: the device needs internet access to an NTP server "
                "(timedatectl timesync-status); certificates and recordings need the right time",
                fix=NTP_FIX,
            ),
        )
    return passed(CLOCK, _("synchronised (NTP); {now}", now=now))


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
    detail = _(
        "{free} GB free of {total} GB ({share}) where {folder} is",
        free=f"{usage.free / GB:.1f}",
        total=f"{usage.total / GB:.1f}",
        share=f"{share:.0%}",
        folder=state_dir,
    )
    if disk_verdict(usage.free, usage.total) == "FAIL":
        return failed(
            DISK,
            detail,
            _(
                "free space: delete old snapshots in {folder} or use a larger SD card "
                "(at least {mb} MB and {share} free)",
                folder=state_dir,
                mb=MIN_FREE_BYTES // 1024**2,
                share=f"{MIN_FREE_FRACTION:.0%}",
            ),
        )
    return passed(DISK, detail)


def check_temperature(root: Path) -> CheckResult:
    """SoC temperature: FAIL above 80 °C, WARN above 70 °C or when not available."""
    path = under(root, THERMAL_ZONE)
    try:
        celsius = int(path.read_text().strip()) / 1000.0
    except (OSError, ValueError):
        return warned(
            TEMPERATURE,
            _("not available"),
            _("only readable on the Pi (vcgencmd measure_temp)"),
        )
    detail = f"{celsius:.1f} °C"
    cooling = _("improve cooling: heatsink or fan, a ventilated case, out of direct sun")
    if celsius > TEMP_FAIL_C:
        return failed(
            TEMPERATURE, _("{detail}: too hot, the Pi slows down", detail=detail), cooling
        )
    if celsius > TEMP_WARN_C:
        return warned(TEMPERATURE, _("{detail}: warm", detail=detail), cooling)
    return passed(TEMPERATURE, detail)

"""``clinicam appliance doctor``: one command that checks an appliance on site.

It checks the camera, the I2C bus and PCA9685, the servos (a ±2° pan move read back
from the chip), the GPIO pins, the MQTT broker and the server with this device's
credentials, clock synchronisation, free disk space and the temperature, and prints
a table: check | PASS/WARN/FAIL | what it saw | how to fix it. The exit code is 0
when nothing FAILed. Every check runs even when another one fails.

Stop the appliance service first (``sudo systemctl stop clinicam-appliance``): it
holds the camera, the I2C bus and the GPIO pins.
"""

from __future__ import annotations

import argparse
import logging
import sys
import textwrap
from collections.abc import Callable, Iterable
from pathlib import Path

from clinicam.configfile import ConfigError, load_config
from clinicam.const import ENV_APPLIANCE_PREFIX
from clinicam.i18n import ENGLISH, Translator, _, environment_locale, localized, message_of, say
from clinicam.logsetup import setup_logging
from firmware.config import ApplianceConfig
from firmware.provisioning import doctor_hardware as hw
from firmware.provisioning import doctor_network as net
from firmware.provisioning import doctor_system as system
from firmware.provisioning.doctor_hardware import DoctorHardware
from firmware.provisioning.doctor_result import CheckFailed, CheckResult, failed

__all__ = ["CHECK_NAMES", "CheckResult", "DoctorHardware", "format_table", "main_doctor"]

_LOGGER = logging.getLogger(__name__)

CHECK_NAMES = (
    hw.CAMERA,
    hw.I2C,
    hw.SERVOS,
    hw.GPIO,
    net.BROKER,
    net.SERVER,
    system.CLOCK,
    system.DISK,
    system.TEMPERATURE,
)
DEFAULT_TIMEOUT_S = 5.0
DETAIL_WIDTH, FIX_WIDTH = 46, 44


def _guarded(name: str, check: Callable[[], CheckResult]) -> CheckResult:
    """Run one check; an unexpected error is that check's FAIL, not the doctor's crash."""
    try:
        return check()
    except CheckFailed as exc:
        return failed(name, exc.detail, exc.fix)
    except Exception as exc:
        _LOGGER.debug("check %s crashed", name, exc_info=True)
        problem = f"{type(exc).__name__}: {exc}"
        return failed(name, _("unexpected error: {problem}", problem=problem), hw.STOP_SERVICE)


def _simulated(
    config: ApplianceConfig, given: DoctorHardware | None
) -> tuple[DoctorHardware, Callable[[], None]]:
    """The hardware to check: what was given, the simulated rig, or (Pi) opened per check."""
    if given is not None:
        return given, lambda: None
    if config.backend == "pi":
        return DoctorHardware(), lambda: None
    from gpiozero.pins.mock import MockFactory

    from firmware.hardware.sim import build_sim_rig

    rig = build_sim_rig(config)
    return DoctorHardware(i2c=rig.bus, camera=rig.camera, pin_factory=MockFactory()), rig.close


def _hardware_checks(
    config: ApplianceConfig, parts: DoctorHardware, root: Path
) -> list[CheckResult]:
    results = [_guarded(hw.CAMERA, lambda: hw.check_camera(config, parts.camera))]
    try:
        bus = parts.i2c if parts.i2c is not None else hw.open_pi_bus(root)
    except CheckFailed as exc:
        bus = None
        results.append(failed(hw.I2C, exc.detail, exc.fix))
    if bus is not None:
        results.append(_guarded(hw.I2C, lambda: hw.check_pca9685(bus, config.pantilt.i2c_address)))
    if results[-1].ok:
        results.append(_guarded(hw.SERVOS, lambda: hw.check_servos(config.pantilt, bus)))
    else:
        results.append(failed(hw.SERVOS, _("not tried: no PCA9685"), _("fix the I2C check first")))
    results.append(_guarded(hw.GPIO, lambda: hw.check_gpio(config, parts.pin_factory)))
    return results


def run_checks(
    config: ApplianceConfig,
    *,
    hardware: DoctorHardware | None = None,
    root: Path = Path("/"),
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> list[CheckResult]:
    """Every check, in :data:`CHECK_NAMES` order.

    ``hardware`` replaces the camera, I2C bus and pin factory the configuration's
    backend would open (tests pass a simulated rig's). ``root`` prefixes the system
    files read (``/dev/i2c-1``, the thermal zone).
    """
    parts, close = _simulated(config, hardware)
    try:
        results = _hardware_checks(config, parts, root)
    finally:
        close()
    device = config.device_id
    results += [
        _guarded(net.BROKER, lambda: net.check_broker(config.mqtt, device, timeout_s)),
        _guarded(net.SERVER, lambda: net.check_server(config.server, device, timeout_s)),
        _guarded(system.CLOCK, lambda: system.check_clock(timeout_s)),
        _guarded(system.DISK, lambda: system.check_disk(config.state_dir)),
        _guarded(system.TEMPERATURE, lambda: system.check_temperature(root)),
    ]
    return results


def _row(cells: tuple[str, str, str, str], widths: tuple[int, int, int, int]) -> list[str]:
    wrapped = [
        textwrap.wrap(cell, width) or [""] for cell, width in zip(cells, widths, strict=True)
    ]
    height = max(len(lines) for lines in wrapped)
    lines = []
    for index in range(height):
        parts = [
            (column[index] if index < len(column) else "").ljust(width)
            for column, width in zip(wrapped, widths, strict=True)
        ]
        lines.append("  ".join(parts).rstrip())
    return lines


def format_table(results: Iterable[CheckResult], locale: str = ENGLISH) -> str:
    """The report as a text table with a summary line, in ``locale``."""
    results = list(results)
    tr = Translator(locale)
    head = (tr.text(_("CHECK")), tr.text(_("RESULT")), tr.text(_("DETAIL")), tr.text(_("FIX")))
    name_width = max([len(head[0]), *(len(tr.text(r.name)) for r in results)])
    widths = (name_width, 6, DETAIL_WIDTH, FIX_WIDTH)
    lines = _row(head, widths)
    lines.append("  ".join("-" * width for width in widths))
    for r in results:
        cells = (tr.text(r.name), r.status, tr.text(r.detail), tr.text(r.fix) if r.fix else "-")
        lines += _row(cells, widths)
    counts = {
        status: sum(r.status == status for r in results) for status in ("PASS", "WARN", "FAIL")
    }
    summary = _(
        "{count} checks: {passed} passed, {warnings} warnings, {failed} failed",
        count=len(results),
        passed=counts["PASS"],
        warnings=counts["WARN"],
        failed=counts["FAIL"],
    )
    lines += ["", tr.text(summary)]
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="clinicam appliance doctor",
        description=localized(
            _(
                "Check camera, I2C/PCA9685, servos, GPIO, broker, server, clock, disk and "
                "temperature; print a pass/fail table with fixes. Stop clinicam-appliance first."
            )
        ),
    )
    parser.add_argument(
        "-c", "--config", type=Path, help=localized(_("appliance TOML configuration file"))
    )
    parser.add_argument("--root", type=Path, default=Path("/"), help=argparse.SUPPRESS)
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        help=localized(_("network timeout in seconds")),
    )
    return parser


def main_doctor(argv: list[str], config: ApplianceConfig | None = None) -> int:
    """``clinicam appliance doctor``: 0 when no check FAILed, 1 otherwise, 2 bad config."""
    args = _parser().parse_args(argv)
    if config is None:
        try:
            config = load_config(ApplianceConfig, args.config, env_prefix=ENV_APPLIANCE_PREFIX)
        except ConfigError as exc:
            say(
                _("clinicam appliance doctor: {problem}", problem=message_of(exc)),
                file=sys.stderr,
            )
            return 2
    if not logging.getLogger().handlers:  # a caller (the CLI, a test) may have set it up
        setup_logging("WARNING", "doctor")
    say(
        _(
            "Checking appliance {device} ({backend}) …",
            device=config.device_id,
            backend=config.backend,
        )
    )
    sys.stdout.flush()
    results = run_checks(config, root=args.root, timeout_s=args.timeout)
    print(format_table(results, environment_locale()))
    return 0 if all(result.ok for result in results) else 1

"""First-boot provisioning: apply ``clinicam.toml`` from the boot (FAT) partition.

A technician drops one ``clinicam.toml`` on the SD card's boot partition (see
``docs/provisioning.md``). At start-up :func:`provision`:

1. does nothing when there is no such file (a normal boot; the old log stays);
2. reads and validates all of it, certificates and the resulting appliance
   configuration included, *before* writing anything. A bad or partial file
   changes nothing on the device: ``clinicam-provision.log`` on the boot partition
   lists every problem with its fix (in the appliance's language, or in Chinese and
   English when the file cannot say which), the file stays for the next try, and the status
   LED shows :attr:`LightPattern.PROVISION_FAILED`;
3. applies a valid file step by step (TLS files, ``/etc/clinicam/appliance.toml``,
   NetworkManager connections, Wi-Fi country, time zone), every write atomic, and
   only then removes the file (and the certificate files it named) from the boot
   partition, keeping its non-secret part as ``clinicam.toml.applied``, writes an
   "OK" log and shows :attr:`LightPattern.PROVISION_OK`. A crash before that end
   leaves the file in place, and the next start applies it again from the beginning.

Everything is written under ``root`` so that tests provision a folder.
"""

from __future__ import annotations

import argparse
import logging
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

from clinicam.i18n import _, localized, say
from clinicam.logsetup import setup_logging
from firmware.hardware.gpio import GpioConfig, GpioStatusLight, LightPattern, StatusLight
from firmware.provisioning import appliance, report, source, steps, sysfiles
from firmware.provisioning.plan import Plan, build, log_language
from firmware.provisioning.problems import Problem
from firmware.provisioning.source import Invalid

_LOGGER = logging.getLogger(__name__)

DEFAULT_BOOT = Path("/boot/firmware")
Status = Literal["ok", "failed", "nothing to do"]


@dataclass(frozen=True)
class ProvisionResult:
    """What one provisioning run did."""

    status: Status
    device_id: str | None = None
    problems: tuple[Problem, ...] = ()
    failed_step: str | None = None

    @property
    def exit_code(self) -> int:
        """0 when provisioned or nothing to do, 1 when it failed."""
        return 1 if self.status == "failed" else 0


def _local_now() -> datetime:
    return datetime.now().astimezone()


def _show(light: StatusLight | None, pattern: LightPattern) -> None:
    if light is None:
        return
    try:
        light.show(pattern)
    except Exception:
        _LOGGER.exception("status light could not show %s", pattern.name)


def _write_log(boot: Path, data: bytes) -> None:
    try:
        report.write(boot, report.LOG_FILE, data)
    except OSError as exc:
        _LOGGER.error("cannot write %s on %s: %s", report.LOG_FILE, boot, exc)


def _remove_leftovers(boot: Path) -> None:
    """Certificate files an applied clinicam.toml named, if a crash left them on the card."""
    try:
        applied = tomllib.loads((boot / report.APPLIED_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return
    for name in applied.get("removed_files", []):
        plain = isinstance(name, str) and "/" not in name and name not in ("", ".", "..")
        if plain and sysfiles.remove(boot / name):
            _LOGGER.info("removed leftover %s from the boot partition", name)


def _fail(
    boot: Path, light: StatusLight | None, log: bytes, result: ProvisionResult
) -> ProvisionResult:
    _write_log(boot, log)
    _show(light, LightPattern.PROVISION_FAILED)
    return result


def _apply(plan: Plan, root: Path) -> tuple[str, Exception] | None:
    """Run every step; the first failure as (step, error), or None."""
    for label, step in steps.STEPS:
        try:
            step(plan, root)
        except Exception as exc:
            _LOGGER.error("provisioning step '%s' failed: %s", label, exc)
            return label, exc
        _LOGGER.info("provisioning: %s done", label)
    return None


def _finish(boot: Path, path: Path, plan: Plan, when: datetime, locale: str | None) -> None:
    """The last step: record what was applied, then take the secrets off the card."""
    report.write(
        boot,
        report.APPLIED_FILE,
        report.applied_file(plan.summary, plan.boot_files, when, locale),
    )
    log = report.success_log(plan.device_id, plan.summary, plan.notes, when, locale)
    _write_log(boot, log)
    sysfiles.remove(path)
    for name in plan.boot_files:
        sysfiles.remove(boot / name)


def provision(
    boot: Path,
    root: Path = Path("/"),
    *,
    light: StatusLight | None = None,
    now: Callable[[], datetime] = _local_now,
) -> ProvisionResult:
    """Apply ``boot/clinicam.toml`` to the system under ``root`` (see the module docstring)."""
    path = source.find(boot)
    if path is None:
        _remove_leftovers(boot)
        _LOGGER.info("no %s on %s: nothing to provision", source.BOOT_FILE, boot)
        return ProvisionResult("nothing to do")
    when = now()
    locale = log_language(path, root)  # None: the log says everything in both languages
    try:
        plan = build(path, root)
    except Invalid as exc:
        _LOGGER.error("%s refused, nothing changed: %d problem(s)", path.name, len(exc.problems))
        for problem in exc.problems:
            _LOGGER.error("  %s: %s", problem.key, problem.message)
        log = report.failure_log(path.name, exc.problems, when, locale)
        return _fail(boot, light, log, ProvisionResult("failed", problems=tuple(exc.problems)))
    except Exception:
        _LOGGER.exception("%s could not be checked", path.name)
        problem = Problem(
            path.name,
            _("could not be checked because of an internal error"),
            _("see 'journalctl -u clinicam-provision' on the device, or ask for support"),
        )
        log = report.failure_log(path.name, [problem], when, locale)
        return _fail(boot, light, log, ProvisionResult("failed", problems=(problem,)))
    failure = _apply(plan, root)
    if failure is not None:
        label, error = failure
        log = report.partial_log(path.name, label, error, when, locale)
        return _fail(boot, light, log, ProvisionResult("failed", plan.device_id, failed_step=label))
    _finish(boot, path, plan, when, locale)
    _LOGGER.info("provisioned %s from %s", plan.device_id, path)
    _show(light, LightPattern.PROVISION_OK)
    return ProvisionResult("ok", plan.device_id)


def open_status_light(root: Path) -> StatusLight | None:
    """The status LED as the device's existing configuration places it (None if unusable)."""
    base, _path = appliance.load_base(root)
    try:
        gpio = GpioConfig.model_validate(base.get("gpio", {}))
        if not gpio.enabled:
            return None
        pin_factory: object | None = None
        if base.get("backend", appliance.detect_backend(root)) != "pi":
            from gpiozero.pins.mock import MockFactory

            pin_factory = MockFactory()
        return GpioStatusLight(gpio.led_pin, pin_factory=pin_factory)
    except Exception as exc:
        _LOGGER.warning("no status light during provisioning: %s", exc)
        return None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="clinicam appliance provision",
        description=localized(
            _("Apply clinicam.toml from the boot partition (first-boot provisioning).")
        ),
    )
    parser.add_argument(
        "--boot", type=Path, default=DEFAULT_BOOT, help=localized(_("boot partition"))
    )
    parser.add_argument(
        "--root", type=Path, default=Path("/"), help=localized(_("system root to write"))
    )
    parser.add_argument(
        "--led-hold",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help=localized(_("keep showing the result on the status LED this long before exiting")),
    )
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING"])
    return parser


def main_provision(argv: list[str]) -> int:
    """``clinicam appliance provision``: 0 provisioned or nothing to do, 1 failed."""
    args = _parser().parse_args(argv)
    if not logging.getLogger().handlers:  # a caller (the CLI, a test) may have set it up
        setup_logging(args.log_level, "provision")
    light = open_status_light(args.root) if source.find(args.boot) else None
    try:
        result = provision(args.boot, args.root, light=light)
        if light is not None and args.led_hold > 0:
            time.sleep(args.led_hold)
    finally:
        if light is not None:
            light.close()
    if result.status == "ok":
        say(_("provisioned {device}", device=result.device_id))
    elif result.status == "failed":
        say(_("provisioning failed: see {path}", path=args.boot / report.LOG_FILE))
    else:
        say(_("nothing to provision"))
    return result.exit_code

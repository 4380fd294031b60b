"""``clinicam appliance calibrate``: a technician walks each servo to its marks.

For each axis the technician nudges the camera with ``+``/``-`` (1°) or ``++``/``--``
(5°) and presses Enter to accept: first where the camera looks straight ahead, then
the furthest safe position one way (right, up) and the other (left, down). From
those three marks come the centre offset, the direction (inversion) and the soft
limits, written back into the appliance's configuration file.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from clinicam import tomlwrite
from clinicam.files import write_atomically
from clinicam.i18n import _
from firmware.config import AxisCalibration, PanTiltConfig

NUDGES = {"+": 1.0, "-": -1.0, "++": 5.0, "--": -5.0}
HELP = _("  +/- nudge 1°, ++/-- nudge 5°, Enter accept, q abort")


class CalibrationAborted(Exception):
    """The technician typed q."""


class ServoDriver:
    """Raw servo angles on one PCA9685, bypassing the soft limits (for calibration only)."""

    def __init__(self, config: PanTiltConfig, i2c: Any) -> None:
        from adafruit_servokit import ServoKit

        self._kit = ServoKit(channels=16, i2c=i2c, address=config.i2c_address, frequency=50)
        for axis in (config.pan, config.tilt):
            servo = self._kit.servo[axis.channel]
            servo.actuation_range = axis.actuation_range_deg
            servo.set_pulse_width_range(axis.min_pulse_us, axis.max_pulse_us)

    def drive(self, channel: int, angle: float) -> None:
        self._kit.servo[channel].angle = angle

    def release(self, channel: int) -> None:
        self._kit.servo[channel].angle = None


def _mark(
    driver: ServoDriver,
    axis: AxisCalibration,
    start: float,
    prompt: str,
    ask: Callable[[str], str],
    say: Callable[[str], None],
) -> float:
    angle = start
    say(prompt)
    say(HELP)
    while True:
        driver.drive(axis.channel, angle)
        answer = ask(_("  servo at {angle}° > ", angle=f"{angle:.0f}")).strip()
        if answer == "":
            return angle
        if answer.lower() == "q":
            raise CalibrationAborted
        if answer not in NUDGES:
            say(_("  '{answer}' is not a nudge.", answer=answer))
            continue
        angle = min(max(angle + NUDGES[answer], 0.0), axis.actuation_range_deg)


def calibrate_axis(
    driver: ServoDriver,
    axis: AxisCalibration,
    names: tuple[str, str, str],
    ask: Callable[[str], str],
    say: Callable[[str], None],
) -> AxisCalibration:
    """Centre, then the positive-direction limit, then the negative one."""
    label, plus, minus = names
    centre = _mark(
        driver,
        axis,
        axis.centre_deg,
        _("{axis}: nudge until the camera looks straight ahead.", axis=label),
        ask,
        say,
    )
    far_plus = _mark(
        driver,
        axis,
        centre,
        _(
            "{axis}: move to the furthest safe {direction} position "
            "(the bracket must not touch anything).",
            axis=label,
            direction=plus,
        ),
        ask,
        say,
    )
    far_minus = _mark(
        driver,
        axis,
        centre,
        _("{axis}: now the furthest safe {direction} position.", axis=label, direction=minus),
        ask,
        say,
    )
    driver.drive(axis.channel, centre)
    if far_plus == centre or far_minus == centre or (far_plus - centre) * (far_minus - centre) > 0:
        raise ValueError(
            _("{axis}: the two limits must lie on either side of the centre", axis=label)
        )
    invert = far_plus < centre
    sign = -1.0 if invert else 1.0
    return axis.model_copy(
        update={
            "centre_deg": centre,
            "invert": invert,
            "max_deg": sign * (far_plus - centre),
            "min_deg": sign * (far_minus - centre),
        }
    )


def run_calibration(
    config: PanTiltConfig, *, i2c: Any, ask: Callable[[str], str], say: Callable[[str], None]
) -> PanTiltConfig:
    """Walk both axes; returns the new, validated calibration."""
    driver = ServoDriver(config, i2c)
    try:
        pan = calibrate_axis(driver, config.pan, (_("Pan"), _("RIGHT"), _("LEFT")), ask, say)
        tilt = calibrate_axis(driver, config.tilt, (_("Tilt"), _("UP"), _("DOWN")), ask, say)
    finally:
        driver.release(config.pan.channel)
        driver.release(config.tilt.channel)
    return PanTiltConfig.model_validate(
        {**config.model_dump(), "pan": pan.model_dump(), "tilt": tilt.model_dump()}
    )


def write_calibration(path: Path, pantilt: PanTiltConfig) -> None:
    """Replace the ``[pantilt]`` section of the TOML file at ``path`` (atomically)."""
    data: dict[str, Any] = tomllib.loads(path.read_text()) if path.exists() else {}
    data["pantilt"] = pantilt.model_dump()
    write_atomically(path, tomlwrite.dumps(data).encode())

"""The doctor's hardware checks: camera, I2C + PCA9685, a small servo move, GPIO.

They use the firmware's own code paths: the camera backend of the configuration,
``board.I2C()`` and adafruit's I2C device probe (as the PCA9685 driver does),
:class:`~firmware.hardware.pantilt.ServoPanTilt` for the move, and gpiozero for the
LED and button pins. On the simulated backend the same code runs on the simulated
bus, chip, camera and mock pins. Run the doctor with the appliance service stopped:
it holds the camera, the bus and the pins.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clinicam.i18n import TextList, _
from firmware.config import ApplianceConfig, AxisCalibration, PanTiltConfig
from firmware.hardware.gpio import GpioStatusLight, LightPattern
from firmware.hardware.protocols import Camera
from firmware.provisioning.doctor_result import CheckFailed, CheckResult, failed, passed, warned
from firmware.provisioning.sysfiles import under

_LOGGER = logging.getLogger(__name__)

CAMERA, I2C, SERVOS, GPIO = _("camera"), _("I2C + PCA9685"), _("servos"), _("GPIO")
STOP_SERVICE = _("stop the appliance first: sudo systemctl stop clinicam-appliance")
CAMERA_PACKAGE_FIX = _("sudo apt install python3-picamera2; enable camera in config.txt")
I2C_DEVICE = "/dev/i2c-1"
DARK_MEAN_Y = 8.0
SERVO_STEP_DEG = 2.0
SERVO_PAUSE_S = 0.25  # long enough to see the head twitch
PULSE_TOLERANCE_US = 8.0  # 12-bit steps (4.9 µs at 50 Hz) plus the driver rounding down
LED_SHOW_S = 1.0
REG_MODE1, REG_LED0_ON_L, REG_PRE_SCALE = 0x00, 0x06, 0xFE
MODE1_SLEEP, LED_FULL = 0x10, 0x1000
OSCILLATOR_HZ = 25_000_000


@dataclass
class DoctorHardware:
    """What the hardware checks use; None parts are opened from the configuration."""

    i2c: Any | None = None
    camera: Camera | None = None
    pin_factory: object | None = None


def _open_pi_camera(config: ApplianceConfig) -> Camera:
    try:
        from firmware.hardware.pi import PiCamera

        return PiCamera(config.camera)
    except ImportError as exc:
        raise CheckFailed(
            _("camera software missing ({name})", name=exc.name or str(exc)), CAMERA_PACKAGE_FIX
        ) from None
    except Exception as exc:
        raise CheckFailed(
            _("no camera: {problem}", problem=str(exc)),
            _(
                "check the ribbon cable (both ends, contacts the right way) and "
                "'rpicam-hello --list-cameras'; {stop}",
                stop=STOP_SERVICE,
            ),
        ) from None


def check_camera(config: ApplianceConfig, camera: Camera | None) -> CheckResult:
    """One frame from the configured camera, of the configured size, not black."""
    opened = camera is None
    try:
        cam = _open_pi_camera(config) if camera is None else camera
    except CheckFailed as exc:
        return failed(CAMERA, exc.detail, exc.fix)
    try:
        frame = cam.capture()
        width, height = cam.size
        luma = frame.to_ndarray()[: frame.height]
    finally:
        if opened:
            close = getattr(cam, "close", None)
            if close is not None:
                close()
    kind = _("camera") if config.backend == "pi" else _("simulated camera")
    if (frame.width, frame.height) != (width, height):
        return failed(
            CAMERA,
            _(
                "{kind} gave {got}, expected {wanted}",
                kind=kind,
                got=f"{frame.width}×{frame.height}",
                wanted=f"{width}×{height}",
            ),
            _("check [camera] width/height for this camera module"),
        )
    if float(luma.mean()) < DARK_MEAN_Y:
        return warned(
            CAMERA,
            _(
                "{kind}: {size} frame, but the picture is black",
                kind=kind,
                size=f"{width}×{height}",
            ),
            _("take the lens cap off, switch the room light on"),
        )
    return passed(CAMERA, _("{kind}: {size} frame captured", kind=kind, size=f"{width}×{height}"))


def open_pi_bus(root: Path) -> Any:
    """The Pi's I2C bus through Blinka, as the firmware opens it."""
    if not under(root, I2C_DEVICE).exists():
        raise CheckFailed(
            _("{device} does not exist (I2C is off)", device=I2C_DEVICE),
            _("sudo raspi-config nonint do_i2c 0, then reboot"),
        )
    try:
        import board

        return board.I2C()
    except Exception as exc:
        raise CheckFailed(
            _("cannot open I2C bus 1: {problem}", problem=str(exc)),
            _("the user must be in group i2c"),
        ) from None


def _i2c_device(bus: Any, address: int, *, probe: bool) -> Any:
    """adafruit's I2C device, the layer the PCA9685 driver talks through."""
    from adafruit_bus_device.i2c_device import I2CDevice  # type: ignore[import-untyped]

    return I2CDevice(bus, address, probe=probe)


def _register(bus: Any, address: int, register: int) -> int:
    buf = bytearray(1)
    with _i2c_device(bus, address, probe=False) as device:
        device.write_then_readinto(bytes([register]), buf)
    return buf[0]


def check_pca9685(bus: Any, address: int) -> CheckResult:
    """The PCA9685 answers at ``address`` and its registers can be read."""
    try:
        _i2c_device(bus, address, probe=True)  # as the PCA9685 driver does
        mode1 = _register(bus, address, REG_MODE1)
        prescale = _register(bus, address, REG_PRE_SCALE)
    except (ValueError, OSError) as exc:
        return failed(
            I2C,
            _(
                "no PCA9685 answers at {address} ({problem})",
                address=f"0x{address:02x}",
                problem=exc,
            ),
            _(
                "'i2cdetect -y 1' must show the address: check SDA/SCL/VCC/GND wiring "
                "(hardware/README.md) and pantilt.i2c_address"
            ),
        )
    return passed(
        I2C,
        _(
            "PCA9685 answers at {address} (MODE1 {mode1}, PRE_SCALE {prescale})",
            address=f"0x{address:02x}",
            mode1=f"0x{mode1:02x}",
            prescale=prescale,
        ),
    )


def read_pulse_us(bus: Any, address: int, channel: int) -> float | None:
    """The pulse a PCA9685 channel puts out, from its registers (None: output off)."""
    base = REG_LED0_ON_L + 4 * channel
    raw = [_register(bus, address, base + offset) for offset in range(4)]
    on, off = raw[0] | raw[1] << 8, raw[2] | raw[3] << 8
    if _register(bus, address, REG_MODE1) & MODE1_SLEEP or off & LED_FULL:
        return None
    period_us = 4096 * (_register(bus, address, REG_PRE_SCALE) + 1) / OSCILLATOR_HZ * 1e6
    if on & LED_FULL:
        return period_us
    return ((off & 0x0FFF) - (on & 0x0FFF)) % 4096 * period_us / 4096


def expected_pulse_us(axis: AxisCalibration, head_deg: float) -> float:
    """The pulse the calibration asks for at ``head_deg`` from centre."""
    from firmware.hardware.pantilt import ServoPanTilt

    servo = ServoPanTilt.servo_angle(axis, head_deg)
    span = axis.max_pulse_us - axis.min_pulse_us
    return axis.min_pulse_us + servo / axis.actuation_range_deg * span


def check_servos(pantilt: PanTiltConfig, bus: Any) -> CheckResult:
    """Pan to centre, +2°, -2° and back; each pulse read back from the chip's registers."""
    from firmware.hardware.pantilt import ServoPanTilt

    head = ServoPanTilt(pantilt, i2c=bus)
    axis = pantilt.pan
    readings: list[str] = []
    wrong: list[str] = []
    try:
        for step in (0.0, SERVO_STEP_DEG, -SERVO_STEP_DEG, 0.0):
            target, _tilt = head.move_to(step, 0.0)
            time.sleep(SERVO_PAUSE_S)
            measured = read_pulse_us(bus, pantilt.i2c_address, axis.channel)
            expected = expected_pulse_us(axis, target)
            readings.append(_("off") if measured is None else f"{measured:.0f}")
            if measured is None or abs(measured - expected) > PULSE_TOLERANCE_US:
                wrong.append(
                    _(
                        "{target}° wanted {expected} µs",
                        target=f"{target:+.0f}",
                        expected=f"{expected:.0f}",
                    )
                )
    finally:
        head.release()
    seen = TextList(readings, " → ")
    if wrong:
        return failed(
            SERVOS,
            _(
                "pan channel {channel} read back {seen} µs; {wrong}",
                channel=axis.channel,
                seen=seen,
                wrong=TextList(wrong),
            ),
            _(
                "the PCA9685 does not keep what was written: check its wiring and the "
                "pantilt channel numbers; replace the board if it persists"
            ),
        )
    return passed(
        SERVOS,
        _(
            "pan channel {channel} moved ±{step}° and back ({seen} µs read back); "
            "watch the head twitch",
            channel=axis.channel,
            step=f"{SERVO_STEP_DEG:.0f}",
            seen=seen,
        ),
    )


def check_gpio(config: ApplianceConfig, pin_factory: object | None) -> CheckResult:
    """The status LED and privacy button pins can be claimed; the LED blinks briefly."""
    gpio = config.gpio
    if not gpio.enabled:
        return passed(GPIO, _("not used (gpio.enabled = false)"))
    light: GpioStatusLight | None = None
    button: Any = None
    try:
        from gpiozero import Button

        light = GpioStatusLight(gpio.led_pin, pin_factory=pin_factory)
        button = Button(gpio.button_pin, pull_up=True, pin_factory=pin_factory)
        light.show(LightPattern.BOOTING)
        time.sleep(LED_SHOW_S)
        pressed = bool(button.is_pressed)
    except Exception as exc:
        return failed(
            GPIO,
            _(
                "cannot use GPIO{led}/GPIO{button}: {problem}",
                led=gpio.led_pin,
                button=gpio.button_pin,
                problem=str(exc),
            ),
            _(
                "{stop}; check gpio.led_pin and gpio.button_pin; "
                "on a Pi: sudo apt install python3-lgpio",
                stop=STOP_SERVICE,
            ),
        )
    finally:
        for device in (light, button):
            if device is not None:
                device.close()
    if pressed:
        return warned(
            GPIO,
            _("privacy button on GPIO{button} reads pressed", button=gpio.button_pin),
            _("if nobody presses it, its wire touches ground: check the button wiring"),
        )
    return passed(
        GPIO,
        _(
            "status LED on GPIO{led} (blinked for {seconds} s), "
            "privacy button on GPIO{button} released",
            led=gpio.led_pin,
            seconds=f"{LED_SHOW_S:.0f}",
            button=gpio.button_pin,
        ),
    )

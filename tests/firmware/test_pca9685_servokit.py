"""The real adafruit servokit driving the simulated PCA9685, checked at register level."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
from adafruit_servokit import ServoKit

from firmware.config import PanTiltConfig
from firmware.hardware.pantilt import ServoPanTilt
from firmware.hardware.pca9685_sim import (
    REG_MODE1,
    REG_PRE_SCALE,
    SimI2CBus,
    SimPCA9685,
    channel_counts,
    pulse_us,
)
from firmware.hardware.servo_sim import SimServo


def _bus_with_chip(tmp_path: Path | None = None) -> tuple[SimI2CBus, SimPCA9685]:
    bus = SimI2CBus()
    chip = SimPCA9685(register_file=tmp_path / "regs.bin" if tmp_path else None)
    bus.attach(0x40, chip)
    return bus, chip


def test_servokit_start_up_writes_50hz_prescale_and_mode1() -> None:
    bus, chip = _bus_with_chip()
    ServoKit(channels=16, i2c=bus, address=0x40, frequency=50)
    assert chip.regs[REG_PRE_SCALE] == 121
    assert chip.regs[REG_MODE1] == 0xA0 & ~0x80  # RESTART reads back cleared, AI set
    assert abs(chip.pwm_frequency_hz() - 50.0) < 0.1


@pytest.mark.parametrize(("angle", "off"), [(0, 153), (90, 307), (180, 461)])
def test_servo_angle_writes_documented_off_counts(angle: int, off: int) -> None:
    bus, chip = _bus_with_chip()
    kit = ServoKit(channels=16, i2c=bus, address=0x40, frequency=50)
    kit.servo[3].angle = angle
    on_count, off_count = channel_counts(bytes(chip.regs), 3)
    assert (on_count, off_count) == (0, off)


def test_angle_none_writes_full_off_bit() -> None:
    bus, chip = _bus_with_chip()
    kit = ServoKit(channels=16, i2c=bus, address=0x40, frequency=50)
    kit.servo[0].angle = 90
    kit.servo[0].angle = None
    assert channel_counts(bytes(chip.regs), 0)[1] == 4096
    assert chip.pulse_us(0) is None


def test_wrong_address_raises_oserror_like_a_real_bus() -> None:
    bus, _ = _bus_with_chip()
    with pytest.raises(OSError) as info:
        bus.writeto(0x41, b"")
    assert info.value.errno == errno.EREMOTEIO
    with pytest.raises(ValueError, match="0x41"):  # adafruit_bus_device's probe turns it into this
        ServoKit(channels=16, i2c=bus, address=0x41)


def test_prescale_is_ignored_unless_the_chip_sleeps() -> None:
    _, chip = _bus_with_chip()
    chip.write(bytes([REG_MODE1, 0x20]))  # awake, auto-increment
    chip.write(bytes([REG_PRE_SCALE, 3]))
    assert chip.regs[REG_PRE_SCALE] == 0x1E  # reset value kept


def test_register_file_mirrors_what_the_driver_wrote(tmp_path: Path) -> None:
    bus, _ = _bus_with_chip(tmp_path)
    kit = ServoKit(channels=16, i2c=bus, address=0x40, frequency=50)
    kit.servo[0].angle = 90
    regs = (tmp_path / "regs.bin").read_bytes()
    assert channel_counts(regs, 0) == (0, 307)
    assert pulse_us(regs, 0) == pytest.approx(1500, abs=5)


def test_sim_servo_moves_at_finite_speed() -> None:
    bus, chip = _bus_with_chip()
    now = [0.0]
    servo = SimServo(chip, 0, seconds_per_60deg=0.1, clock=lambda: now[0])
    kit = ServoKit(channels=16, i2c=bus, address=0x40, frequency=50)
    kit.servo[0].angle = 90
    now[0] += 1.0
    assert servo.angle == pytest.approx(90, abs=1)
    kit.servo[0].angle = 150  # 60° away: 0.1 s of travel
    now[0] += 0.05
    assert servo.angle == pytest.approx(120, abs=1.5)  # half-way
    now[0] += 0.06
    assert servo.angle == pytest.approx(150, abs=1)


def test_pantilt_clamps_to_soft_limits_and_honours_inversion() -> None:
    bus, chip = _bus_with_chip()
    config = PanTiltConfig.model_validate(
        {
            "pan": {"channel": 0, "min_deg": -30, "max_deg": 30, "invert": True},
            "tilt": {"channel": 1, "min_deg": -20, "max_deg": 20},
        }
    )
    pantilt = ServoPanTilt(config, i2c=bus)
    assert pantilt.move_to(50, -5) == (30, -5)  # pan slides along its limit
    # inverted pan: +30° on the head is servo 60°
    expected = 750 + 1500 * 60 / 180
    assert chip.pulse_us(0) == pytest.approx(expected, abs=5)
    assert chip.pulse_us(1) == pytest.approx(750 + 1500 * 85 / 180, abs=5)

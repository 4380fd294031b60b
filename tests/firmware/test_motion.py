"""Motion control: slew-rate limit, limits, dead-man continuous moves, idle release."""

from __future__ import annotations

import pytest

from firmware.config import MotionConfig, PanTiltConfig
from firmware.control.motion import MotionController
from firmware.hardware.pantilt import ServoPanTilt
from firmware.hardware.pca9685_sim import SimI2CBus, SimPCA9685

DT = 0.02


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _controller(**motion: float) -> tuple[MotionController, SimPCA9685, Clock]:
    bus, chip = SimI2CBus(), SimPCA9685()
    bus.attach(0x40, chip)
    clock = Clock()
    pantilt = ServoPanTilt(PanTiltConfig(), i2c=bus)
    config = MotionConfig.model_validate({"max_speed_deg_s": 90.0, **motion})
    return MotionController(pantilt, config, clock=clock), chip, clock


def _run(ctrl: MotionController, clock: Clock, seconds: float) -> list[tuple[float, float]]:
    path = []
    for _ in range(round(seconds / DT)):
        clock.now += DT
        ctrl.step(DT)
        path.append(ctrl.position)
    return path


def test_moves_never_exceed_the_slew_rate() -> None:
    ctrl, chip, clock = _controller()
    ctrl.go_to(45, -20)
    path = _run(ctrl, clock, 1.0)
    steps = [abs(b[0] - a[0]) for a, b in zip([(0.0, 0.0), *path], path, strict=False)]
    assert max(steps) <= 90 * DT + 1e-9
    assert path[10][0] == pytest.approx(90 * DT * 11)  # still on its way after 0.22 s
    assert path[-1] == (45, -20)
    assert chip.pulse_us(0) == pytest.approx(750 + 1500 * 135 / 180, abs=5)


def test_relative_moves_add_up_and_slide_along_limits() -> None:
    ctrl, _, clock = _controller()
    ctrl.go_by(50, 10)
    ctrl.go_by(50, 10)  # before the first finished: adds to the target
    assert ctrl.target == (85, 20)  # pan slides along its +85° limit
    _run(ctrl, clock, 2.0)
    assert ctrl.position == (85, 20)


def test_continuous_move_stops_by_itself_without_refresh() -> None:
    ctrl, _, clock = _controller()
    ctrl.continuous(30.0, 0.0, timeout_s=0.5)
    _run(ctrl, clock, 0.4)
    moving_at = ctrl.position[0]
    assert moving_at == pytest.approx(30 * 0.4, abs=0.7)
    _run(ctrl, clock, 1.0)  # no refresh: the dead-man stops it just after 0.5 s
    assert ctrl.position[0] == pytest.approx(15, abs=0.7)
    assert not ctrl.moving


def test_refreshed_continuous_move_keeps_going_until_stop() -> None:
    ctrl, _, clock = _controller()
    for _ in range(5):
        ctrl.continuous(-20.0, 10.0, timeout_s=0.3)
        _run(ctrl, clock, 0.2)
    assert ctrl.position[0] == pytest.approx(-20.0, abs=0.7)
    assert ctrl.position[1] == pytest.approx(10.0, abs=0.5)
    ctrl.stop()
    before = ctrl.position
    _run(ctrl, clock, 0.5)
    assert ctrl.position == before


def test_idle_servos_are_released_and_driven_again_on_the_next_move() -> None:
    ctrl, chip, clock = _controller(idle_release_s=1.0)
    ctrl.go_to(10, 0)
    _run(ctrl, clock, 0.5)
    assert chip.pulse_us(0) is not None
    _run(ctrl, clock, 1.2)
    assert ctrl.released
    assert chip.pulse_us(0) is None and chip.pulse_us(1) is None  # full-off: no jitter
    ctrl.go_by(1, 0)
    _run(ctrl, clock, 0.2)
    assert not ctrl.released
    assert chip.pulse_us(0) == pytest.approx(750 + 1500 * 101 / 180, abs=5)
    assert chip.pulse_us(1) == pytest.approx(1500, abs=5)  # tilt held again too

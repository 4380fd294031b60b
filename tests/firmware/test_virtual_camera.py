"""The virtual camera looks where the simulated servos physically point."""

from __future__ import annotations

import numpy as np
import pytest

from firmware.config import ApplianceConfig
from firmware.hardware.sim import build_sim_rig
from tests.helpers import image_shift


def _luma(rig_frame: object) -> np.ndarray:
    planes = rig_frame.to_ndarray(format="yuv420p")  # type: ignore[attr-defined]
    return planes[:720].astype(np.float64)[::4, ::4]


def test_viewport_follows_servo_position_not_the_command() -> None:
    config = ApplianceConfig.model_validate({"sim": {"servo_seconds_per_60deg": 0.0}})
    rig = build_sim_rig(config)
    ppd = config.sim.scene_px_per_deg
    tolerance = 0.6 * ppd  # one 12-bit PWM step is ~4.9 µs, ~0.6° of servo travel
    x0, y0, _, _ = rig.camera.viewport()
    rig.pantilt.move_to(10, 0)
    x1, y1, _, _ = rig.camera.viewport()
    assert abs(x1 - x0 - 10 * ppd) <= tolerance
    assert y1 == y0
    rig.pantilt.move_to(10, 5)  # tilt up: the viewport moves up the scene
    assert abs(rig.camera.viewport()[1] - (y0 - 5 * ppd)) <= tolerance


@pytest.mark.parametrize("pan", [4.0, -4.0])
def test_frame_content_shifts_opposite_to_pan(pan: float) -> None:
    config = ApplianceConfig.model_validate({"sim": {"servo_seconds_per_60deg": 0.0}})
    rig = build_sim_rig(config)
    before = _luma(rig.camera.capture())
    rig.pantilt.move_to(pan, 0)  # pan right: the scene slides left in the frame, and back
    after = _luma(rig.camera.capture())
    dx, dy = image_shift(before, after)
    predicted = -pan * 20 * (1280 / 1320) / 4  # 20 px/°, 1320 scene px per 1280, luma at 1/4
    assert abs(dx - predicted) <= 2 and abs(dy) <= 1


def test_slow_servo_means_the_picture_lags_the_command() -> None:
    config = ApplianceConfig.model_validate({"sim": {"servo_seconds_per_60deg": 2.0}})
    rig = build_sim_rig(config)
    x0 = rig.camera.viewport()[0]
    rig.pantilt.move_to(60, 0)  # two seconds of travel
    assert rig.camera.viewport()[0] - x0 < 60 * 20 / 4

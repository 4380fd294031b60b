"""True colour on the simulated rig: the card found wherever it is held, the camera's colour
matrix control, and calibration under a known colour cast through the command router."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import colour
import numpy as np
import pytest

from clinicam.colourcard import REFERENCE_LAB, srgb8_to_lab
from firmware.app import Appliance
from firmware.config import ApplianceConfig
from firmware.control.card_finder import find_card
from firmware.hardware.sim import SimRig, build_sim_rig
from tests.firmware.conftest import start_rig

CHECKER = colour.CCS_COLOURCHECKERS["ColorChecker24 - After November 2014"]


def _config(tmp_path: Path, **sim: Any) -> ApplianceConfig:
    return ApplianceConfig.model_validate(
        {
            "device_id": "cam-a",
            "state_dir": str(tmp_path / "state"),
            "mqtt": {"port": 1, "username": "cam-a", "password": "x"},  # never connects here
            "sim": {"servo_seconds_per_60deg": 0.0, **sim},
        }
    )


def _rgb(rig: SimRig) -> np.ndarray:
    frame: np.ndarray = rig.camera.capture().to_ndarray(format="rgb24")
    return frame


def _measured_delta_e(rig: SimRig) -> float:
    """Mean ΔE2000 of the card in view, measured with colour-science (not the appliance's)."""
    reading = find_card(_rgb(rig))
    assert reading is not None
    xyz = colour.sRGB_to_XYZ(
        reading.patches / 255.0, CHECKER.illuminant, chromatic_adaptation_transform="Bradford"
    )
    lab = colour.XYZ_to_Lab(xyz, CHECKER.illuminant)
    return float(colour.delta_E(lab, REFERENCE_LAB, method="CIE 2000").mean())


@pytest.mark.parametrize(
    ("centre", "width"), [((0.5, 0.5), 0.3), ((0.22, 0.7), 0.16), ((0.7, 0.35), 0.5)]
)
def test_the_card_is_found_wherever_it_is_held(
    tmp_path: Path, centre: tuple[float, float], width: float
) -> None:
    rig = build_sim_rig(_config(tmp_path, colour_card=(centre[0], centre[1], width)))
    frame = _rgb(rig)
    reading = find_card(frame)
    assert reading is not None
    error = np.linalg.norm(srgb8_to_lab(reading.patches) - REFERENCE_LAB, axis=1)
    assert np.median(error) < 2.0  # daylight: the card as printed
    h, w = frame.shape[:2]
    middle = reading.centres.mean(axis=0)
    assert abs(middle[0] / w - centre[0]) < 0.03 and abs(middle[1] / h - centre[1]) < 0.03
    expected_pitch = width * w / (6 + 5 * 0.25 + 0.8) * 1.25
    assert reading.pitch_px == pytest.approx(expected_pitch, rel=0.1)
    # Upside down or turned a quarter: the same patches in the same order.
    for turned in (np.rot90(frame, 2), np.rot90(frame, 1)):
        again = find_card(np.ascontiguousarray(turned))
        assert again is not None
        assert np.abs(again.patches - reading.patches).max() <= 3


def test_the_card_is_found_in_a_noisy_picture(tmp_path: Path) -> None:
    rig = build_sim_rig(_config(tmp_path, colour_card=(0.4, 0.6, 0.2)))
    frame = _rgb(rig).astype(np.float64)
    noisy = frame + np.random.default_rng(5).normal(0.0, 8.0, frame.shape)  # a dim room
    reading = find_card(np.clip(noisy, 0, 255).astype(np.uint8))
    assert reading is not None
    error = np.linalg.norm(srgb8_to_lab(reading.patches) - REFERENCE_LAB, axis=1)
    assert np.median(error) < 2.5


def test_no_card_no_reading(tmp_path: Path) -> None:
    rig = build_sim_rig(_config(tmp_path))
    assert find_card(_rgb(rig)) is None
    noise = np.random.default_rng(1).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    assert find_card(noise) is None
    with pytest.raises(ValueError, match="RGB"):
        find_card(np.zeros((480, 640), dtype=np.uint8))


def test_the_colour_correction_matrix_control(tmp_path: Path) -> None:
    camera = build_sim_rig(_config(tmp_path, colour_card=(0.5, 0.5, 0.3))).camera
    identity = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
    swap = (0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0)  # red and green swapped
    for bad in [swap[:8], (*swap[:8], 17.0), (*swap[:8], "x"), 5.0]:
        with pytest.raises(ValueError, match="ColourCorrectionMatrix"):
            camera.set_controls({"ColourCorrectionMatrix": bad})
    before = camera.capture().to_ndarray(format="rgb24").reshape(-1, 3).mean(axis=0)
    camera.set_controls({"ColourCorrectionMatrix": swap})  # AWB on: the IPA's own matrix
    assert camera.metadata()["ColourCorrectionMatrix"] == identity
    camera.set_controls({"ColourGains": (2.0, 1.8), "ColourCorrectionMatrix": swap})
    assert camera.metadata()["ColourCorrectionMatrix"] == swap
    swapped = camera.capture().to_ndarray(format="rgb24").reshape(-1, 3).mean(axis=0)
    assert swapped[0] == pytest.approx(before[1], abs=1.5)
    assert swapped[1] == pytest.approx(before[0], abs=1.5)
    camera.set_controls({"AwbEnable": True})  # back to automatic: the tuned matrix again
    assert camera.metadata()["ColourCorrectionMatrix"] == identity
    again = camera.capture().to_ndarray(format="rgb24").reshape(-1, 3).mean(axis=0)
    assert np.allclose(again, before, atol=0.5)


class Device:
    def __init__(self, appliance: Appliance, sim: SimRig) -> None:
        self.appliance, self.sim = appliance, sim
        self.n = 0

    async def send(self, raw: bytes | None = None, **command: Any) -> dict[str, Any]:
        self.n += 1
        command.setdefault("id", f"c{self.n}")
        command.setdefault("not_after", time.time() + 10)  # as the server's link sets it
        payload = raw if raw is not None else json.dumps(command).encode()
        ack = await self.appliance.api.router.handle(payload)
        return ack.model_dump(exclude_none=True)


async def _device(config: ApplianceConfig) -> Device:
    rig = await start_rig(config, connect=False)
    return Device(rig.appliance, rig.sim)


async def test_calibration_under_a_tungsten_cast_brings_delta_e_under_3(tmp_path: Path) -> None:
    config = _config(tmp_path, lighting="incandescent", colour_card=(0.62, 0.4, 0.28))
    device = await _device(config)
    before = _measured_delta_e(device.sim)
    assert before > 8.0  # the cast is there to correct
    ack = await device.send(op="colour.calibrate")
    assert ack["ok"], ack
    assert ack["result"]["lighting"] == "auto"
    assert ack["result"]["delta_e_before"] == pytest.approx(before, abs=0.3)
    assert ack["result"]["delta_e_after"] < 3.0
    assert _measured_delta_e(device.sim) < 3.0  # measured independently
    calibration = ack["state"]["colour"]["calibration"]
    assert calibration["lighting"] == "auto" and calibration["delta_e"] < 3.0
    meta = device.sim.camera.metadata()
    assert meta["AwbEnable"] is False and meta["ColourCorrectionMatrix"] != (1.0, 0.0, 0.0) * 3

    # Another lighting preset has no calibration: the view is no longer calibrated.
    ack = await device.send(op="colour", awb="daylight")
    assert "calibration" not in ack["state"]["colour"]
    assert _measured_delta_e(device.sim) > 8.0
    # Choosing the calibrated preset again applies its calibration again.
    ack = await device.send(op="colour", awb="auto")
    assert ack["state"]["colour"]["calibration"]["lighting"] == "auto"
    assert _measured_delta_e(device.sim) < 3.0
    await device.appliance.stop()

    # Kept across a restart, for this rig and preset: the camera starts in "auto".
    again = await _device(config)
    assert _measured_delta_e(again.sim) < 3.0
    assert again.appliance.control.state().colour.calibration.lighting == "auto"  # type: ignore[union-attr]
    ack = await again.send(op="colour", awb="tungsten")
    assert "calibration" not in ack["state"]["colour"]
    await again.appliance.stop()
    # Another rig (device) with the same state folder does not take this one's colour.
    other = await _device(config.model_copy(update={"device_id": "cam-b"}))
    assert _measured_delta_e(other.sim) > 8.0
    assert other.appliance.control.state().colour.calibration is None  # type: ignore[union-attr]
    await other.appliance.stop()


async def test_refused_calibrations_change_nothing(tmp_path: Path) -> None:
    device = await _device(_config(tmp_path, lighting="tungsten"))  # no card held up
    meta = device.sim.camera.metadata()
    del meta["FrameTimestamp"]
    for bad in (
        {"op": "colour.calibrate", "lighting": "moonlight"},
        {"op": "colour.calibrate", "lighting": 3},
        {"op": "colour.calibrate", "extra": True},
    ):
        ack = await device.send(**bad)
        assert not ack["ok"] and "invalid command" in ack["error"]
    ack = await device.send(raw=b'{"op": "colour.calibrate", "id": "x", "not_after": ')
    assert not ack["ok"]
    ack = await device.send(op="colour.calibrate")  # valid, but there is no card
    assert not ack["ok"] and ack["result"] == {"code": "no_card"}
    assert "no colour card found" in ack["error"]
    device.sim.camera.hold_card((0.5, 0.5), 0.3)
    device.appliance.privacy.set_private(True, "test")
    ack = await device.send(op="colour.calibrate")
    assert not ack["ok"] and "privacy" in ack["error"]
    assert device.sim.camera.metadata() | {"FrameTimestamp": None} == meta | {
        "FrameTimestamp": None
    }
    assert not (tmp_path / "state" / "colour.json").exists()
    await device.appliance.stop()

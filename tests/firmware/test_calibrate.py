"""The technician's calibration walk-through, on the simulated rig."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from firmware.calibrate import CalibrationAborted, run_calibration, write_calibration
from firmware.config import ApplianceConfig, PanTiltConfig
from firmware.hardware.pca9685_sim import SimI2CBus, SimPCA9685


def _bus() -> tuple[SimI2CBus, SimPCA9685]:
    bus, chip = SimI2CBus(), SimPCA9685()
    bus.attach(0x40, chip)
    return bus, chip


def _scripted(answers: list[str], chip: SimPCA9685, seen: list[float | None]) -> object:
    it = iter(answers)

    def ask(prompt: str) -> str:
        seen.append(chip.pulse_us(0))
        return next(it)

    return ask


def test_marks_become_centre_direction_and_limits() -> None:
    bus, chip = _bus()
    pulses: list[float | None] = []
    answers = [
        "+",
        "+",
        "",  # pan centre: servo 92°
        "--",
        "--",
        "--",
        "--",
        "--",
        "--",
        "",  # "right" is servo 62°: this pan is inverted
        "++",
        "++",
        "++",
        "++",
        "++",
        "++",
        "++",
        "++",
        "+",
        "",  # left: servo 133°
        "-",
        "",  # tilt centre: 89°
        "++",
        "++",
        "++",
        "++",
        "",  # up: 109°
        "--",
        "--",
        "--",
        "--",
        "--",
        "",  # down: 64°
    ]
    result = run_calibration(
        PanTiltConfig(), i2c=bus, ask=_scripted(answers, chip, pulses), say=lambda _: None
    )
    assert result.pan.centre_deg == 92 and result.pan.invert is True
    assert (result.pan.min_deg, result.pan.max_deg) == (-41, 30)
    assert result.tilt.centre_deg == 89 and result.tilt.invert is False
    assert (result.tilt.min_deg, result.tilt.max_deg) == (-25, 20)
    # the nudges really drove the servo: 90° → 91° → 92° on the pan channel
    assert pulses[:3] == pytest.approx([1500, 1508.3, 1516.7], abs=5)
    assert chip.pulse_us(0) is None  # released at the end


def test_limits_on_the_same_side_are_refused() -> None:
    bus, chip = _bus()
    answers = ["", "++", "", "+", ""]
    with pytest.raises(ValueError, match="either side"):
        run_calibration(
            PanTiltConfig(), i2c=bus, ask=_scripted(answers, chip, []), say=lambda _: None
        )


def test_abort_writes_nothing() -> None:
    bus, chip = _bus()
    with pytest.raises(CalibrationAborted):
        run_calibration(
            PanTiltConfig(), i2c=bus, ask=_scripted(["+", "q"], chip, []), say=lambda _: None
        )


def test_result_is_written_into_the_config_file(tmp_path: Path) -> None:
    path = tmp_path / "appliance.toml"
    path.write_text('device_id = "cam-7"\n[camera]\nfps = 30\n')
    bus, chip = _bus()
    answers = ["", "++", "", "--", "", "", "+", "", "-", ""]
    result = run_calibration(
        PanTiltConfig(), i2c=bus, ask=_scripted(answers, chip, []), say=lambda _: None
    )
    write_calibration(path, result)
    data = tomllib.loads(path.read_text())
    assert data["device_id"] == "cam-7" and data["camera"]["fps"] == 30
    config = ApplianceConfig.model_validate(data)
    assert config.pantilt.pan.max_deg == 5 and config.pantilt.tilt.min_deg == -1


def test_cli_calibrates_the_simulated_rig(tmp_path: Path) -> None:
    path = tmp_path / "appliance.toml"
    path.write_text(f'state_dir = "{tmp_path / "state"}"\n')
    answers = "\n".join(["", "++", "", "--", "", "", "++", "", "--", ""]) + "\n"
    result = subprocess.run(
        [sys.executable, "-m", "clinicam_app", "appliance", "calibrate", "--config", str(path)],
        input=answers,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "calibration written" in result.stdout
    written = tomllib.loads(path.read_text())
    assert written["pantilt"]["tilt"]["max_deg"] == 5

"""Appliance configuration: typed, strict, and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from clinicam.configfile import ConfigError, load_config
from firmware.config import ApplianceConfig


def _load(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> ApplianceConfig:
    path = tmp_path / "appliance.toml"
    path.write_text(text)
    return load_config(
        ApplianceConfig, path, env_prefix="CLINICAM_APPLIANCE", environ=environ or {}
    )


def test_defaults_are_a_working_simulated_rig(tmp_path: Path) -> None:
    config = _load(tmp_path, "")
    assert config.backend == "sim"
    assert (config.pantilt.pan.channel, config.pantilt.tilt.channel) == (0, 1)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[camera]\nwidht = 640\n", "camera.widht"),
        ("[camera]\nfps = 500\n", "camera.fps"),
        ("[pantilt.pan]\nmin_pulse_us = 2000\nmax_pulse_us = 1600\n", "pantilt.pan"),
        ("[pantilt.tilt]\nchannel = 0\n", "pantilt"),
        ('device_id = "Bad Id!"\n', "device_id"),
        ('[server]\nurl = "ftp://x"\n', "server.url"),
        ("[pantilt.pan]\nmax_deg = 120\n", "pantilt.pan"),
    ],
)
def test_bad_values_name_the_key(tmp_path: Path, text: str, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, text)
    assert f"  {key}" in str(info.value)


def test_environment_overrides_file_and_is_named_in_errors(tmp_path: Path) -> None:
    config = _load(tmp_path, "[mqtt]\nport = 1883\n", {"CLINICAM_APPLIANCE__MQTT__PORT": "8883"})
    assert config.mqtt.port == 8883
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, "", {"CLINICAM_APPLIANCE__CAMERA__FPS": "fast"})
    assert "camera.fps" in str(info.value) and "CLINICAM_APPLIANCE__CAMERA__FPS" in str(info.value)


def test_broken_toml_and_missing_file_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        _load(tmp_path, "[camera\n")
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(ApplianceConfig, tmp_path / "nope.toml", env_prefix="X", environ={})

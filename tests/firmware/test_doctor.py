"""``clinicam appliance doctor`` against the simulated rig, a real mosquitto and a real server.

The hardware is simulated at the lowest level (I2C bus, PCA9685 registers, mock GPIO
pins, a thermal-zone file); the broker and the server are the real programs on
loopback. ``timedatectl`` is a tiny script on PATH, since this machine has no systemd.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from gpiozero import LED
from gpiozero.pins.mock import MockFactory

from clinicam.mqtt_config import MqttConfig
from clinicam_app.broker import BrokerUser, MosquittoBroker
from firmware.config import ApplianceConfig
from firmware.doctor import CHECK_NAMES, DoctorHardware, format_table, main_doctor, run_checks
from firmware.hardware.pca9685_sim import REG_LED0_ON_L, SimI2CBus, SimPCA9685
from firmware.hardware.sim import SimRig, build_sim_rig
from firmware.provisioning.doctor_result import CheckResult
from firmware.provisioning.doctor_system import check_clock, check_temperature, disk_verdict
from server.app import build_app
from tests.helpers import free_port
from tests.records.api_helpers import PASSWORD, records_config

DEVICE, DEVICE_PW = "cam-1", "cam-1-pw"


@pytest.fixture
def mqtt_broker(tmp_path: Path) -> Iterator[MosquittoBroker]:
    """A real mosquitto that knows the server and device cam-1 (the server's device)."""
    users = [BrokerUser("server", "server-pw", is_server=True), BrokerUser(DEVICE, DEVICE_PW)]
    instance = MosquittoBroker(tmp_path / "broker", users, host="127.0.0.1", port=free_port())
    instance.start()
    yield instance
    instance.stop()


async def _healthy(server: TestServer) -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(100):
            async with http.get(server.make_url("/healthz")) as resp:
                if resp.status == 200:
                    return
            await asyncio.sleep(0.1)
    raise AssertionError("the server never reached its broker")


@pytest.fixture
async def server_url(tmp_path: Path, mqtt_broker: MosquittoBroker) -> AsyncIterator[str]:
    """A real Clinicam server (device cam-1, token PASSWORD) linked to the broker."""
    config = records_config(tmp_path / "server", f"sqlite:///{tmp_path / 'db.sqlite'}")
    config = config.model_copy(
        update={
            "mqtt": MqttConfig.model_validate(
                {"port": mqtt_broker.port, "username": "server", "password": "server-pw"}
            )
        }
    )
    server = TestServer(build_app(config, asyncio.get_running_loop()), host="127.0.0.1")
    await server.start_server()
    try:
        await _healthy(server)
        yield str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


@pytest.fixture
def timedatectl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A ``timedatectl`` on PATH that answers what ``answer`` holds."""
    folder = tmp_path / "bin"
    folder.mkdir()
    answer = folder / "answer"
    answer.write_text("yes")
    script = folder / "timedatectl"
    script.write_text(f'#!/bin/sh\n[ "$*" = "show -p NTPSynchronized --value" ] && cat {answer}\n')
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}:/usr/bin:/bin")
    return answer


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """The system files the doctor reads: a thermal zone at 48 °C."""
    zone = tmp_path / "root/sys/class/thermal/thermal_zone0"
    zone.mkdir(parents=True)
    (zone / "temp").write_text("48000\n")
    return tmp_path / "root"


def _config(tmp_path: Path, broker_port: int, server_url: str, **changes: Any) -> ApplianceConfig:
    data: dict[str, Any] = {
        "device_id": DEVICE,
        "state_dir": str(tmp_path / "state"),
        "mqtt": {"port": broker_port, "username": DEVICE, "password": DEVICE_PW},
        "server": {"url": server_url, "token": PASSWORD},
        "sim": {"servo_seconds_per_60deg": 0.0},
        **changes,
    }
    return ApplianceConfig.model_validate(data)


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[SimRig]:
    instance = build_sim_rig(_config(tmp_path, 1, "http://127.0.0.1:1"))
    yield instance
    instance.close()


def _parts(rig: SimRig, **changes: Any) -> DoctorHardware:
    parts = DoctorHardware(i2c=rig.bus, camera=rig.camera, pin_factory=MockFactory())
    for key, value in changes.items():
        setattr(parts, key, value)
    return parts


async def _run(
    config: ApplianceConfig, parts: DoctorHardware, root: Path
) -> dict[str, CheckResult]:
    results = await asyncio.to_thread(run_checks, config, hardware=parts, root=root, timeout_s=3.0)
    assert [r.name for r in results] == list(CHECK_NAMES)
    return {r.name: r for r in results}


def _statuses(results: dict[str, CheckResult]) -> dict[str, str]:
    return {name: r.status for name, r in results.items()}


async def test_a_healthy_appliance_passes_every_check(
    tmp_path: Path,
    mqtt_broker: MosquittoBroker,
    server_url: str,
    rig: SimRig,
    root: Path,
    timedatectl: Path,
) -> None:
    config = _config(tmp_path, mqtt_broker.port, server_url)
    results = await _run(config, _parts(rig), root)
    assert _statuses(results) == dict.fromkeys(CHECK_NAMES, "PASS"), format_table(results.values())
    assert "±2°" in results["servos"].detail
    assert rig.chip.pulse_us(config.pantilt.pan.channel) is None  # servos released after
    assert "48.0 °C" in results["temperature"].detail


async def test_broker_server_and_temperature_failures_name_their_fix(
    tmp_path: Path,
    mqtt_broker: MosquittoBroker,
    server_url: str,
    rig: SimRig,
    root: Path,
    timedatectl: Path,
) -> None:
    config = _config(tmp_path, mqtt_broker.port, server_url)
    (root / "sys/class/thermal/thermal_zone0/temp").write_text("85000\n")
    wrong_token = _config(
        tmp_path, mqtt_broker.port, server_url, server={"url": server_url, "token": "wrong"}
    )
    results = await _run(wrong_token, _parts(rig), root)
    assert results["server"].status == "FAIL"
    assert "refused the token of device 'cam-1'" in results["server"].detail
    assert "server.token" in results["server"].fix
    assert results["temperature"].status == "FAIL" and "cooling" in results["temperature"].fix

    wrong_password = _config(
        tmp_path,
        mqtt_broker.port,
        server_url,
        mqtt={"port": mqtt_broker.port, "username": DEVICE, "password": "nope"},
    )
    results = await _run(wrong_password, _parts(rig), root)
    assert results["MQTT broker"].status == "FAIL"
    assert "refused the login" in results["MQTT broker"].detail
    assert "mqtt.password" in results["MQTT broker"].fix

    mqtt_broker.stop()
    results = await _run(config, _parts(rig), root)
    broker = results["MQTT broker"]
    assert broker.status == "FAIL" and "cannot reach" in broker.detail
    assert "mqtt.host" in broker.fix
    assert results["server"].status == "WARN"  # up, token fine, but its broker link is down


async def test_the_printed_table_names_every_check_and_the_exit_code_follows(
    tmp_path: Path,
    mqtt_broker: MosquittoBroker,
    server_url: str,
    root: Path,
    timedatectl: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = _config(tmp_path, mqtt_broker.port, server_url)
    argv = ["--root", str(root), "--timeout", "3"]
    assert await asyncio.to_thread(main_doctor, argv, config) == 0
    table = capsys.readouterr().out
    for name in CHECK_NAMES:
        assert f"\n{name} " in table
    assert "9 checks: 9 passed, 0 warnings, 0 failed" in table

    (root / "sys/class/thermal/thermal_zone0/temp").write_text("85000\n")
    assert await asyncio.to_thread(main_doctor, argv, config) == 1
    assert "FAIL" in capsys.readouterr().out


def test_main_doctor_reads_the_config_file(tmp_path: Path, root: Path) -> None:
    bad = tmp_path / "appliance.toml"
    bad.write_text('device_id = "Not Valid"\n')
    assert main_doctor(["--config", str(bad), "--root", str(root)]) == 2


# ---------------------------------------------------------------- hardware faults


async def test_a_missing_pca9685_fails_i2c_and_servos(
    tmp_path: Path, rig: SimRig, root: Path
) -> None:
    config = _config(tmp_path, 1, "http://127.0.0.1:1")
    results = await _run(config, _parts(rig, i2c=SimI2CBus()), root)  # nothing on the bus
    assert results["I2C + PCA9685"].status == "FAIL"
    assert "no PCA9685 answers at 0x40" in results["I2C + PCA9685"].detail
    assert "i2cdetect" in results["I2C + PCA9685"].fix
    assert results["servos"].status == "FAIL"
    assert results["camera"].status == "PASS"


class DeadChannelChip(SimPCA9685):
    """A PCA9685 whose channel 0 registers ignore every write."""

    def _store(self, reg: int, value: int) -> None:
        if REG_LED0_ON_L <= reg < REG_LED0_ON_L + 4:
            return
        super()._store(reg, value)


async def test_a_servo_channel_that_does_not_take_the_pulse_fails(
    tmp_path: Path, rig: SimRig, root: Path
) -> None:
    bus = SimI2CBus()
    bus.attach(0x40, DeadChannelChip())
    config = _config(tmp_path, 1, "http://127.0.0.1:1")
    results = await _run(config, _parts(rig, i2c=bus), root)
    assert results["I2C + PCA9685"].status == "PASS"
    assert results["servos"].status == "FAIL"
    assert "read back off" in results["servos"].detail


async def test_a_gpio_pin_in_use_fails(tmp_path: Path, rig: SimRig, root: Path) -> None:
    pins = MockFactory()
    holder = LED(17, pin_factory=pins)  # another program holds the status LED pin
    try:
        results = await _run(
            _config(tmp_path, 1, "http://127.0.0.1:1"), _parts(rig, pin_factory=pins), root
        )
    finally:
        holder.close()
    assert results["GPIO"].status == "FAIL"
    assert "clinicam-appliance" in results["GPIO"].fix


async def test_a_pi_without_camera_software_or_i2c_gets_the_install_fixes(
    tmp_path: Path, rig: SimRig, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "picamera2", None)  # as on a Pi without the package
    config = _config(tmp_path, 1, "http://127.0.0.1:1", backend="pi")
    results = await _run(config, _parts(rig, camera=None, i2c=None), root)
    assert results["camera"].status == "FAIL"
    assert (
        results["camera"].fix == "sudo apt install python3-picamera2; enable camera in config.txt"
    )
    assert results["I2C + PCA9685"].status == "FAIL"
    assert "/dev/i2c-1 does not exist" in results["I2C + PCA9685"].detail
    assert "raspi-config" in results["I2C + PCA9685"].fix


def test_temperature_thresholds(root: Path) -> None:
    zone = root / "sys/class/thermal/thermal_zone0/temp"
    expected = {"35000": "PASS", "70000": "PASS", "72000": "WARN", "80000": "WARN", "80500": "FAIL"}
    for millidegrees, status in expected.items():
        zone.write_text(millidegrees)
        assert check_temperature(root).status == status, millidegrees
    zone.unlink()
    missing = check_temperature(root)
    assert (missing.status, missing.detail) == ("WARN", "not available")


# ---------------------------------------------------------------- clock and disk


def test_clock_sync_from_timedatectl(timedatectl: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert check_clock(3.0).status == "PASS"
    timedatectl.write_text("no")
    unsynced = check_clock(3.0)
    assert unsynced.status == "FAIL" and "check NTP / internet" in unsynced.fix
    monkeypatch.setenv("PATH", str(timedatectl.parent / "nothing-here"))
    unknown = check_clock(3.0)
    assert unknown.status == "WARN" and unknown.fix == "check NTP / internet"


def test_disk_space_needs_500_mb_and_10_percent() -> None:
    mb = 1024 * 1024
    assert disk_verdict(600 * mb, 4000 * mb) == "PASS"
    assert disk_verdict(499 * mb, 1000 * mb) == "FAIL"  # half free, but under 500 MB
    assert disk_verdict(900 * mb, 10_000 * mb) == "FAIL"  # 9 %
    assert disk_verdict(1000 * mb, 10_000 * mb) == "PASS"

"""Fixtures for the appliance: a simulated rig running the real command API."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory

from clinicam.mqtt_config import MqttConfig
from clinicam_app.broker import MosquittoBroker
from firmware.app import Appliance, build_appliance
from firmware.config import ApplianceConfig
from firmware.hardware.sim import SimRig, build_sim_rig
from server.mqtt_link import ApplianceLink

_IDS = itertools.count(1)


def next_id() -> str:
    return f"t{next(_IDS)}"


@dataclass
class Rig:
    """A running simulated appliance and the handles tests need."""

    appliance: Appliance
    sim: SimRig
    pins: Any  # gpiozero MockFactory


def appliance_config(tmp_path: Path, port: int, **overrides: Any) -> ApplianceConfig:
    data: dict[str, Any] = {
        "device_id": "cam-a",
        "state_dir": str(tmp_path / "state"),
        "mqtt": {"port": port, "username": "cam-a", "password": "cam-a-pw"},
        "sim": {"servo_seconds_per_60deg": 0.0},
        "telemetry_interval_s": 1.0,
    }
    for key, value in overrides.items():
        data.setdefault(key, {})
        if isinstance(value, dict):
            data[key].update(value)
        else:
            data[key] = value
    return ApplianceConfig.model_validate(data)


async def start_rig(config: ApplianceConfig, *, connect: bool = True) -> Rig:
    """The simulated appliance, running; ``connect=False`` skips MQTT (router-level tests)."""
    sim = build_sim_rig(config)
    pins = MockFactory()
    appliance = build_appliance(
        config,
        loop=asyncio.get_running_loop(),
        hardware=(sim.pantilt, sim.camera),
        pin_factory=pins,
    )
    if not connect:
        appliance.motion.start()
        return Rig(appliance, sim, pins)
    appliance.start(stream=False)
    await asyncio.wait_for(appliance.api.link.connected.wait(), 10)
    await asyncio.sleep(0.2)  # SUBACK
    return Rig(appliance, sim, pins)


@pytest.fixture
async def rig(broker: MosquittoBroker, tmp_path: Path) -> AsyncIterator[Rig]:
    instance = await start_rig(appliance_config(tmp_path, broker.port))
    yield instance
    await instance.appliance.stop()
    instance.sim.close()


@pytest.fixture
async def server_link(broker: MosquittoBroker) -> AsyncIterator[ApplianceLink]:
    cfg = MqttConfig.model_validate(
        {"port": broker.port, "username": "server", "password": "server-pw"}
    )
    link = ApplianceLink(cfg, asyncio.get_running_loop())
    link.start()
    for _ in range(100):
        if link.connected:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.2)
    yield link
    link.stop()

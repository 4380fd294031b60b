"""Every command domain through the router on the simulated rig (no broker needed)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from firmware.app import Appliance
from firmware.config import ApplianceConfig
from firmware.hardware.sim import SimRig
from firmware.media.encoders import SoftwareVideoEncoder
from tests.firmware.conftest import start_rig
from tests.helpers import wait_until

BUTTON_PIN = 27


def _config(tmp_path: Path) -> ApplianceConfig:
    return ApplianceConfig.model_validate(
        {
            "device_id": "cam-a",
            "state_dir": str(tmp_path / "state"),
            "mqtt": {"port": 1, "username": "cam-a", "password": "x"},  # never connects here
            "sim": {"servo_seconds_per_60deg": 0.0},
            "motion": {"max_speed_deg_s": 600.0},
        }
    )


class Device:
    def __init__(self, appliance: Appliance, sim: SimRig, pins: Any) -> None:
        self.appliance, self.sim, self.pins = appliance, sim, pins
        self.n = 0

    async def send(self, **command: Any) -> dict[str, Any]:
        self.n += 1
        command.setdefault("id", f"c{self.n}")
        command.setdefault("not_after", time.time() + 10)  # as the server's link sets it
        ack = await self.appliance.api.router.handle(json.dumps(command).encode())
        return ack.model_dump(exclude_none=True)

    async def settle(self) -> None:
        for _ in range(200):
            if not self.appliance.motion.moving:
                return
            await asyncio.sleep(0.01)


async def _device(tmp_path: Path) -> Device:
    rig = await start_rig(_config(tmp_path), connect=False)
    return Device(rig.appliance, rig.sim, rig.pins)


@pytest.fixture
async def device(tmp_path: Path) -> AsyncIterator[Device]:
    dev = await _device(tmp_path)
    yield dev
    await dev.appliance.stop()
    dev.sim.close()


async def test_absolute_home_and_stop(device: Device) -> None:
    ack = await device.send(op="ptz.absolute", pan=-30, tilt=60)
    assert ack["ok"] and ack["state"]["ptz"]["pan"] == -30 and ack["state"]["ptz"]["tilt"] == 45
    await device.settle()
    assert device.appliance.motion.position == (-30, 45)
    await device.send(op="ptz.home")
    await asyncio.sleep(0.02)
    ack = await device.send(op="ptz.stop")  # stops part-way home
    assert ack["ok"]
    pan, _ = device.appliance.motion.position
    assert -30 < pan < 0
    await asyncio.sleep(0.2)
    assert device.appliance.motion.position[0] == pan


async def test_presets_survive_a_restart(device: Device, tmp_path: Path) -> None:
    await device.send(op="ptz.absolute", pan=20, tilt=-10)
    await device.send(op="zoom", level=2)
    for slot in range(1, 17):  # at least 16 slots
        assert (await device.send(op="preset.save", slot=slot, name=f"view {slot}"))["ok"]
    await device.send(op="ptz.home")
    await device.send(op="zoom", level=1)
    await device.appliance.stop()

    again = await _device(tmp_path)  # a new process would read the same file
    try:
        ack = await again.send(op="preset.goto", slot=16)
        assert ack["ok"] and ack["result"]["name"] == "view 16"
        assert ack["state"]["ptz"]["pan"] == 20 and ack["state"]["zoom"] == 2.0
        assert (await again.send(op="preset.delete", slot=3))["ok"]
        missing = await again.send(op="preset.goto", slot=3)
        assert not missing["ok"] and "slot" in missing["error"]
    finally:
        await again.appliance.stop()
        again.sim.close()


async def test_focus_colour_and_zoom_reach_the_camera(device: Device) -> None:
    ack = await device.send(op="focus", mode="manual", lens_position=6.5)
    assert ack["state"]["focus"] == {"mode": "manual", "lens_position": 6.5, "af_state": "idle"}
    ack = await device.send(op="focus", mode="step", step=-1.5)
    assert ack["state"]["focus"]["lens_position"] == 5.0
    ack = await device.send(op="colour", gains=[2.5, 1.2], saturation=0.5)
    assert tuple(ack["state"]["colour"]["gains"]) == (2.5, 1.2)
    assert ack["state"]["colour"].get("awb") is None and ack["state"]["colour"]["saturation"] == 0.5
    ack = await device.send(op="colour", awb="daylight")
    assert ack["state"]["colour"]["awb"] == "daylight"
    ack = await device.send(op="zoom", level=4)
    assert ack["state"]["zoom"] == 4.0
    assert device.sim.camera.metadata()["ScalerCrop"] == (1728, 972, 1152, 648)


async def test_autofocus_after_a_large_move(device: Device) -> None:
    await device.send(op="focus", mode="manual", lens_position=9)
    await device.send(op="focus", mode="auto")
    await asyncio.to_thread(
        wait_until, lambda: device.sim.camera.metadata()["AfState"] == 2, 5, "one-shot focus"
    )
    await device.send(op="ptz.relative", pan=3)  # a small move: no refocus
    assert device.sim.camera.metadata()["AfState"] == 2
    await device.send(op="ptz.relative", pan=30)  # a large move triggers a one-shot refocus
    assert device.sim.camera.metadata()["AfState"] == 1  # scanning


async def test_stream_settings_respect_the_encoder(device: Device) -> None:
    ack = await device.send(op="stream", width=1920, height=1080, fps=30, bitrate_kbps=6000)
    assert ack["ok"] and ack["state"]["stream"]["width"] == 1920
    assert device.appliance.output.settings.fps == 30
    ack = await device.send(op="stream", width=3840, height=2160, fps=60, bitrate_kbps=20000)
    assert ack["ok"]  # the simulation's encoder goes to 4K
    bad = await device.send(op="stream", width=4096, height=2160, fps=30, bitrate_kbps=9000)
    assert not bad["ok"] and "width" in bad["error"]
    assert device.appliance.output.settings.width == 3840


async def test_expired_and_duplicate_commands_change_nothing(device: Device) -> None:
    router = device.appliance.api.router
    late = await router.handle(
        b'{"id": "e1", "op": "ptz.absolute", "pan": 40, "tilt": 0}', time.monotonic() - 0.1
    )
    assert not late.ok and late.error is not None and "expired" in late.error
    assert device.appliance.motion.target == (0, 0)
    in_time = time.monotonic() + 5
    first = await router.handle(b'{"id": "d1", "op": "ptz.relative", "pan": 4}', in_time)
    again = await router.handle(b'{"id": "d1", "op": "ptz.relative", "pan": 4}', in_time)
    assert first.ok and again.ok and again.duplicate
    assert device.appliance.motion.target == (4, 0)


async def test_privacy_button_pauses_video_and_refuses_moves(device: Device) -> None:
    encoder = device.appliance.encoder
    assert isinstance(encoder, SoftwareVideoEncoder)
    live = encoder._frame()
    button = device.pins.pin(BUTTON_PIN)
    button.drive_low()  # press …
    button.drive_high()  # … and release
    await asyncio.to_thread(
        wait_until, lambda: device.appliance.privacy.is_private, 2, "privacy on"
    )
    private = encoder._frame()
    lum_live = live.to_ndarray(format="yuv420p")[: live.height].astype(float)
    lum_private = private.to_ndarray(format="yuv420p")[: private.height].astype(float)
    assert lum_private.mean() < 60 < lum_live.mean()  # the dark privacy card, not the scene
    assert np.abs(lum_private - lum_live).mean() > 40
    ack = await device.send(op="ptz.relative", pan=10)
    assert not ack["ok"] and "privacy" in ack["error"]
    regs = bytes(device.sim.chip.regs)
    assert (await device.send(op="zoom", level=3))["ok"] is False
    assert (await device.send(op="snapshot"))["ok"] is False
    assert bytes(device.sim.chip.regs) == regs and device.appliance.motion.target == (0, 0)
    assert device.appliance.status_pattern().name == "PRIVACY"
    state = device.appliance.control.state()
    assert state.privacy is True
    button.drive_low()
    button.drive_high()  # press again: back to normal
    await asyncio.to_thread(
        wait_until, lambda: not device.appliance.privacy.is_private, 2, "privacy off"
    )
    assert (await device.send(op="ptz.relative", pan=10))["ok"]


async def test_new_stream_settings_reach_the_encoded_stream(device: Device) -> None:
    import av

    encoding = asyncio.create_task(device.appliance.encoder.run())
    track = device.appliance.make_track()
    decoder = av.CodecContext.create("h264", "r")

    async def decoded_size(wanted: tuple[int, int]) -> tuple[int, int]:
        """The first decoded size that is ``wanted`` (frames queued before a change are
        still the old size), else the last one seen."""
        size = (0, 0)
        for _ in range(10):
            packet = await track.recv()
            for frame in decoder.decode(av.Packet(bytes(packet))):
                size = (frame.width, frame.height)
                if size == wanted:
                    return size
        return size

    assert await decoded_size((1280, 720)) == (1280, 720)
    await device.send(op="stream", width=1920, height=1080, fps=30, bitrate_kbps=6000)
    assert await decoded_size((1920, 1080)) == (1920, 1080)
    assert device.sim.camera.size == (1920, 1080)  # rendered at 1080p, not upscaled
    track.stop()
    encoding.cancel()

"""True colour from the room's side: a real server, mosquitto and the simulated appliance
under an incandescent cast with the colour card held up. Only the expert holding control
can calibrate; a malformed request reaches nothing; the room learns how good the colour is."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from clinicam_app.broker import MosquittoBroker
from tests.firmware.conftest import Rig, appliance_config, start_rig
from tests.firmware.test_command_api import sniffer
from tests.records.api_helpers import running_site
from tests.server.test_command_path import Setup, _config, _until

IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)


@pytest.fixture
async def setup(broker: MosquittoBroker, tmp_path: Path) -> AsyncIterator[Setup]:
    sim = {"lighting": "incandescent", "colour_card": (0.6, 0.4, 0.3)}
    rig: Rig = await start_rig(appliance_config(tmp_path / "appliance", broker.port, sim=sim))
    try:
        async with running_site(_config(tmp_path / "server", broker.port)) as site:
            await _until(
                lambda: site.state.appliances.available.get("cam-a") is True, "cam-a online"
            )
            yield Setup(site, rig, None, broker)  # type: ignore[arg-type]  # no relay here
    finally:
        await rig.appliance.stop()
        rig.sim.close()


async def test_the_holder_calibrates_and_the_room_sees_how_well(setup: Setup) -> None:
    camera = setup.rig.sim.camera
    spy = sniffer(setup.broker, "server", "server-pw", ["clinicam/cam-a/cmd"])
    try:
        status, body = await setup.camera("alice", {"op": "colour.calibrate", "lighting": "moon"})
        assert status == 400 and "lighting" in body["error"]
        status, body = await setup.camera("bob", {"op": "colour.calibrate"})  # alice holds it
        assert status == 403 and "alice" in body["error"]
        await asyncio.sleep(0.5)  # a command, had one been sent, would have arrived by now
        assert spy.of("clinicam/cam-a/cmd") == []
    finally:
        spy.close()
    assert camera.metadata()["ColourCorrectionMatrix"] == IDENTITY
    assert camera.metadata()["AwbEnable"] is True

    status, ack = await setup.camera("alice", {"op": "colour.calibrate"})
    assert status == 200 and ack["ok"], ack
    assert ack["result"]["delta_e_before"] > 8.0 and ack["result"]["delta_e_after"] < 3.0
    assert camera.metadata()["ColourCorrectionMatrix"] != IDENTITY
    assert setup.audit("camera.command")[-1]["op"] == "colour.calibrate"
    [room] = setup.site.state.rooms.rooms_of("cam-a")
    await _until(lambda: room.colour is not None, "the room learns the calibration")
    assert room.colour is not None
    assert room.colour["lighting"] == "auto" and room.colour["delta_e"] < 3.0

    status, ack = await setup.camera("alice", {"op": "colour", "awb": "tungsten"})
    assert status == 200 and ack["ok"]
    await _until(lambda: room.colour is None, "another light: no longer calibrated")

    camera.drop_card()
    status, body = await setup.camera("alice", {"op": "colour.calibrate"})
    assert status == 422 and body["result"] == {"code": "no_card"}

"""The broker crashes mid-session: the appliance comes back by itself, nothing runs twice."""

from __future__ import annotations

import asyncio
import time

from clinicam.protocol import PtzRelative
from clinicam_app.broker import MosquittoBroker
from server.mqtt_link import CAMERA_OPS, ApplianceLink
from tests.firmware.conftest import Rig, next_id
from tests.helpers import wait_until


async def test_broker_restart(
    broker: MosquittoBroker, rig: Rig, server_link: ApplianceLink
) -> None:
    for _ in range(3):
        assert (
            await server_link.send("cam-a", PtzRelative(id=next_id(), pan=2), allowed=CAMERA_OPS)
        ).ok
    executed = rig.appliance.api.router.executed
    assert broker.process is not None
    broker.process.kill()  # a crash: no wills sent; retained messages and sessions are gone
    broker.stop()
    await asyncio.to_thread(wait_until, lambda: not server_link.connected, 5, "server to notice")
    # cut off from the broker, the server no longer counts the appliance online
    assert server_link.available.get("cam-a") is False
    server_link.states.clear()
    restarted = time.monotonic()
    broker.start()

    def back() -> bool:
        state = server_link.states.get("cam-a")
        return server_link.available.get("cam-a") is True and state is not None

    await asyncio.to_thread(wait_until, back, 5, "appliance online with state republished")
    assert time.monotonic() - restarted < 5
    state = server_link.states["cam-a"]
    assert state.ptz.pan == 6  # the republished state is the real one
    assert rig.appliance.api.router.executed == executed  # nothing executed twice
    assert (
        await server_link.send("cam-a", PtzRelative(id=next_id(), pan=1), allowed=CAMERA_OPS)
    ).ok
    assert rig.appliance.motion.target == (7, 0)

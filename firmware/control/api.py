"""The appliance's command API assembled: MQTT link + router + state publishing."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from clinicam.mqtt_config import MqttConfig
from clinicam.protocol import ApplianceState, CommandAck
from firmware.control.link import DeviceLink
from firmware.control.ptz import PtzCommands
from firmware.control.router import CommandRouter
from firmware.hardware.protocols import PanTilt


def build_command_api(
    config: MqttConfig,
    device_id: str,
    pantilt: PanTilt,
    *,
    streaming: Callable[[], bool],
    loop: asyncio.AbstractEventLoop,
) -> DeviceLink:
    """A link that answers every command and republishes retained state after changes."""
    ptz = PtzCommands(pantilt)
    router = CommandRouter(ptz)

    def state() -> ApplianceState:
        return ApplianceState(ptz=ptz.state(), streaming=streaming())

    async def on_command(payload: bytes) -> CommandAck:
        ack = await router.handle(payload)
        if ack.ok:
            link.publish_state(state())
        return ack

    link = DeviceLink(config, device_id, on_command, loop)
    link.publish_state(state())
    return link

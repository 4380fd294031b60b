"""The appliance's command API assembled: MQTT link + router + what it publishes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any

from clinicam.const import TOPIC_CAPABILITIES, TOPIC_EVENT, TOPIC_STATE
from clinicam.mqtt_config import MqttConfig
from clinicam.protocol import CommandAck
from firmware.control.device import DeviceControl
from firmware.control.link import DeviceLink
from firmware.control.router import CommandRouter
from firmware.control.snapshot import SnapshotTaker


class CommandApi:
    """Answers every command and keeps the retained state and capabilities current."""

    def __init__(
        self,
        config: MqttConfig,
        device_id: str,
        control: DeviceControl,
        snapshots: SnapshotTaker,
        *,
        encoder: Mapping[str, Any],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self._control = control
        self._encoder = dict(encoder)
        self._loop = loop
        self.router = CommandRouter(
            control.handlers(), state=control.state, private=lambda: control.privacy.is_private
        )
        self.link = DeviceLink(config, device_id, self._on_command, loop)
        snapshots.announce = self._announce
        control.motion.on_settled = self.publish_state
        control.on_aimed = self.publish_state  # click to centre, drag to zoom: the zoom
        control.privacy.on_change(self._privacy_changed)
        self.publish_state()
        self.publish_capabilities()

    def _privacy_changed(self, private: bool) -> None:
        self._loop.call_soon_threadsafe(self.publish_state)  # the button calls from its thread

    async def _on_command(self, payload: bytes, expires_at: float | None) -> CommandAck:
        ack = await self.router.handle(payload, expires_at)
        if ack.ok and not ack.duplicate:
            self.publish_state()
            if ack.op is not None and ack.op.startswith("preset."):
                self.publish_capabilities()
        return ack

    def publish_state(self) -> None:
        self.link.publish(
            TOPIC_STATE, self._control.state().model_dump_json().encode(), retain=True
        )

    def publish_capabilities(self) -> None:
        caps = self._control.capabilities(self._encoder)
        self.link.publish(TOPIC_CAPABILITIES, json.dumps(caps).encode(), retain=True)

    def _announce(self, event: dict[str, Any]) -> None:
        self.link.publish(TOPIC_EVENT, json.dumps(event).encode())

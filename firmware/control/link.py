"""MQTT transport for the appliance: connection, topics, QoS, last will, session.

It knows nothing about pan or tilt: each command payload is handed to an async
handler together with its expiry, and whatever acknowledgement that returns is
published — exactly one per delivery — to this device's ack topic with the
command's correlation data. The session starts clean at boot and is resumed after an
outage, so QoS 1 commands sent meanwhile arrive after reconnecting unless they expired;
retained messages (state, capabilities) are re-sent on every reconnect.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from clinicam.const import (
    AVAILABILITY_OFFLINE,
    AVAILABILITY_ONLINE,
    DEVICE_SESSION_EXPIRY_S,
    TOPIC_ACK,
    TOPIC_AVAILABILITY,
    TOPIC_CMD,
    device_topic,
)
from clinicam.mqtt_config import MqttConfig, make_client, publish_properties
from clinicam.protocol import CommandAck

_LOGGER = logging.getLogger(__name__)

CommandHandler = Callable[[bytes, float | None], Coroutine[Any, Any, CommandAck]]


class DeviceLink:
    """One appliance's MQTT session, with automatic reconnects."""

    def __init__(
        self,
        config: MqttConfig,
        device_id: str,
        handler: CommandHandler,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self._config = config
        self._device = device_id
        self._handler = handler
        self._loop = loop
        self.connected = asyncio.Event()
        self._retained: dict[str, bytes] = {}
        client = make_client(config, device_id)
        client.will_set(self.topic(TOPIC_AVAILABILITY), AVAILABILITY_OFFLINE, qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        self._client = client

    def topic(self, leaf: str) -> str:
        return device_topic(self._device, leaf)

    def start(self) -> None:
        """Connect in the background; paho keeps reconnecting."""
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = DEVICE_SESSION_EXPIRY_S
        self._client.connect_async(
            self._config.host,
            self._config.port,
            keepalive=self._config.keepalive_s,
            clean_start=mqtt.MQTT_CLEAN_START_FIRST_ONLY,  # fresh at boot, resumed after outages
            properties=props,
        )
        self._client.loop_start()

    def stop(self) -> None:
        """Say goodbye (retained offline) and disconnect."""
        if self._client.is_connected():
            info = self._client.publish(
                self.topic(TOPIC_AVAILABILITY), AVAILABILITY_OFFLINE, qos=1, retain=True
            )
            info.wait_for_publish(timeout=2)
        self._client.disconnect()
        self._client.loop_stop()

    def publish(self, leaf: str, payload: bytes, *, retain: bool = False) -> None:
        """Publish on this device's ``leaf`` topic; retained ones are re-sent on reconnect."""
        if retain:
            self._retained[leaf] = payload
        self._client.publish(self.topic(leaf), payload, qos=1, retain=retain)

    # paho callbacks run on paho's network thread.
    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        if reason.is_failure:
            _LOGGER.error("broker refused connection: %s", reason)
            return
        client.subscribe(self.topic(TOPIC_CMD), qos=1)
        client.publish(self.topic(TOPIC_AVAILABILITY), AVAILABILITY_ONLINE, qos=1, retain=True)
        for leaf, payload in list(self._retained.items()):
            client.publish(self.topic(leaf), payload, qos=1, retain=True)
        _LOGGER.info(
            "connected to broker %s:%d as %s", self._config.host, self._config.port, self._device
        )
        self._loop.call_soon_threadsafe(self.connected.set)

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        level = logging.INFO if not reason.is_failure else logging.WARNING
        _LOGGER.log(level, "disconnected from broker: %s", reason)
        self._loop.call_soon_threadsafe(self.connected.clear)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        correlation = getattr(msg.properties, "CorrelationData", None)
        remaining = getattr(msg.properties, "MessageExpiryInterval", None)
        expires_at = time.monotonic() + remaining if remaining is not None else None
        future = asyncio.run_coroutine_threadsafe(
            self._handler(bytes(msg.payload), expires_at), self._loop
        )
        future.add_done_callback(lambda f: self._send_ack(f, correlation))

    def _send_ack(self, future: Future[CommandAck], correlation: bytes | None) -> None:
        try:
            ack = future.result()
        except Exception as exc:  # a handler bug must still produce an answer
            _LOGGER.exception("command handler failed")
            ack = CommandAck(ok=False, error=f"internal error: {type(exc).__name__}")
        props = publish_properties(correlation=correlation)
        self._client.publish(
            self.topic(TOPIC_ACK),
            ack.model_dump_json(exclude_none=True),
            qos=1,
            properties=props,
        )

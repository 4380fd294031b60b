"""MQTT transport for the appliance: connection, topics, QoS, last will.

It knows nothing about pan or tilt: each command payload is handed to an async
handler, and whatever acknowledgement that returns is published — exactly one per
command — to this device's ack topic with the command's correlation data.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable, Coroutine
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from clinicam.const import (
    AVAILABILITY_OFFLINE,
    AVAILABILITY_ONLINE,
    TOPIC_ACK,
    TOPIC_AVAILABILITY,
    TOPIC_CMD,
    TOPIC_STATE,
    device_topic,
)
from clinicam.mqtt_config import MqttConfig, publish_properties
from clinicam.protocol import CommandAck, WireModel

_LOGGER = logging.getLogger(__name__)

CommandHandler = Callable[[bytes], Coroutine[Any, Any, CommandAck]]


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
        self._last_state: bytes | None = None
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=device_id, protocol=mqtt.MQTTv5)
        client.username_pw_set(config.username, config.password.get_secret_value())
        if config.tls:
            client.tls_set(
                ca_certs=str(config.ca_file) if config.ca_file else None,
                cert_reqs=ssl.CERT_REQUIRED,
            )
        client.will_set(self.topic(TOPIC_AVAILABILITY), AVAILABILITY_OFFLINE, qos=1, retain=True)
        client.reconnect_delay_set(min_delay=1, max_delay=10)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        self._client = client

    def topic(self, leaf: str) -> str:
        return device_topic(self._device, leaf)

    def start(self) -> None:
        """Connect in the background; paho keeps reconnecting."""
        self._client.connect_async(
            self._config.host, self._config.port, keepalive=self._config.keepalive_s
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

    def publish_state(self, state: WireModel) -> None:
        """Publish retained state (re-sent on every reconnect)."""
        self._last_state = state.model_dump_json().encode()
        self._client.publish(self.topic(TOPIC_STATE), self._last_state, qos=1, retain=True)

    # paho callbacks run on paho's network thread.
    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        if reason.is_failure:
            _LOGGER.error("broker refused connection: %s", reason)
            return
        client.subscribe(self.topic(TOPIC_CMD), qos=1)
        client.publish(self.topic(TOPIC_AVAILABILITY), AVAILABILITY_ONLINE, qos=1, retain=True)
        if self._last_state is not None:
            client.publish(self.topic(TOPIC_STATE), self._last_state, qos=1, retain=True)
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
        future = asyncio.run_coroutine_threadsafe(self._handler(bytes(msg.payload)), self._loop)
        future.add_done_callback(lambda f: self._send_ack(f, correlation))

    def _send_ack(self, future: Any, correlation: bytes | None) -> None:
        try:
            ack: CommandAck = future.result()
        except Exception as exc:  # a handler bug must still produce an answer
            _LOGGER.exception("command handler failed")
            ack = CommandAck(ok=False, error=f"internal error: {type(exc).__name__}")
        props = publish_properties(correlation=correlation)
        self._client.publish(
            self.topic(TOPIC_ACK), ack.model_dump_json(exclude_none=True), qos=1, properties=props
        )

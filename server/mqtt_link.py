"""The server's MQTT session: sends commands to appliances and awaits their acks.

Commands go to ``clinicam/<device>/cmd`` at QoS 1 with an MQTT 5 response topic and
correlation data. A command lives exactly as long as the server waits for its ack: it
carries that deadline (``not_after``, which the appliance enforces even when a command
reaches it late by another route, e.g. re-sent by paho after a reconnect) and its
message expiry is no longer, so the broker drops it too. Once the server stops waiting,
the command can no longer start; whether it ran before is unknown unless an ack said so,
and the server says exactly that (:class:`CommandUnconfirmed`), never "failed".

Every path that forwards commands names the operations it may send (its allow-list,
below); anything else is refused here, before anything is published.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import secrets
import time
from collections.abc import Callable, Collection
from typing import Any, Final

import paho.mqtt.client as mqtt
from pydantic import ValidationError

from clinicam.const import (
    AVAILABILITY_ONLINE,
    DEFAULT_ACK_TIMEOUT_S,
    TOPIC_ACK,
    TOPIC_AVAILABILITY,
    TOPIC_CMD,
    TOPIC_ROOT,
    TOPIC_STATE,
    TOPIC_TELEMETRY,
    device_topic,
)
from clinicam.i18n import _
from clinicam.mqtt_config import MqttConfig, make_client, publish_properties
from clinicam.protocol import (
    ApplianceState,
    CommandAck,
    TelemetryFigures,
    UplinkFigures,
    WireModel,
)

_LOGGER = logging.getLogger(__name__)


# Allow-lists: which operations each path may forward to an appliance.
CAMERA_OPS: Final = frozenset(
    {
        "ptz.relative",
        "ptz.absolute",
        "ptz.continuous",
        "ptz.stop",
        "ptz.home",
        "ptz.look_at",
        "ptz.frame",
        "preset.save",
        "preset.goto",
        "preset.delete",
        "focus",
        "colour",
        "colour.calibrate",
        "zoom",
        "snapshot",
        "stream",
    }
)  # the expert holding control (never privacy: that is the clinic's, see STATION_OPS)
STATION_OPS: Final = frozenset({"privacy"})  # the clinic station's privacy switch
RELEVANCE_OPS: Final = frozenset({"model.relevance"})  # the server's own, with its token
FLEET_OPS: Final = frozenset({"appliance.update"})  # admins and technicians, /admin


class CommandNotAllowed(Exception):
    """The operation is not on the calling path's allow-list; nothing was sent."""


class ApplianceUnreachable(Exception):
    """No acknowledgement arrived (see the two cases below)."""


class CommandNotSent(ApplianceUnreachable):
    """The command was not published (no broker connection): it did not and will not run."""


class CommandUnconfirmed(ApplianceUnreachable):
    """Published, but no ack came before its deadline: it may have run, it will not start
    any more."""


class ApplianceLink:
    """Publishes commands and tracks each appliance's availability and state."""

    def __init__(self, config: MqttConfig, loop: asyncio.AbstractEventLoop) -> None:
        self._config = config
        self._loop = loop
        self._pending: dict[bytes, tuple[str, asyncio.Future[CommandAck]]] = {}
        self.available: dict[str, bool] = {}
        self.states: dict[str, ApplianceState] = {}
        self.on_state: Callable[[str, ApplianceState], None] = lambda device, state: None
        self.uplinks: dict[str, tuple[float, UplinkFigures]] = {}  # (monotonic, figures)
        self.telemetry: dict[str, tuple[float, TelemetryFigures]] = {}  # (monotonic, numbers)
        self.connected = False
        client = make_client(config, f"clinicam-server-{secrets.token_hex(4)}")
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        self._client = client

    def start(self) -> None:
        self._client.connect_async(
            self._config.host, self._config.port, keepalive=self._config.keepalive_s
        )
        self._client.loop_start()

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    async def send(
        self,
        device_id: str,
        command: WireModel,
        *,
        allowed: Collection[str],
        timeout_s: float = DEFAULT_ACK_TIMEOUT_S,
    ) -> CommandAck:
        """Publish ``command`` to ``device_id`` and wait for its acknowledgement.

        ``allowed`` is the calling path's allow-list of operations. The command may start
        only until the wait ends (``timeout_s``): then :class:`CommandUnconfirmed`.
        """
        op = getattr(command, "op", None)
        if op not in allowed:
            raise CommandNotAllowed(_("op: '{op}' may not be sent this way", op=op))
        if not self.connected:
            raise CommandNotSent(_("the server is not connected to the broker: nothing was sent"))
        not_after = time.time() + timeout_s
        command = command.model_copy(update={"not_after": not_after})
        correlation = secrets.token_bytes(12)
        future: asyncio.Future[CommandAck] = self._loop.create_future()
        self._pending[correlation] = (device_id, future)
        props = publish_properties(
            response_topic=device_topic(device_id, TOPIC_ACK),
            correlation=correlation,
            expiry_s=max(1, math.floor(timeout_s)),  # whole seconds, never beyond the wait
        )
        try:
            self._client.publish(
                device_topic(device_id, TOPIC_CMD),
                command.model_dump_json(),
                qos=1,
                properties=props,
            )
            async with asyncio.timeout(timeout_s):
                return await future
        except TimeoutError:
            raise CommandUnconfirmed(
                _(
                    "appliance {device} did not confirm the command within {seconds} s: "
                    "it is not confirmed and may or may not have run; it cannot start any more",
                    device=device_id,
                    seconds=f"{timeout_s:.0f}",
                )
            ) from None
        finally:
            self._pending.pop(correlation, None)

    # paho callbacks (network thread)
    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        if reason.is_failure:
            _LOGGER.error("broker refused the server: %s", reason)
            return
        for leaf in (TOPIC_AVAILABILITY, TOPIC_STATE, TOPIC_ACK, TOPIC_TELEMETRY):
            client.subscribe(f"{TOPIC_ROOT}/+/{leaf}", qos=1)
        self.connected = True
        _LOGGER.info("server connected to broker %s:%d", self._config.host, self._config.port)

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        self.connected = False
        # Cut off from the broker, the server no longer knows who is online: an appliance
        # counts as online again only when the broker says so (its retained "online" or a
        # fresh one after it reconnects), so no command is sent into a session that is gone.
        for device in list(self.available):
            self.available[device] = False
        level = logging.INFO if not reason.is_failure else logging.WARNING
        _LOGGER.log(level, "server disconnected from broker: %s", reason)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        parts = msg.topic.split("/")
        if len(parts) != 3:
            return
        device, leaf = parts[1], parts[2]
        if leaf == TOPIC_AVAILABILITY:
            online = msg.payload == AVAILABILITY_ONLINE.encode()
            if self.available.get(device) != online:
                _LOGGER.info("appliance %s is %s", device, "online" if online else "offline")
            self.available[device] = online
        elif leaf == TOPIC_STATE:
            try:
                appliance_state = ApplianceState.model_validate_json(msg.payload)
            except ValidationError:
                _LOGGER.warning("ignored malformed state from %s", device)
                return
            self.states[device] = appliance_state
            self._loop.call_soon_threadsafe(self.on_state, device, appliance_state)
        elif leaf == TOPIC_TELEMETRY:
            self._telemetry(device, bytes(msg.payload))
        elif leaf == TOPIC_ACK:
            correlation = getattr(msg.properties, "CorrelationData", None)
            try:
                ack = CommandAck.model_validate_json(msg.payload)
            except ValidationError:
                _LOGGER.warning("ignored malformed ack from %s", device)
                return
            if correlation is not None:
                self._loop.call_soon_threadsafe(self._resolve, device, bytes(correlation), ack)

    def _telemetry(self, device: str, payload: bytes) -> None:
        """Keep the appliance's uplink figures for the room and its numbers for the
        metrics (the rest is for the fleet); what is malformed is ignored, and changes
        nothing kept."""
        try:
            body = json.loads(payload)
            if not isinstance(body, dict):
                raise ValueError("telemetry is a JSON object")
        except ValueError:
            _LOGGER.warning("ignored malformed telemetry from %s", device)
            return
        now = time.monotonic()
        recording = body.get("recording")
        buffer = recording.get("bytes") if isinstance(recording, dict) else None
        try:
            sample = TelemetryFigures.model_validate({**body, "buffer_bytes": buffer})
        except ValidationError:
            _LOGGER.warning("ignored malformed telemetry figures from %s", device)
        else:
            self.telemetry[device] = (now, sample)
        link = body.get("link")
        if link is None:
            self.uplinks.pop(device, None)
            return
        try:
            figures = UplinkFigures.model_validate(link)
        except ValidationError:
            _LOGGER.warning("ignored malformed link figures from %s", device)
            return
        self.uplinks[device] = (now, figures)

    def _resolve(self, device: str, correlation: bytes, ack: CommandAck) -> None:
        pending = self._pending.get(correlation)
        if pending is None:
            return
        sent_to, future = pending
        if sent_to != device:
            _LOGGER.warning("ignored an ack from %s for a command sent to %s", device, sent_to)
        elif not future.done():
            future.set_result(ack)

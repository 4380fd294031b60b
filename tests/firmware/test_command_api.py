"""The appliance's MQTT command API through a real mosquitto with the generated ACL."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from clinicam.broker import MosquittoBroker
from clinicam.mqtt_config import MqttConfig
from clinicam.protocol import PtzHome, PtzRelative
from firmware.config import ApplianceConfig
from firmware.control.api import build_command_api
from firmware.control.link import DeviceLink
from firmware.hardware.sim import SimRig, build_sim_rig
from server.mqtt_link import ApplianceLink, ApplianceUnreachable
from tests.helpers import wait_until


def _mqtt(broker: MosquittoBroker, user: str, password: str) -> mqtt.Client:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.username_pw_set(user, password)
    return client


@dataclass
class Sniffer:
    """A client that records messages on the topics it subscribed to."""

    client: mqtt.Client
    messages: list[tuple[str, bytes]]
    lock: threading.Lock

    def of(self, topic: str) -> list[bytes]:
        with self.lock:
            return [p for t, p in self.messages if t == topic]


def _sniffer(broker: MosquittoBroker, user: str, password: str, topics: list[str]) -> Sniffer:
    client = _mqtt(broker, user, password)
    sniffer = Sniffer(client, [], threading.Lock())
    subscribed = threading.Event()

    def on_message(c: mqtt.Client, u: object, msg: mqtt.MQTTMessage) -> None:
        with sniffer.lock:
            sniffer.messages.append((msg.topic, bytes(msg.payload)))

    def on_connect(c: mqtt.Client, *args: object) -> None:
        for topic in topics:
            c.subscribe(topic, qos=1)
        subscribed.set()

    client.on_message = on_message
    client.on_connect = on_connect
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    assert subscribed.wait(5)
    time.sleep(0.2)  # SUBACK
    return sniffer


@pytest.fixture
def rig() -> Iterator[SimRig]:
    config = ApplianceConfig.model_validate({"sim": {"servo_seconds_per_60deg": 0.0}})
    instance = build_sim_rig(config)
    yield instance
    instance.close()


@pytest.fixture
async def appliance(broker: MosquittoBroker, rig: SimRig) -> AsyncIterator[DeviceLink]:
    cfg = MqttConfig(port=broker.port, username="cam-a", password="cam-a-pw")  # type: ignore[arg-type]
    link = build_command_api(
        cfg, "cam-a", rig.pantilt, streaming=lambda: False, loop=asyncio.get_running_loop()
    )
    link.start()
    await asyncio.wait_for(link.connected.wait(), 10)
    await asyncio.sleep(0.2)
    yield link
    link.stop()


@pytest.fixture
async def server_link(broker: MosquittoBroker) -> AsyncIterator[ApplianceLink]:
    cfg = MqttConfig(port=broker.port, username="server", password="server-pw")  # type: ignore[arg-type]
    link = ApplianceLink(cfg, asyncio.get_running_loop())
    link.start()
    for _ in range(100):
        if link.connected:
            break
        await asyncio.sleep(0.05)
    yield link
    link.stop()


async def test_relative_move_is_acked_and_reaches_the_servo_register(
    appliance: DeviceLink, server_link: ApplianceLink, rig: SimRig
) -> None:
    ack = await server_link.send("cam-a", PtzRelative(pan=5, tilt=-2))
    assert ack.ok and ack.ptz is not None
    assert (ack.ptz.pan, ack.ptz.tilt) == (5, -2)
    assert rig.chip.pulse_us(0) == pytest.approx(750 + 1500 * 95 / 180, abs=5)
    ack = await server_link.send("cam-a", PtzRelative(pan=120, tilt=0))  # beyond the limit
    assert ack.ok and ack.ptz is not None and ack.ptz.pan == 85  # slides to the soft limit
    ack = await server_link.send("cam-a", PtzHome())
    assert ack.ok and ack.ptz is not None and (ack.ptz.pan, ack.ptz.tilt) == (0, 0)
    assert server_link.available.get("cam-a") is True
    state = server_link.states.get("cam-a")
    assert state is not None and state.ptz.pan == 0


BAD_PAYLOADS = [
    b"not json",
    b"{}",
    b'{"op": "ptz.teleport"}',
    b'{"op": "ptz.relative", "pan": "left"}',
    b'{"op": "ptz.relative", "pan": NaN}',
    b'{"op": "ptz.relative", "pan": 1e400}',
    b'{"op": "ptz.relative", "pan": 500}',
    b'{"op": "ptz.relative", "pan": 5, "speed": 9}',
    b"[" * 5000,
]


async def test_malformed_commands_get_one_error_ack_each_and_never_move(
    broker: MosquittoBroker, appliance: DeviceLink, rig: SimRig
) -> None:
    sniffer = _sniffer(broker, "server", "server-pw", ["clinicam/cam-a/ack"])
    regs_before = bytes(rig.chip.regs)
    sender = _mqtt(broker, "server", "server-pw")
    sender.connect("127.0.0.1", broker.port)
    sender.loop_start()
    for i, payload in enumerate(BAD_PAYLOADS):
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = "clinicam/cam-a/ack"
        props.CorrelationData = bytes([i])
        sender.publish("clinicam/cam-a/cmd", payload, qos=1, properties=props).wait_for_publish(5)
    await asyncio.to_thread(
        wait_until,
        lambda: len(sniffer.of("clinicam/cam-a/ack")) >= len(BAD_PAYLOADS),
        10,
        "an ack per command",
    )
    await asyncio.sleep(0.3)
    acks = [json.loads(p) for p in sniffer.of("clinicam/cam-a/ack")]
    assert len(acks) == len(BAD_PAYLOADS)
    assert all(a["ok"] is False and a["error"].startswith("invalid command") for a in acks)
    assert bytes(rig.chip.regs) == regs_before
    sender.loop_stop()
    sniffer.client.loop_stop()


async def test_acl_keeps_devices_to_their_own_topics(
    broker: MosquittoBroker, appliance: DeviceLink, rig: SimRig
) -> None:
    # cam-b may not read cam-a's commands …
    spy = _sniffer(broker, "cam-b", "cam-b-pw", ["clinicam/cam-a/cmd", "clinicam/#"])
    # … nor send cam-a commands.
    intruder = _mqtt(broker, "cam-b", "cam-b-pw")
    intruder.connect("127.0.0.1", broker.port)
    intruder.loop_start()
    regs_before = bytes(rig.chip.regs)
    intruder.publish("clinicam/cam-a/cmd", b'{"op": "ptz.relative", "pan": 30}', qos=1)
    server = _mqtt(broker, "server", "server-pw")
    server.connect("127.0.0.1", broker.port)
    server.loop_start()
    time.sleep(0.3)
    server.publish("clinicam/cam-a/cmd", b'{"op": "ptz.home"}', qos=1).wait_for_publish(5)
    await asyncio.sleep(1.0)
    assert bytes(rig.chip.regs) == regs_before
    assert spy.of("clinicam/cam-a/cmd") == []
    for client in (intruder, server, spy.client):
        client.loop_stop()


def _connack(broker: MosquittoBroker, user: str, password: str) -> object:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    if user:
        client.username_pw_set(user, password)
    result: list[object] = []
    client.on_connect = lambda c, u, f, reason, p: result.append(reason)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    wait_until(lambda: result, 5, "CONNACK")
    client.loop_stop()
    return result[0]


def test_anonymous_and_wrong_password_are_refused(broker: MosquittoBroker) -> None:
    assert _connack(broker, "", "").is_failure  # type: ignore[attr-defined]
    assert _connack(broker, "cam-a", "wrong").is_failure  # type: ignore[attr-defined]
    assert not _connack(broker, "cam-a", "cam-a-pw").is_failure  # type: ignore[attr-defined]


async def test_command_to_an_absent_appliance_fails_cleanly(server_link: ApplianceLink) -> None:
    with pytest.raises(ApplianceUnreachable):
        await server_link.send("cam-b", PtzHome(), timeout_s=1.0)

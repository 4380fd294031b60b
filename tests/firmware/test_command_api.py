"""The appliance's MQTT command API through a real mosquitto with the generated ACL."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from clinicam.mqtt_config import publish_properties
from clinicam.protocol import PtzHome, PtzRelative, Snapshot
from clinicam_app.broker import MosquittoBroker
from server.mqtt_link import CAMERA_OPS, ApplianceLink, ApplianceUnreachable
from tests.firmware.conftest import Rig, next_id
from tests.helpers import wait_until

PAN_CHANNEL = 0


def _mqtt(user: str, password: str) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
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

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def sniffer(broker: MosquittoBroker, user: str, password: str, topics: list[str]) -> Sniffer:
    client = _mqtt(user, password)
    spy = Sniffer(client, [], threading.Lock())
    subscribed = threading.Event()

    def on_message(c: mqtt.Client, u: object, msg: mqtt.MQTTMessage) -> None:
        with spy.lock:
            spy.messages.append((msg.topic, bytes(msg.payload)))

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
    return spy


def publisher(
    broker: MosquittoBroker, user: str = "server", password: str = "server-pw"
) -> mqtt.Client:
    client = _mqtt(user, password)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    return client


def send_raw(
    client: mqtt.Client,
    payload: bytes,
    correlation: bytes,
    *,
    expiry_s: int | None = 5,  # every command has a deadline (the server's link sets one)
    topic: str = "clinicam/cam-a/cmd",
) -> None:
    props = publish_properties(
        response_topic="clinicam/cam-a/ack", correlation=correlation, expiry_s=expiry_s
    )
    client.publish(topic, payload, qos=1, properties=props).wait_for_publish(5)


async def test_relative_move_is_acked_and_reaches_the_servo_register(
    rig: Rig, server_link: ApplianceLink
) -> None:
    ack = await server_link.send(
        "cam-a", PtzRelative(id=next_id(), pan=5, tilt=-2), allowed=CAMERA_OPS
    )
    assert ack.ok and ack.state is not None
    assert (ack.state.ptz.pan, ack.state.ptz.tilt) == (5, -2)
    expected = 750 + 1500 * 95 / 180
    await asyncio.to_thread(
        wait_until,
        lambda: abs((rig.sim.chip.pulse_us(PAN_CHANNEL) or 0) - expected) < 5,
        2,
        "the pan register to reach 95°",
        0.005,
    )
    ack = await server_link.send(  # past the limit
        "cam-a", PtzRelative(id=next_id(), pan=120), allowed=CAMERA_OPS
    )
    assert ack.ok and ack.state is not None and ack.state.ptz.pan == 85  # slides to the limit
    assert ack.state.ptz.tilt == -2
    ack = await server_link.send("cam-a", PtzHome(id=next_id()), allowed=CAMERA_OPS)
    assert ack.ok and ack.state is not None and (ack.state.ptz.pan, ack.state.ptz.tilt) == (0, 0)
    assert server_link.available.get("cam-a") is True
    await asyncio.to_thread(
        wait_until,
        lambda: (s := server_link.states.get("cam-a")) and s.ptz.pan == 0 and not s.ptz.moving,
        5,
        "retained state after the move settled",
    )


BAD_PAYLOADS = [
    b"not json",
    b"{}",
    b'{"id": "b1", "op": "ptz.teleport"}',
    b'{"id": "b2", "op": "ptz.relative", "pan": "left"}',
    b'{"id": "b3", "op": "ptz.relative", "pan": NaN}',
    b'{"id": "b4", "op": "ptz.relative", "pan": 1e400}',
    b'{"id": "b5", "op": "ptz.relative", "pan": 500}',
    b'{"id": "b6", "op": "ptz.relative", "pan": 5, "speed": 9}',
    b'{"op": "ptz.relative", "pan": 5}',
    b'{"id": "b7", "op": "ptz.continuous", "pan_speed": 10}',
    b'{"id": "b8", "op": "ptz.continuous", "pan_speed": 10, "timeout_s": 5}',
    b'{"id": "b9", "op": "zoom", "level": 9}',
    b'{"id": "b10", "op": "focus", "mode": "manual"}',
    b'{"id": "b11", "op": "colour", "awb": "auto", "gains": [1, 1]}',
    b'{"id": "../../etc", "op": "snapshot"}',
    b"[" * 5000,
]


async def test_malformed_commands_get_one_error_ack_each_and_never_move(
    broker: MosquittoBroker, rig: Rig
) -> None:
    spy = sniffer(broker, "server", "server-pw", ["clinicam/cam-a/ack"])
    regs_before = bytes(rig.sim.chip.regs)
    sender = publisher(broker)
    for i, payload in enumerate(BAD_PAYLOADS):
        send_raw(sender, payload, bytes([i]))
    await asyncio.to_thread(
        wait_until,
        lambda: len(spy.of("clinicam/cam-a/ack")) >= len(BAD_PAYLOADS),
        10,
        "an ack per command",
    )
    await asyncio.sleep(0.3)
    acks = [json.loads(p) for p in spy.of("clinicam/cam-a/ack")]
    assert len(acks) == len(BAD_PAYLOADS)
    assert all(a["ok"] is False and a["error"].startswith("invalid command") for a in acks)
    by_id = {a.get("id"): a for a in acks}
    assert "timeout_s" in by_id["b7"]["error"] and "level" in by_id["b9"]["error"]
    assert bytes(rig.sim.chip.regs) == regs_before
    assert rig.appliance.api.router.executed == 0
    assert not list((rig.appliance.config.state_dir).glob("**/*.jpg"))
    sender.loop_stop()
    spy.close()


async def test_duplicate_command_is_acked_again_not_executed_again(
    broker: MosquittoBroker, rig: Rig
) -> None:
    spy = sniffer(broker, "server", "server-pw", ["clinicam/cam-a/ack"])
    sender = publisher(broker)
    payload = b'{"id": "dup-1", "op": "ptz.relative", "pan": 10}'
    send_raw(sender, payload, b"a")
    send_raw(sender, payload, b"b")  # redelivered under QoS 1 / sent twice
    await asyncio.to_thread(
        wait_until, lambda: len(spy.of("clinicam/cam-a/ack")) >= 2, 5, "two acks"
    )
    acks = [json.loads(p) for p in spy.of("clinicam/cam-a/ack")]
    assert [a["ok"] for a in acks] == [True, True]
    assert [a.get("duplicate", False) for a in acks] == [False, True]
    assert rig.appliance.motion.target == (10, 0)  # moved once, not twice
    assert rig.appliance.api.router.executed == 1
    sender.loop_stop()
    spy.close()


async def test_expired_command_never_moves(broker: MosquittoBroker, rig: Rig) -> None:
    await rig.appliance.stop()  # the appliance is away …
    sender = publisher(broker)
    await asyncio.sleep(0.3)
    send_raw(sender, b'{"id": "late-1", "op": "ptz.relative", "pan": 30}', b"x", expiry_s=1)
    await asyncio.sleep(2.0)  # … longer than the command may live
    rig2 = rig.appliance  # restart on the same session id
    from tests.firmware.conftest import start_rig

    again = await start_rig(rig2.config)
    await asyncio.sleep(1.0)
    assert again.appliance.motion.target == (0, 0)
    assert again.appliance.api.router.executed == 0
    await again.appliance.stop()
    again.sim.close()
    sender.loop_stop()


async def test_state_capabilities_and_availability_are_retained(
    broker: MosquittoBroker, rig: Rig, server_link: ApplianceLink
) -> None:
    await server_link.send("cam-a", PtzRelative(id=next_id(), pan=-7), allowed=CAMERA_OPS)
    late = sniffer(broker, "server", "server-pw", ["clinicam/cam-a/#"])  # subscribes afterwards
    await asyncio.to_thread(
        wait_until, lambda: late.of("clinicam/cam-a/capabilities"), 5, "retained capabilities"
    )
    caps = json.loads(late.of("clinicam/cam-a/capabilities")[0])
    assert caps["pan"] == {"min": -85.0, "max": 85.0} and caps["zoom"]["max"] == 8.0
    assert caps["presets"]["slots"] >= 16 and caps["encoder"]["max_width"] == 3840
    state = json.loads(late.of("clinicam/cam-a/state")[-1])
    assert state["ptz"]["pan"] == -7 and state["privacy"] is False
    assert late.of("clinicam/cam-a/availability") == [b"online"]
    await asyncio.to_thread(wait_until, lambda: late.of("clinicam/cam-a/telemetry"), 5, "telemetry")
    telemetry = json.loads(late.of("clinicam/cam-a/telemetry")[0])
    assert {"cpu_temp_c", "load_1m", "fps", "bitrate_kbps", "dropped_frames"} <= set(telemetry)
    late.close()


async def test_snapshot_is_kept_and_announced(
    broker: MosquittoBroker, rig: Rig, server_link: ApplianceLink
) -> None:
    spy = sniffer(broker, "server", "server-pw", ["clinicam/cam-a/event"])
    ack = await server_link.send(
        "cam-a", Snapshot(id=next_id(), requested_by="alice"), allowed=CAMERA_OPS, timeout_s=15
    )
    assert ack.ok and ack.result is not None
    path = rig.appliance.config.state_dir / "snapshots" / str(ack.result["file"])
    assert path.read_bytes()[:3] == b"\xff\xd8\xff"  # a JPEG
    assert (ack.result["width"], ack.result["height"]) == rig.sim.camera.sensor_resolution
    await asyncio.to_thread(wait_until, lambda: spy.of("clinicam/cam-a/event"), 5, "event")
    event = json.loads(spy.of("clinicam/cam-a/event")[0])
    assert event["type"] == "snapshot" and event["sha256"] == ack.result["sha256"]
    assert event["requested_by"] == "alice"
    spy.close()


async def test_acl_keeps_devices_to_their_own_topics(broker: MosquittoBroker, rig: Rig) -> None:
    # cam-b may not read cam-a's commands or status …
    spy = sniffer(broker, "cam-b", "cam-b-pw", ["clinicam/cam-a/cmd", "clinicam/#"])
    # … nor send cam-a commands.
    intruder = publisher(broker, "cam-b", "cam-b-pw")
    regs_before = bytes(rig.sim.chip.regs)
    intruder.publish("clinicam/cam-a/cmd", b'{"id": "x", "op": "ptz.relative", "pan": 30}', qos=1)
    server = publisher(broker)
    await asyncio.sleep(0.3)
    send_raw(server, b'{"id": "s1", "op": "ptz.home"}', b"s")
    await asyncio.sleep(1.0)
    assert bytes(rig.sim.chip.regs) == regs_before
    assert rig.appliance.motion.target == (0, 0)
    assert spy.messages == []  # nothing of cam-a's reached cam-b
    for client in (intruder, server):
        client.loop_stop()
    spy.close()


def _connack(broker: MosquittoBroker, user: str, password: str) -> object:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
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
        await server_link.send("cam-b", PtzHome(id=next_id()), allowed=CAMERA_OPS, timeout_s=1.0)

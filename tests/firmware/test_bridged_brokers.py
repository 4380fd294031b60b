"""A clinic hub's broker bridged to a regional one (issue 21, O9): the server on the
regional broker commands an appliance attached to the hub, with the MQTT 5 properties
(response topic, correlation data, message expiry) kept across the bridge; the hub's
account reaches only the appliances it serves."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from clinicam.broker_files import Bridge, bridge_text
from clinicam.mqtt_config import MqttConfig, publish_properties
from clinicam.protocol import PtzRelative
from clinicam_app.broker import BrokerUser, MosquittoBroker
from server.mqtt_link import CAMERA_OPS, ApplianceLink
from tests.firmware.conftest import Rig, appliance_config, next_id, start_rig
from tests.helpers import free_port, wait_until

HUB_PASSWORD = "hub-1-secret"


@pytest.fixture
def brokers(tmp_path: Path) -> Iterator[tuple[MosquittoBroker, MosquittoBroker]]:
    """The regional broker (the server, the hub's bridge account serving cam-a, and an
    observer) and the hub's (cam-a and cam-b attached), bridged."""
    regional = MosquittoBroker(
        tmp_path / "regional",
        [
            BrokerUser("server", "server-pw", is_server=True),
            BrokerUser("hub-1", HUB_PASSWORD, hub_devices=("cam-a",)),
        ],
        host="127.0.0.1",
        port=free_port(),
    )
    regional.start()
    hub = MosquittoBroker(
        tmp_path / "hub",
        [
            BrokerUser("cam-a", "cam-a-pw"),
            BrokerUser("cam-b", "cam-b-pw"),
            BrokerUser("observer", "observer-pw", is_server=True),
        ],
        host="127.0.0.1",
        port=free_port(),
        bridge=Bridge("hub-1", "127.0.0.1", regional.port, "hub-1", HUB_PASSWORD),
    )
    hub.start()
    try:
        yield regional, hub
    finally:
        hub.stop()
        regional.stop()


def _client(port: int, user: str, password: str, inbox: list[Any], *topics: str) -> mqtt.Client:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.username_pw_set(user, password)
    client.on_message = lambda _c, _u, msg: inbox.append(msg)
    client.connect("127.0.0.1", port)
    for topic in topics:
        client.subscribe(topic, qos=1)
    client.loop_start()
    return client


@pytest.fixture
async def server_link(
    brokers: tuple[MosquittoBroker, MosquittoBroker],
) -> AsyncIterator[ApplianceLink]:
    regional, _ = brokers
    cfg = MqttConfig.model_validate(
        {"port": regional.port, "username": "server", "password": "server-pw"}
    )
    link = ApplianceLink(cfg, asyncio.get_running_loop())
    link.start()
    await asyncio.to_thread(wait_until, lambda: link.connected, 10, "server connected")
    yield link
    link.stop()


@pytest.fixture
async def rig(
    brokers: tuple[MosquittoBroker, MosquittoBroker], tmp_path: Path
) -> AsyncIterator[Rig]:
    _, hub = brokers
    instance = await start_rig(appliance_config(tmp_path, hub.port))
    yield instance
    await instance.appliance.stop()
    instance.sim.close()


async def test_a_command_reaches_an_appliance_behind_the_hub(
    server_link: ApplianceLink, rig: Rig
) -> None:
    def online() -> bool:
        return server_link.available.get("cam-a") is True and "cam-a" in server_link.states

    await asyncio.to_thread(wait_until, online, 15, "cam-a online at the regional broker")
    ack = await server_link.send("cam-a", PtzRelative(id=next_id(), pan=5), allowed=CAMERA_OPS)
    assert ack.ok, ack
    assert rig.appliance.motion.target == (5, 0)
    await asyncio.to_thread(
        wait_until,
        lambda: server_link.states["cam-a"].ptz.pan == 5,
        10,
        "the new state relayed up",
    )


async def test_properties_cross_the_bridge_and_the_hub_reaches_only_its_appliances(
    brokers: tuple[MosquittoBroker, MosquittoBroker],
) -> None:
    regional, hub = brokers
    at_hub: list[Any] = []
    at_region: list[Any] = []
    listener = _client(hub.port, "observer", "observer-pw", at_hub, "clinicam/#")
    server = _client(regional.port, "server", "server-pw", at_region, "clinicam/+/ack")
    try:
        time.sleep(1.0)  # the bridge connects and subscribes
        props = publish_properties(
            response_topic="clinicam/cam-a/ack", correlation=b"\x00corr-1", expiry_s=30
        )
        for device in ("cam-a", "cam-b"):  # cam-b is not this hub's
            server.publish(f"clinicam/{device}/cmd", b"{}", qos=1, properties=props)
        wait_until(lambda: any(m.topic == "clinicam/cam-a/cmd" for m in at_hub), 10, "command")
        command = next(m for m in at_hub if m.topic == "clinicam/cam-a/cmd")
        assert command.properties.ResponseTopic == "clinicam/cam-a/ack"
        assert command.properties.CorrelationData == b"\x00corr-1"
        assert 0 < command.properties.MessageExpiryInterval <= 30
        reply = _client(hub.port, "cam-a", "cam-a-pw", [])
        reply.publish(
            "clinicam/cam-a/ack",
            b'{"ok": true}',
            qos=1,
            properties=publish_properties(correlation=b"\x00corr-1"),
        ).wait_for_publish(5)
        wait_until(lambda: bool(at_region), 10, "the ack relayed up")
        assert at_region[0].properties.CorrelationData == b"\x00corr-1"
        spoof = _client(hub.port, "cam-b", "cam-b-pw", [])
        spoof.publish("clinicam/cam-b/ack", b'{"ok": true}', qos=1).wait_for_publish(5)
        time.sleep(1.0)
        assert not any(m.topic == "clinicam/cam-b/cmd" for m in at_hub)
        assert [m.topic for m in at_region] == ["clinicam/cam-a/ack"]  # cam-b's stays at the hub
        reply.disconnect()
        spoof.disconnect()
    finally:
        listener.disconnect()
        server.disconnect()


def test_bridge_settings_are_checked() -> None:
    text = bridge_text(Bridge("hub-1", "region.example", 8883, "hub-1", "pw", cafile="/ca.pem"))
    assert "bridge_protocol_version mqttv50" in text and "bridge_cafile /ca.pem" in text
    assert "topic clinicam/+/cmd in 1" in text and "topic clinicam/+/state out 1" in text
    for bad in (
        Bridge("hub 1", "h", 1883, "hub-1", "pw"),
        Bridge("hub-1", "h", 0, "hub-1", "pw"),
        Bridge("hub-1", "h", 1883, "hub/#", "pw"),
        Bridge("hub-1", "h", 1883, "hub-1", "two words"),
    ):
        with pytest.raises(ValueError):
            bridge_text(bad)


def test_the_cli_writes_the_section_and_refuses_bad_values(tmp_path: Path) -> None:
    from clinicam_app.cli import main

    secret = tmp_path / "hub.password"
    secret.write_text("s3cret\n")
    out = tmp_path / "clinicam-bridge.conf"
    args = ["broker-bridge", "--name", "hub-1", "--remote", "region.example:8883"]
    args += ["--username", "hub-1", "--password-file", str(secret), "--output", str(out)]
    assert main([*args, "--cafile", "/etc/ssl/region-ca.pem"]) == 0
    text = out.read_text()
    assert "address region.example:8883" in text and "remote_password s3cret" in text
    assert out.stat().st_mode & 0o777 == 0o640
    assert main([*args[:4], "region.example:nope", *args[5:]]) == 2
    assert out.read_text() == text  # nothing changed

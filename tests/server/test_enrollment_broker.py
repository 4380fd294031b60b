"""Enrolment keeps a REAL mosquitto's password and ACL files, reloaded without drops.

The broker fixture's mosquitto (server, cam-a, cam-b) gets a server with
``[broker_admin]`` pointing at its files and pid: an appliance enrolled from /admin can
connect with its bundle's credentials while cam-a stays connected; revoked, it is cut
off and refused; rotated, its old password stops working and the new one works.
"""

from __future__ import annotations

import threading
import tomllib
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from clinicam import broker_files
from clinicam_app.broker import MosquittoBroker
from server.audit.trail import AuditTrail
from server.config import ServerConfig
from server.db import open_database
from server.directory.book import Directory
from server.directory.broker_accounts import BrokerAccounts
from server.directory.enrollment import EnrollmentDesk
from tests.helpers import wait_until

HOST = "127.0.0.1"


class Client:
    """A paho client that records whether it is connected and what it received."""

    def __init__(self, username: str, password: str) -> None:
        self.mqtt = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.mqtt.username_pw_set(username, password)
        self.answered = threading.Event()
        self.reason: Any = None
        self.connected = False
        self.disconnects = 0
        self.messages: list[tuple[str, bytes]] = []
        self.mqtt.on_connect = self._on_connect
        self.mqtt.on_disconnect = self._on_disconnect
        self.mqtt.on_message = lambda c, u, msg: self.messages.append((msg.topic, msg.payload))

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self.reason = reason
        self.connected = not reason.is_failure
        self.answered.set()

    def _on_disconnect(self, *args: Any) -> None:
        self.connected = False
        self.disconnects += 1
        self.answered.set()

    def connect(self, port: int) -> bool:
        """True if the broker accepted the connection (no automatic reconnects)."""
        self.mqtt.reconnect_delay_set(60, 120)
        self.mqtt.connect(HOST, port)
        self.mqtt.loop_start()
        self.answered.wait(5.0)
        return self.connected

    def close(self) -> None:
        self.mqtt.disconnect()
        self.mqtt.loop_stop()


def _accepted(port: int, username: str, password: str) -> bool:
    client = Client(username, password)
    try:
        return client.connect(port)
    finally:
        client.close()


def _mqtt(bundle: str) -> tuple[str, int, str, str]:
    raw = tomllib.loads(bundle)["mqtt"]
    return raw["host"], raw["port"], raw["username"], raw["password"]


@pytest.fixture
def desk(broker: MosquittoBroker, tmp_path: Path) -> EnrollmentDesk:
    config = ServerConfig.model_validate(
        {
            "state_dir": str(tmp_path / "state"),
            "mqtt": {"port": broker.port, "username": "server", "password": "server-pw"},
            "broker_admin": {
                "password_file": str(broker.password_file),
                "acl_file": str(broker.acl_file),
                "pid_file": str(broker.pid_file),
            },
        }
    )
    database = open_database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    assert config.broker_admin is not None
    return EnrollmentDesk(
        config,
        database,
        AuditTrail(database),
        Directory(database),
        broker=BrokerAccounts(config.broker_admin, config.mqtt),
    )


async def test_enrolled_appliance_connects_and_the_others_stay_connected(
    broker: MosquittoBroker, desk: EnrollmentDesk
) -> None:
    cam_a = Client("cam-a", "cam-a-pw")
    server = Client("server", "server-pw")
    assert cam_a.connect(broker.port) and server.connect(broker.port)
    try:
        cam_a.mqtt.subscribe("clinicam/cam-a/cmd", qos=1)
        first = await desk.enrol("tech", "Ward 3", "Hill Clinic", None, seen_url="http://127.0.0.1")
        assert first.broker.state == "updated"
        host, port, username, password = _mqtt(first.bundle)
        assert (host, port, username) == (HOST, broker.port, "ward-3")
        wait_until(lambda: _accepted(broker.port, username, password), 10, "ward-3 to connect")
        assert not _accepted(broker.port, username, "wrong")

        second = await desk.enrol("tech", "Ward 4", "Hill Clinic", None, seen_url="http://x")
        _h, _p, user2, password2 = _mqtt(second.bundle)
        wait_until(lambda: _accepted(broker.port, user2, password2), 10, "ward-4 to connect")
        assert _accepted(broker.port, username, password)  # the first one still may
        # cam-a (from the demo's own file) and the server kept their sessions throughout
        assert cam_a.connected and cam_a.disconnects == 0
        assert server.connected and server.disconnects == 0
        server.mqtt.publish("clinicam/cam-a/cmd", b"ping", qos=1).wait_for_publish(5)
        wait_until(lambda: cam_a.messages, 5, "cam-a to receive over its old session")
        accounts = broker_files.parse_password_file(broker.password_file.read_text())
        assert set(accounts) == {"server", "cam-a", "cam-b", "ward-3", "ward-4"}
        assert password not in broker.password_file.read_text()
    finally:
        cam_a.close()
        server.close()


async def test_an_enrolled_appliance_reads_only_its_own_commands(
    broker: MosquittoBroker, desk: EnrollmentDesk
) -> None:
    enrolment = await desk.enrol("tech", "Ward", "Hill Clinic", None, seen_url="http://127.0.0.1")
    _h, _p, username, password = _mqtt(enrolment.bundle)
    ward = Client(username, password)
    server = Client("server", "server-pw")
    wait_until(lambda: _accepted(broker.port, username, password), 10, "ward to connect")
    assert ward.connect(broker.port) and server.connect(broker.port)
    try:
        ward.mqtt.subscribe([("clinicam/cam-a/cmd", 1), ("clinicam/ward/cmd", 1)])

        def own_arrives() -> bool:  # once it does, both subscriptions are in place
            server.mqtt.publish("clinicam/ward/cmd", b"yours", qos=1).wait_for_publish(5)
            return bool(ward.messages)

        wait_until(own_arrives, 10, "ward's own command")
        server.mqtt.publish("clinicam/cam-a/cmd", b"not yours", qos=1).wait_for_publish(5)
        server.mqtt.publish("clinicam/ward/cmd", b"last", qos=1).wait_for_publish(5)
        wait_until(lambda: ("clinicam/ward/cmd", b"last") in ward.messages, 5, "the last one")
        assert {topic for topic, _payload in ward.messages} == {"clinicam/ward/cmd"}
    finally:
        ward.close()
        server.close()


async def test_revoked_appliance_is_cut_off_and_refused_the_others_stay(
    broker: MosquittoBroker, desk: EnrollmentDesk
) -> None:
    enrolment = await desk.enrol("tech", "Ward", "Hill Clinic", None, seen_url="http://127.0.0.1")
    _h, _p, username, password = _mqtt(enrolment.bundle)
    wait_until(lambda: _accepted(broker.port, username, password), 10, "ward to connect")
    ward, cam_a = Client(username, password), Client("cam-a", "cam-a-pw")
    assert ward.connect(broker.port) and cam_a.connect(broker.port)
    try:
        outcome = await desk.revoke("admin", "ward")
        assert outcome.state == "updated"
        wait_until(lambda: not ward.connected, 10, "mosquitto to disconnect the revoked device")
        assert not _accepted(broker.port, username, password)
        assert cam_a.connected and cam_a.disconnects == 0
        assert "ward" not in broker_files.parse_password_file(broker.password_file.read_text())
    finally:
        ward.close()
        cam_a.close()


async def test_rotated_appliance_needs_its_new_password(
    broker: MosquittoBroker, desk: EnrollmentDesk
) -> None:
    old = await desk.enrol("tech", "Ward", "Hill Clinic", None, seen_url="http://127.0.0.1")
    _h, _p, username, old_password = _mqtt(old.bundle)
    wait_until(lambda: _accepted(broker.port, username, old_password), 10, "ward to connect")
    new = await desk.rotate("tech", "ward", seen_url="http://127.0.0.1")
    new_password = _mqtt(new.bundle)[3]
    wait_until(lambda: _accepted(broker.port, username, new_password), 10, "the new password")
    assert not _accepted(broker.port, username, old_password)


async def test_a_broker_that_cannot_be_reloaded_is_reported_and_the_enrolment_stands(
    broker: MosquittoBroker, desk: EnrollmentDesk
) -> None:
    broker.pid_file.unlink()
    enrolment = await desk.enrol("tech", "Ward", "Hill Clinic", None, seen_url="http://127.0.0.1")
    assert enrolment.broker.state == "failed" and enrolment.broker.problem
    assert [a.device_id for a in desk.listing()] == ["ward"]
    broker.pid_file.write_text(f"{broker.process.pid if broker.process else 0}\n")
    assert (await desk.sync_broker()).state == "updated"  # what the server does at start
    _h, _p, username, password = _mqtt(enrolment.bundle)
    wait_until(lambda: _accepted(broker.port, username, password), 10, "ward after the repair")


async def test_a_reload_command_reloads_and_a_failing_one_is_reported(
    broker: MosquittoBroker, tmp_path: Path
) -> None:
    def desk_with(command: list[str], name: str) -> EnrollmentDesk:
        config = ServerConfig.model_validate(
            {
                "state_dir": str(tmp_path / name),
                "mqtt": {"port": broker.port, "username": "server", "password": "server-pw"},
                "broker_admin": {
                    "password_file": str(broker.password_file),
                    "acl_file": str(broker.acl_file),
                    "reload_command": command,
                },
            }
        )
        database = open_database(f"sqlite:///{tmp_path / name / 'db.sqlite'}")
        assert config.broker_admin is not None
        return EnrollmentDesk(
            config,
            database,
            AuditTrail(database),
            Directory(database),
            broker=BrokerAccounts(config.broker_admin, config.mqtt),
        )

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    reload = ["sh", "-c", f"kill -HUP $(cat {broker.pid_file})"]
    made = await desk_with(reload, "a").enrol("tech", "Ward", "Hill", None, seen_url="http://x")
    assert made.broker.state == "updated"
    _h, _p, username, password = _mqtt(made.bundle)
    wait_until(lambda: _accepted(broker.port, username, password), 10, "ward to connect")
    failing = ["sh", "-c", "echo mosquitto.service not loaded >&2; exit 1"]
    other = await desk_with(failing, "b").enrol("tech", "Bed", "Hill", None, seen_url="http://x")
    assert other.broker.state == "failed"
    assert other.broker.problem is not None and "not loaded" in other.broker.problem

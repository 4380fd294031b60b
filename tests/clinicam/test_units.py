"""systemd/: the units pass ``systemd-analyze verify`` and say what the issue promises.

``verify`` needs the ExecStart binary to exist, so each unit is copied into a temporary
folder with only that path swapped for a stub script; every other line is the shipped
one. Unknown keys or sections make systemd print a warning, which fails the test.
"""

from __future__ import annotations

import getpass
import re
import shutil
import stat
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from clinicam_app import procs
from clinicam_app.broker import BrokerUser, acl_text, find_mosquitto, write_password_file

ROOT = Path(__file__).resolve().parents[2]
UNITS = ROOT / "systemd"
PROGRAM = "/opt/clinicam/current/venv/bin/clinicam"
ANALYZE = shutil.which("systemd-analyze")

Unit = dict[str, dict[str, list[str]]]


def parse_unit(text: str) -> Unit:
    """Sections → key → every value (keys like DeviceAllow= repeat)."""
    unit: Unit = {}
    section: dict[str, list[str]] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = unit.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        section.setdefault(key.strip(), []).append(value.strip())
    return unit


def one(unit: Unit, section: str, key: str) -> str:
    values = unit[section].get(key, [])
    assert len(values) == 1, f"[{section}] {key}= appears {len(values)} times"
    return values[0]


def verify(folder: Path, name: str, text: str | None = None) -> subprocess.CompletedProcess[str]:
    """``systemd-analyze verify`` on a copy of unit ``name`` whose clinicam program exists."""
    stub = folder / "clinicam"
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(stub.stat().st_mode | stat.S_IXUSR)
    text = (UNITS / name).read_text() if text is None else text
    assert f"{PROGRAM} " in text
    (folder / name).write_text(text.replace(f"{PROGRAM} ", f"{stub} "))
    assert ANALYZE is not None, "systemd-analyze missing: ./install.sh --role dev installs systemd"
    return subprocess.run(
        [ANALYZE, "verify", "--man=no", str(folder / name)],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    "name", ["clinicam-appliance.service", "clinicam-server.service", "clinicam-update.service"]
)
def test_systemd_analyze_verify_passes(tmp_path: Path, name: str) -> None:
    result = verify(tmp_path, name)
    assert result.returncode == 0, result.stderr
    assert not re.search(r"unknown|ignoring|failed|invalid", result.stderr, re.I), result.stderr


def test_the_update_path_unit_starts_the_root_updater_on_the_appliances_request(
    tmp_path: Path,
) -> None:
    """The path the appliance writes is the one watched and the one the updater reads."""
    from firmware.control.update_request import REQUEST_FILE

    appliance = parse_unit((UNITS / "clinicam-appliance.service").read_text())
    state_dir = next(
        v.split("=", 1)[1]
        for v in appliance["Service"]["Environment"]
        if v.startswith("CLINICAM_APPLIANCE__STATE_DIR=")
    )
    request = f"{state_dir}/{REQUEST_FILE}"
    watch = parse_unit((UNITS / "clinicam-update.path").read_text())
    assert one(watch, "Path", "PathExists") == request
    assert one(watch, "Path", "Unit") == "clinicam-update.service"
    assert one(watch, "Install", "WantedBy") == "multi-user.target"
    updater = parse_unit((UNITS / "clinicam-update.service").read_text())
    assert one(updater, "Service", "Type") == "oneshot"
    assert one(updater, "Service", "ExecStart") == (
        f"{PROGRAM} appliance update --request {request} --run-as clinicam"
    )
    assert "User" not in updater["Service"]  # root: it writes /opt/clinicam
    assert one(updater, "Service", "ReadWritePaths").split() == ["/opt/clinicam", state_dir]
    assert one(updater, "Service", "ProtectSystem") == "strict"
    assert "Install" not in updater  # only the path unit starts it

    verify(tmp_path, "clinicam-update.service")  # writes the stubbed copy beside the path unit
    (tmp_path / "clinicam-update.path").write_text((UNITS / "clinicam-update.path").read_text())
    assert ANALYZE is not None
    result = subprocess.run(
        [ANALYZE, "verify", "--man=no", str(tmp_path / "clinicam-update.path")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert not re.search(r"unknown|ignoring|failed|invalid", result.stderr, re.I), result.stderr


def test_verify_would_catch_a_misspelt_key(tmp_path: Path) -> None:
    """The check above can fail: a misspelt key in a copy is reported."""
    text = (UNITS / "clinicam-server.service").read_text()
    result = verify(tmp_path, "clinicam-server.service", text.replace("NoNewPriv", "NoNewPrv"))
    assert "Unknown key 'NoNewPrvileges'" in result.stderr


HARDENING = {
    "Type": "notify",
    "NotifyAccess": "main",
    "WatchdogSec": "30",
    "Restart": "on-failure",
    "RestartSec": "5",
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectControlGroups": "yes",
    "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6 AF_NETLINK",
    "LockPersonality": "yes",
    "RestrictRealtime": "yes",
    "SystemCallArchitectures": "native",
    "UMask": "0077",
    "DevicePolicy": "closed",
    "StandardError": "journal",
}


def test_appliance_unit_is_hardened_with_device_access_through_groups() -> None:
    unit = parse_unit((UNITS / "clinicam-appliance.service").read_text())
    for key, value in HARDENING.items():
        assert one(unit, "Service", key) == value, key
    assert one(unit, "Service", "User") == "clinicam"
    assert one(unit, "Service", "Group") == "clinicam"
    assert one(unit, "Service", "SupplementaryGroups").split() == ["video", "i2c", "gpio"]
    assert one(unit, "Service", "ReadWritePaths") == "/var/lib/clinicam"
    assert one(unit, "Service", "PrivateDevices") == "no"
    allowed = {v.split()[0] for v in unit["Service"]["DeviceAllow"]}
    assert allowed == {
        "char-video4linux",
        "char-media",
        "char-dma_heap",
        "char-i2c",
        "char-gpiochip",
        "char-vchiq",
    }
    assert one(unit, "Service", "ExecStart") == (
        f"{PROGRAM} appliance run --config /etc/clinicam/appliance.toml"
    )
    env = unit["Service"]["Environment"]
    assert "CLINICAM_APPLIANCE__STATE_DIR=/var/lib/clinicam" in env
    assert "CLINICAM_HEALTH_FILE=/run/clinicam/health.json" in env
    assert one(unit, "Service", "RuntimeDirectory") == "clinicam"
    assert "network-online.target" in one(unit, "Unit", "Wants")
    assert one(unit, "Unit", "After").split() == [
        "network-online.target",
        "clinicam-provision.service",
    ]
    assert one(unit, "Unit", "StartLimitBurst") and one(unit, "Unit", "StartLimitIntervalSec")


def test_server_unit_is_hardened_without_devices() -> None:
    unit = parse_unit((UNITS / "clinicam-server.service").read_text())
    for key, value in HARDENING.items():
        assert one(unit, "Service", key) == value, key
    assert one(unit, "Service", "User") == "clinicam-server"
    assert one(unit, "Service", "ReadWritePaths") == "/var/lib/clinicam-server"
    assert one(unit, "Service", "PrivateDevices") == "yes"
    assert "DeviceAllow" not in unit["Service"]
    assert "SupplementaryGroups" not in unit["Service"]
    assert one(unit, "Service", "ExecStart") == (
        f"{PROGRAM} server --config /etc/clinicam/server.toml"
    )
    assert "CLINICAM_SERVER__STATE_DIR=/var/lib/clinicam-server" in unit["Service"]["Environment"]


@pytest.mark.parametrize("name", ["clinicam-appliance.service", "clinicam-server.service"])
def test_exposure_level_is_low(tmp_path: Path, name: str) -> None:
    """``systemd-analyze security`` rates the sandbox (0 = locked down, 10 = exposed)."""
    verify(tmp_path, name)  # writes the copy with a stub ExecStart
    assert ANALYZE is not None
    result = subprocess.run(
        [ANALYZE, "security", "--offline=yes", "--no-pager", str(tmp_path / name)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    found = re.search(r"Overall exposure level for \S+: ([0-9.]+)", result.stdout)
    assert found is not None, f"systemd-analyze gave no rating: {result.stderr[:300]}"
    assert float(found.group(1)) <= 3.0, result.stdout


# --- the mosquitto drop-in ----------------------------------------------------------

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Hub:
    plain_port: int
    tls_port: int
    ca: Path


def _free_ports(count: int) -> list[int]:
    ports: set[int] = set()
    while len(ports) < count:
        ports.add(procs.free_port(HOST))
    return sorted(ports)


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    """mosquitto with the shipped drop-in under a minimal main config, paths and ports
    moved into ``tmp_path`` (the drop-in itself is otherwise unchanged)."""
    etc = tmp_path / "clinicam"
    (etc / "tls").mkdir(parents=True)
    users = [BrokerUser("server", "server-pw", is_server=True), BrokerUser("cam-a", "cam-a-pw")]
    users.append(BrokerUser("cam-b", "cam-b-pw"))
    write_password_file(etc / "passwd", users)
    (etc / "acl").write_text(acl_text(users))
    key, cert = etc / "tls" / "server.key", etc / "tls" / "server.crt"
    openssl = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
    subject = ["-subj", "/CN=localhost", "-addext", f"subjectAltName=IP:{HOST}"]
    subprocess.run(
        [*openssl, "-keyout", str(key), "-out", str(cert), *subject],
        check=True,
        capture_output=True,
    )
    plain, tls = _free_ports(2)
    text = (UNITS / "mosquitto-clinicam.conf").read_text()
    for old, new in (
        ("/etc/mosquitto/clinicam/", f"{etc}/"),
        ("listener 1883 127.0.0.1\n", f"listener {plain} {HOST}\n"),
        ("listener 8883\n", f"listener {tls} {HOST}\n"),
    ):
        assert old in text, old
        text = text.replace(old, new)
    conf_d = tmp_path / "conf.d"
    conf_d.mkdir()
    (conf_d / "clinicam.conf").write_text(text)
    main = tmp_path / "mosquitto.conf"  # like Debian's, minus the system paths
    main.write_text(
        f"user {getpass.getuser()}\npersistence false\nlog_dest stderr\ninclude_dir {conf_d}\n"
    )
    proc = procs.spawn([find_mosquitto(), "-c", str(main)])
    try:
        procs.wait_for_port(HOST, plain, 10.0, proc)
        procs.wait_for_port(HOST, tls, 10.0, proc)
        yield Hub(plain, tls, cert)
    finally:
        procs.stop(proc, "mosquitto")


class Client:
    """A paho MQTT 5 client that records what the broker answered."""

    def __init__(self, username: str | None = None, password: str = "", ca: Path | None = None):
        self.mqtt = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        if username is not None:
            self.mqtt.username_pw_set(username, password)
        if ca is not None:
            self.mqtt.tls_set(ca_certs=str(ca))
        self.answered = threading.Event()
        self.reason: Any = None
        self.messages: list[str] = []
        self.got = threading.Event()
        self.mqtt.on_connect = self._on_connect
        self.mqtt.on_disconnect = lambda *args: self.answered.set()
        self.mqtt.on_message = self._on_message

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self.reason = reason
        self.answered.set()

    def _on_message(self, client: Any, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        self.messages.append(msg.topic)
        self.got.set()

    def connect(self, port: int) -> bool:
        """True if the broker accepted the connection."""
        self.mqtt.connect(HOST, port)
        self.mqtt.loop_start()
        self.answered.wait(5.0)
        return self.reason is not None and not self.reason.is_failure

    def close(self) -> None:
        self.mqtt.disconnect()
        self.mqtt.loop_stop()


def test_mosquitto_dropin_refuses_anonymous_and_accepts_users(hub: Hub) -> None:
    for username, password, port, ca, accepted in (
        ("server", "server-pw", hub.plain_port, None, True),
        ("cam-a", "cam-a-pw", hub.tls_port, hub.ca, True),
        (None, "", hub.plain_port, None, False),  # anonymous
        (None, "", hub.tls_port, hub.ca, False),
        ("cam-a", "wrong", hub.tls_port, hub.ca, False),
        ("cam-a", "cam-a-pw", hub.tls_port, None, False),  # plain MQTT on the TLS port
    ):
        client = Client(username, password, ca)
        try:
            assert client.connect(port) is accepted, (username, port, client.reason)
        finally:
            client.close()


def test_mosquitto_dropin_applies_the_device_acl(hub: Hub) -> None:
    """cam-a reads its own command topic, not cam-b's."""
    device, server = Client("cam-a", "cam-a-pw", hub.ca), Client("server", "server-pw")
    try:
        assert device.connect(hub.tls_port) and server.connect(hub.plain_port)
        done = threading.Event()
        device.mqtt.on_subscribe = lambda *args: done.set()
        device.mqtt.subscribe([("clinicam/cam-b/cmd", 1), ("clinicam/cam-a/cmd", 1)])
        assert done.wait(5.0)
        server.mqtt.publish("clinicam/cam-b/cmd", b"{}", qos=1).wait_for_publish(5.0)
        server.mqtt.publish("clinicam/cam-a/cmd", b"{}", qos=1).wait_for_publish(5.0)
        assert device.got.wait(5.0)
        assert device.messages == ["clinicam/cam-a/cmd"]  # cam-b's went first, never came
    finally:
        device.close()
        server.close()


def test_readme_acl_is_the_one_clinicam_generates() -> None:
    readme = (UNITS / "README.md").read_text()
    assert acl_text([BrokerUser("server", "", is_server=True)]) in readme


def test_the_kiosk_unit_verifies_and_starts_the_station_page_before_chromium(
    tmp_path: Path,
) -> None:
    """systemd accepts the kiosk unit; it writes the start page, then runs Chromium in cage."""
    text = (UNITS / "clinicam-kiosk.service").read_text()
    unit = parse_unit(text)
    assert one(unit, "Service", "ExecStartPre") == (
        f"{PROGRAM} appliance kiosk-page --config /etc/clinicam/appliance.toml "
        "--output /run/clinicam-kiosk/start.html"
    )
    start = one(unit, "Service", "ExecStart")
    assert "/usr/bin/cage -s --" in start and "file:///run/clinicam-kiosk/start.html" in start
    assert "--kiosk" in start and "--use-fake-ui-for-media-stream" in start
    assert one(unit, "Service", "User") == "clinicam"
    assert one(unit, "Service", "Restart") == "always"
    assert "/usr/bin/cage" in unit["Unit"]["ConditionPathExists"]  # inert without cage
    result = verify(tmp_path, "clinicam-kiosk.service")
    assert result.returncode == 0, result.stderr
    assert not re.search(r"unknown|ignoring|invalid", result.stderr, re.I), result.stderr

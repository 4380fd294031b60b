"""Issue 19's enrolment test: the bundle from /admin provisions a simulated appliance that
then streams.

The demo runs (mosquitto, server, appliance-1, each its own process). An admin enrols a
new appliance over the API; its ``clinicam.toml`` goes onto a boot folder and
``clinicam appliance provision`` applies it to a root folder whose appliance.toml is
what an SD-card image would hold (simulated hardware). The appliance started from the
result comes online over MQTT with the bundle's broker account and streams to the
server, which was not restarted; appliance-1 keeps streaming. Revoked, it is cut off.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import tomllib
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from clinicam import tomlwrite
from tests.helpers import http_json, start_demo, stop_demo, wait_until

pytestmark = pytest.mark.e2e

PASSWORD = "enrol an appliance"


class Admin:
    """The demo's admin speaking HTTP (cookie and CSRF token sent by hand: the demo's
    cookies are Secure, which browsers honour on localhost and urllib does not)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.csrf = self.cookie = ""
        status, body = self.post("/api/login", {"username": "admin", "password": PASSWORD})
        assert status == 200, body
        self.csrf = body["csrf"]

    def post(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        request = urllib.request.Request(
            self.url + path,
            data=json.dumps(body).encode(),
            headers={
                "Content-Type": "application/json",
                "X-CSRF-Token": self.csrf,
                "Cookie": self.cookie,
            },
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as resp:
                if "Set-Cookie" in resp.headers:
                    self.cookie = resp.headers["Set-Cookie"].split(";", 1)[0]
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")


def _appliance(health_url: str, device: str) -> dict[str, Any] | None:
    found: dict[str, Any] | None = http_json(health_url)["appliances"].get(device)
    return found


def _token_refused(url: str, device: str, token: str) -> bool:
    request = urllib.request.Request(
        f"{url}/api/appliances/{device}/stream/any", headers={"Authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10):
            return False
    except urllib.error.HTTPError as exc:
        return exc.code == 401


def _broker_accepts(port: int, username: str, password: str) -> bool:
    answered = threading.Event()
    result: list[bool] = []

    def on_connect(client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        result.append(not reason.is_failure)
        answered.set()

    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.username_pw_set(username, password)
    client.on_connect = on_connect
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        answered.wait(5.0)
        return result == [True]
    finally:
        client.disconnect()
        client.loop_stop()


def test_the_bundle_provisions_a_simulated_appliance_that_streams(tmp_path: Path) -> None:
    state = tmp_path / "state"
    proc, info = start_demo(state, PASSWORD)
    appliance: subprocess.Popen[bytes] | None = None
    health = info["url"] + "/healthz"
    try:
        admin = Admin(info["url"])
        status, enrolled = admin.post(
            "/api/admin/appliances", {"name": "Ward 3", "clinic": "Hill Clinic", "room": "R2"}
        )
        assert status == 201, enrolled
        assert enrolled["broker"]["state"] == "updated", enrolled
        device = enrolled["device_id"]
        assert device == "ward-3"

        # The SD card: the bundle on the boot partition, an image's appliance.toml in /etc.
        boot, root = tmp_path / "boot", tmp_path / "root"
        boot.mkdir()
        (boot / enrolled["filename"]).write_text(enrolled["bundle"])
        image = {
            "backend": "sim",
            "state_dir": str(tmp_path / "appliance-state"),
            "ice": {"loopback_only": True},
            "sim": {"register_file": str(tmp_path / "pca9685-ward.bin")},
        }
        etc = root / "etc" / "clinicam"
        etc.mkdir(parents=True)
        (etc / "appliance.toml").write_text(tomlwrite.dumps(image))
        cli = [sys.executable, "-m", "clinicam_app", "appliance"]
        provisioned = subprocess.run(
            [*cli, "provision", "--boot", str(boot), "--root", str(root)],
            capture_output=True,
            timeout=120,
        )
        assert provisioned.returncode == 0, provisioned.stdout + provisioned.stderr
        assert not (boot / "clinicam.toml").exists()  # the secrets left the card
        config = etc / "appliance.toml"
        assert tomllib.loads(config.read_text())["device_id"] == device

        log = (tmp_path / "appliance.log").open("wb")
        appliance = subprocess.Popen(
            [*cli, "--config", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

        def streams() -> bool:
            assert appliance is not None and appliance.poll() is None, "the appliance exited"
            found = _appliance(health, device)
            return bool(found and found["online"] and found["streaming"] and found["frames"])

        wait_until(streams, 120, "the enrolled appliance to come online and stream")
        first = _appliance(health, "appliance-1")
        assert first is not None and first["online"] and first["streaming"]

        status, revoked = admin.post(f"/api/admin/appliances/{device}/revoke", {})
        assert status == 200 and revoked["broker"]["state"] == "updated", revoked
        assert _appliance(health, device) is None  # off the directory at once
        bundle = tomllib.loads(enrolled["bundle"])
        assert _token_refused(info["url"], device, bundle["server"]["token"])
        mqtt = bundle["mqtt"]
        wait_until(
            lambda: not _broker_accepts(mqtt["port"], mqtt["username"], mqtt["password"]),
            30,
            "the broker to refuse the revoked appliance",
        )
        first = _appliance(health, "appliance-1")
        assert first is not None and first["online"] and first["streaming"]
    finally:
        if appliance is not None and appliance.poll() is None:
            os.killpg(appliance.pid, signal.SIGTERM)
            appliance.wait(timeout=30)
        stop_demo(proc, whole_group=True)

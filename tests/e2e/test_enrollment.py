"""Issue 19's enrolment test: the bundle from /admin provisions a simulated appliance that
then streams.

The demo runs (mosquitto, server, appliance-1, each its own process). An admin enrols a
new appliance on /admin in Chromium and downloads its ``clinicam.toml`` onto a boot
folder;
``clinicam appliance provision`` applies it to a root folder whose appliance.toml is
what an SD-card image would hold (simulated hardware). The appliance started from the
result comes online over MQTT with the bundle's broker account and streams to the
server, which was not restarted; appliance-1 keeps streaming. Revoked, it is cut off.
"""

from __future__ import annotations

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
TIMEOUT_MS = 30_000


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


def _admin_page(browser: Any, url: str) -> Any:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.goto(url + "/login")
    page.fill("#username", "admin")
    page.fill("#password", PASSWORD)
    page.click("#login-button")
    page.wait_for_url(url + "/")
    page.goto(url + "/admin")
    page.wait_for_selector("#enrolment", state="visible")
    return page


def test_the_bundle_provisions_a_simulated_appliance_that_streams(
    tmp_path: Path, browser: Any, demo_database: tuple[str, ...]
) -> None:
    state = tmp_path / "state"
    proc, info = start_demo(state, PASSWORD, *demo_database)
    appliance: subprocess.Popen[bytes] | None = None
    health = info["url"] + "/healthz"
    boot, root = tmp_path / "boot", tmp_path / "root"
    boot.mkdir()
    try:
        page = _admin_page(browser, info["url"])
        page.fill("#enrol-name", "Ward 3")
        page.fill("#enrol-clinic", "Hill Clinic")
        page.fill("#enrol-room", "R2")
        page.click("#enrol-start")
        page.wait_for_selector("#bundle-box", state="visible")
        assert "bad" not in (page.get_attribute("#bundle-broker", "class") or "")
        with page.expect_download() as download:
            page.click("#bundle-download")
        assert download.value.suggested_filename == "clinicam.toml"
        download.value.save_as(boot / "clinicam.toml")
        bundle = tomllib.loads((boot / "clinicam.toml").read_text())
        device = bundle["device"]["id"]
        assert device == "ward-3"
        assert bundle["server"]["token"] in page.inner_text("#bundle-text")  # shown, once
        row = f'#enrolled tr[data-device="{device}"]'
        page.wait_for_selector(row)
        page.click("#bundle-done")
        assert page.inner_text("#bundle-text") == ""  # the secrets left the page

        # The SD card: the bundle on the boot partition, an image's appliance.toml in /etc.
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

        page.wait_for_selector(f"{row} .good", timeout=30_000)  # shown online there too

        page.on("dialog", lambda dialog: dialog.accept())
        page.click(f"{row} button.revoke")
        page.wait_for_selector(row, state="detached")
        assert _appliance(health, device) is None  # off the directory at once
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

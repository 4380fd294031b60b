"""The demo supervises mosquitto like the server and the appliance (issue 15, class 10):
killed, it comes back on the same port, the server and the appliance reconnect by
themselves and the camera obeys again; the demo keeps running."""

from __future__ import annotations

import json
import os
import signal
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.helpers import http_json, pid_alive, start_demo, stop_demo, wait_until

PASSWORD = "broker restart"


class Expert:
    """A logged-in expert speaking HTTP to the demo (cookie + CSRF token)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.csrf = self.cookie = ""  # a Secure cookie: browsers send it to localhost only
        status, body = self.post("/api/login", {"username": "demo", "password": PASSWORD})
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
            with urllib.request.urlopen(request, timeout=20) as resp:
                if "Set-Cookie" in resp.headers:
                    self.cookie = resp.headers["Set-Cookie"].split(";", 1)[0]
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")


def test_a_killed_broker_is_restarted_and_everyone_reconnects(tmp_path: Path) -> None:
    state = tmp_path / "state"
    proc, info = start_demo(state, PASSWORD)
    try:
        expert = Expert(info["url"])
        camera = "/api/consultations/demo-consultation/camera"
        assert expert.post(camera, {"op": "ptz.relative", "pan": 5})[0] == 200
        old = info["pids"]["mosquitto"]
        os.kill(old, signal.SIGKILL)

        def restarted() -> bool:
            pids = json.loads((state / "demo.json").read_text())["pids"]
            return bool(pids["mosquitto"] != old and pid_alive(pids["mosquitto"]))

        wait_until(restarted, 30, "the demo to restart mosquitto")
        assert proc.poll() is None  # the demo kept running
        assert json.loads((state / "demo.json").read_text())["mqtt_port"] == info["mqtt_port"]

        def reconnected() -> bool:
            health = http_json(info["url"] + "/healthz")
            return bool(health["mqtt"] and health["appliances"]["appliance-1"]["online"])

        wait_until(reconnected, 60, "the server and the appliance to reconnect")
        status, ack = expert.post(camera, {"op": "ptz.relative", "pan": -5})
        assert status == 200 and ack["ok"], ack  # the appliance obeys again
    finally:
        stop_demo(proc, whole_group=True)

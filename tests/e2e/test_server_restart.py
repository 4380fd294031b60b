"""The server crashes mid-consultation: the page says so, reconnects by itself, and the
expert stays logged in; the appliance re-dials and the live video comes back."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from tests.helpers import http_json, pid_alive, start_demo, stop_demo, wait_until

pytestmark = pytest.mark.e2e

PASSWORD = "restart me"
FRAMES_JS = "() => document.getElementById('live').getVideoPlaybackQuality().totalVideoFrames"


def test_page_and_appliance_reconnect_after_a_server_crash(tmp_path: Path, browser: Any) -> None:
    proc, info = start_demo(tmp_path / "state", PASSWORD)
    page = browser.new_page()
    try:
        page.goto(info["url"] + "/login?next=/room/demo-consultation")
        page.fill("#username", "demo")
        page.fill("#password", PASSWORD)
        page.click("#login-button")
        page.wait_for_url(lambda url: urlparse(url).path == "/room/demo-consultation")
        page.wait_for_function(f"() => ({FRAMES_JS})() > 5", timeout=30_000)

        old_server = info["pids"]["server"]
        os.kill(old_server, signal.SIGKILL)
        page.wait_for_function(
            "() => /reconnect/i.test(document.getElementById('connection').textContent)",
            timeout=15_000,
        )  # the expert is told what is happening

        def restarted() -> bool:
            pids = json.loads((tmp_path / "state" / "demo.json").read_text())["pids"]
            return bool(pids["server"] != old_server and pid_alive(pids["server"]))

        wait_until(restarted, 20, "the demo to restart the server")
        assert not pid_alive(old_server)
        # the page comes back on its own: same room, still logged in, video flowing again
        page.wait_for_function(
            "() => document.getElementById('connection').textContent === '' && "
            "typeof room !== 'undefined' && room !== null",
            timeout=45_000,
        )
        assert "/room/" in page.url
        before = page.evaluate(FRAMES_JS)
        page.wait_for_function(f"() => ({FRAMES_JS})() > {before + 15}", timeout=30_000)
        # and the picture is the live patient again, not the waiting card
        wait_until(
            lambda: http_json(info["url"] + "/healthz")["appliances"]["appliance-1"]["streaming"],
            30,
            "the appliance to stream to the new server",
        )
    finally:
        page.close()
        stop_demo(proc, whole_group=True)

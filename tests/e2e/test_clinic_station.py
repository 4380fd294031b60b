"""The clinic station in Chromium, started as the appliance's kiosk unit starts it:
``clinicam appliance kiosk-page`` writes the start page from the appliance's own
configuration and Chromium opens it with the unit's flags. The station waits, joins when
an expert is in the room, shows the experts' composite, and the expert's room says the
station is there."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.clinicam.test_units import UNITS
from tests.e2e.test_conference import Expert, _y4m
from tests.helpers import CHROMIUM, CHROMIUM_ARGS, PC_CONNECTED, start_demo, stop_demo

pytestmark = pytest.mark.e2e

PASSWORD = "three experts in a room"
KIOSK_FLAGS = ("--autoplay-policy=no-user-gesture-required", "--use-fake-ui-for-media-stream")
STATUS_JS = "() => document.getElementById('status').textContent"
PIXEL_JS = """() => {
  const v = document.getElementById('experts');
  if (!v.videoWidth) return null;
  const c = document.createElement('canvas');
  c.width = v.videoWidth; c.height = v.videoHeight;
  const g = c.getContext('2d');
  g.drawImage(v, 0, 0);
  const x = Math.floor(v.videoWidth * 0.3), y = Math.floor(v.videoHeight * 0.3);
  return Array.from(g.getImageData(x, y, 1, 1).data.slice(0, 3));
}"""
# The top-right corner of the main window (2/3 of a 1280×720 frame): the state badges.
BADGE_JS = PIXEL_JS.replace("v.videoWidth * 0.3", "v.videoWidth * 836 / 1280").replace(
    "v.videoHeight * 0.3", "v.videoHeight * 24 / 720"
)


@pytest.fixture()
def demo(tmp_path: Path) -> Iterator[dict[str, Any]]:
    proc, info = start_demo(tmp_path / "state", PASSWORD)
    try:
        yield info
    finally:
        if proc.poll() is None:
            stop_demo(proc, whole_group=True)


def test_the_station_waits_then_joins_and_the_expert_sees_it(
    demo: dict[str, Any], tmp_path: Path
) -> None:
    from playwright.sync_api import sync_playwright

    page = tmp_path / "start.html"
    config = Path(demo["state_dir"]) / "clinicam-appliance.toml"
    made = subprocess.run(
        [
            sys.executable,
            "-m",
            "clinicam_app",
            "appliance",
            "kiosk-page",
            "--config",
            str(config),
            "--output",
            str(page),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    assert stat.S_IMODE(page.stat().st_mode) == 0o600, "the token is the device's secret"
    unit = (UNITS / "clinicam-kiosk.service").read_text()
    flags = [f for f in KIOSK_FLAGS if f in unit]
    assert flags == list(KIOSK_FLAGS), "the test runs Chromium as the unit does"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, *flags])
        station = browser.new_page()
        station.goto(page.as_uri())
        station.wait_for_function(
            "() => document.getElementById('status').textContent.includes('Waiting')",
            timeout=20_000,
        )
        assert "token" not in station.url, "the token leaves the address bar"

        expert = Expert(pw, "demo", _y4m(tmp_path / "green.y4m", (0, 200, 0)), demo["url"])
        expert.open()
        station.wait_for_function(
            "() => document.getElementById('experts').videoWidth > 0", timeout=30_000
        )
        # The main window is the (only) expert: the green webcam fills its part of the frame.
        station.wait_for_function(
            f"() => {{ const p = ({PIXEL_JS})(); return p && p[1] > 150 && p[0] < 90; }}",
            timeout=30_000,
        )
        # The archive records the patient camera: the red "Recording" badge says so.
        station.wait_for_function(
            f"() => {{ const p = ({BADGE_JS})(); return p && p[0] > 150 && p[1] < 90; }}",
            timeout=30_000,
        )
        expert.page.wait_for_function(
            "() => document.getElementById('station-status').textContent"
            ".startsWith('Clinic station: connected')",
            timeout=20_000,
        )
        station.click("#mute")
        expert.page.wait_for_function(
            "() => document.getElementById('station-status').textContent.includes('muted')",
            timeout=20_000,
        )
        expert.browser.close()  # the expert leaves: the station waits again
        station.wait_for_function(
            "() => document.getElementById('status').textContent.includes('Waiting')",
            timeout=30_000,
        )
        browser.close()


def test_the_station_rejoins_by_itself_after_the_server_dies(
    demo: dict[str, Any], tmp_path: Path
) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        station = browser.new_page()
        station.goto(demo["station"])
        expert = Expert(pw, "demo", _y4m(tmp_path / "red.y4m", (255, 0, 0)), demo["url"])
        expert.open()
        station.wait_for_function(
            "() => document.getElementById('experts').videoWidth > 0", timeout=30_000
        )
        station.evaluate("() => { window.firstCall = pc; }")
        os.kill(demo["pids"]["server"], signal.SIGKILL)  # the demo restarts it, as systemd would
        station.wait_for_function(  # back, by itself: a new call, the picture, no message
            f"() => {PC_CONNECTED} && pc !== window.firstCall "
            "&& document.getElementById('experts').videoWidth > 0 "
            "&& document.getElementById('status').textContent === ''",
            timeout=90_000,
        )
        expert.browser.close()
        browser.close()


def test_a_tablet_signed_in_as_clinic_staff_runs_the_station(
    demo: dict[str, Any], tmp_path: Path
) -> None:
    """No token on a tablet: the nurse signs in, opens her clinic's station from the lobby,
    and it joins when an expert comes, as the kiosk does."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        tablet = browser.new_page()
        tablet.goto(demo["url"] + "/station/appliance-1")
        tablet.wait_for_function("() => !document.getElementById('signin').hidden", timeout=20_000)
        tablet.click("#signin")
        tablet.fill("#username", "nurse")
        tablet.fill("#password", PASSWORD)
        tablet.click("#login-button")
        tablet.wait_for_url("**/station/appliance-1")
        tablet.wait_for_function(
            "() => document.getElementById('status').textContent.includes('Waiting')",
            timeout=20_000,
        )
        tablet.goto(demo["url"] + "/")  # the lobby lists her clinic's station
        link = tablet.locator("a.join")
        link.wait_for(timeout=20_000)
        assert link.count() == 1 and link.get_attribute("href") == "/station/appliance-1"
        link.click()
        expert = Expert(pw, "demo", _y4m(tmp_path / "green.y4m", (0, 200, 0)), demo["url"])
        expert.open()
        tablet.wait_for_function(
            f"() => {{ const p = ({PIXEL_JS})(); return p && p[1] > 150 && p[0] < 90; }}",
            timeout=30_000,
        )
        tablet.click("#attention")  # a state change with the session's CSRF token
        expert.page.wait_for_function(
            "() => !document.getElementById('attention').hidden", timeout=20_000
        )
        expert.browser.close()
        browser.close()

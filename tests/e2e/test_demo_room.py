"""The README's main promise: run the demo, log in, see the patient, steer the camera.

Everything is real except the hardware: mosquitto, the server and the simulated
appliance run as separate processes (started by ``clinicam demo``), Chromium talks
WebRTC to the server, and the servo registers are written by adafruit's servokit.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from firmware.hardware.pca9685_sim import pulse_us
from tests.helpers import (
    PC_CONNECTED,
    image_shift,
    join_demo_room,
    pid_alive,
    running_demo,
    start_demo,
    stop_demo,
    wait_until,
)

pytestmark = pytest.mark.e2e

PASSWORD = "correct horse battery"
PAN_CHANNEL = 0

GRAB_JS = """([x, y, w, h]) => {
  const v = document.getElementById('live');
  const c = document.createElement('canvas');
  c.width = 320; c.height = 180;
  const g = c.getContext('2d');
  g.drawImage(v, x, y, w, h, 0, 0, c.width, c.height);
  const d = g.getImageData(0, 0, c.width, c.height).data;
  const out = new Array(c.width * c.height);
  for (let i = 0; i < out.length; i++)
    out[i] = (d[4*i] * 299 + d[4*i+1] * 587 + d[4*i+2] * 114) / 1000;
  return out;
}"""


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    state = tmp_path_factory.mktemp("demo") / "state"
    with running_demo(state, PASSWORD) as info:
        yield info


def _live_tile(page: Any) -> list[int]:
    """(x, y, w, h) of the patient's live view in the composite (the main window)."""
    tiles = {t[0]: t[1:] for t in page.evaluate("() => room.tiles")}
    return list(tiles["live"])


def _grab(page: Any) -> np.ndarray:
    """The live view's tile, scaled to 320×180 grey levels."""
    return np.array(page.evaluate(GRAB_JS, _live_tile(page)), dtype=np.float64).reshape(180, 320)


def _pan_pulse(info: dict[str, Any]) -> float | None:
    return pulse_us(Path(info["register_file"]).read_bytes(), PAN_CHANNEL)


def test_expert_sees_live_video_and_pans_the_camera(demo: dict[str, Any], browser: Any) -> None:
    page = browser.new_page()
    try:
        page.goto(demo["url"])
        assert "/login" in page.url  # not logged in: sent to the login page
        page.fill("#username", demo["username"])
        page.fill("#password", PASSWORD)
        page.click("#login-button")
        page.click("a.join")
        page.wait_for_url("**/room/**")

        # (a) the live video's frames advance
        page.wait_for_function(
            "() => { const v = document.getElementById('live');"
            " return v.readyState >= 2 && v.getVideoPlaybackQuality().totalVideoFrames > 5; }",
            timeout=30_000,
        )
        count = "() => document.getElementById('live').getVideoPlaybackQuality().totalVideoFrames"
        first = page.evaluate(count)
        time.sleep(1.5)
        assert page.evaluate(count) > first + 5
        page.wait_for_function("() => typeof room !== 'undefined' && room !== null")
        assert page.evaluate("() => room.labels.live") == "Patient — Demo Clinic"
        assert _live_tile(page)[:2] == [0, 0]  # the patient is the main window

        # idle servos are released (full-off), otherwise held at the centre (90°: 1500 µs)
        before_pulse = _pan_pulse(demo)
        assert before_pulse is None or abs(before_pulse - 1500) < 5
        time.sleep(0.5)
        before = _grab(page)

        # (b) "pan right" reaches the PCA9685 register through MQTT and servokit
        page.click("button[aria-label='pan right']")
        expected = 750 + 1500 * 95 / 180  # servo 95° with the default 750–2250 µs range
        wait_until(
            lambda: abs((_pan_pulse(demo) or 0) - expected) < 5,
            3,
            "the pan channel's PCA9685 register to reach 95°",
            step=0.005,
        )
        page.wait_for_function(
            "() => document.getElementById('camera-status').textContent.startsWith('Pan 5.0')"
        )

        # (c) the picture moves: panning right slides the scene left in the frame
        time.sleep(1.5)  # servo travel + a few frames through both encoders
        after = _grab(page)
        dx, dy = image_shift(before, after)
        print(f"measured picture shift dx={dx} dy={dy}")
        # 5° at 20 px/° in the scene, 1320 px of scene per 1280 px of stream; the whole
        # stream fills the live tile, which is grabbed at 320 px wide
        predicted = -5 * 20 * (1280 / 1320) * (320 / 1280)
        assert abs(dx - predicted) <= 4, (dx, dy)
        assert abs(dy) <= 2, (dx, dy)
    finally:
        page.close()


def test_camera_command_without_login_is_refused(demo: dict[str, Any], browser: Any) -> None:
    before = Path(demo["register_file"]).read_bytes()
    page = browser.new_page()
    try:
        resp = page.request.post(
            demo["url"] + "/api/consultations/demo-consultation/camera",
            data={"op": "ptz.relative", "pan": 90},
        )
        assert resp.status == 401
    finally:
        page.close()
    time.sleep(0.5)
    now = _pan_pulse(demo)
    assert now is None or now == pulse_us(before, PAN_CHANNEL)  # idle release is not a move


def test_the_room_and_the_station_speak_chinese(demo: dict[str, Any], browser: Any) -> None:
    """A browser that asks for Chinese gets the station and the room in Chinese; the
    kiosk's switch (a cookie, no user) changes it back and keeps the device's token."""
    kiosk = browser.new_context(locale="zh-CN")  # Accept-Language: zh-CN
    context = browser.new_context(locale="zh-CN")  # the expert's browser: another one
    try:
        station = kiosk.new_page()
        station.goto(demo["station"])
        station.wait_for_function(
            "() => document.getElementById('status').textContent === '正在等待会诊…'",
            timeout=30_000,
        )
        assert station.evaluate("() => document.documentElement.lang") == "zh-CN"
        assert station.inner_text("#mute") == "麦克风静音"
        assert station.inner_text("#attention") == "呼叫专家"

        page = context.new_page()
        join_demo_room(page, demo, PASSWORD)
        page.wait_for_function(
            "() => document.getElementById('control-holder').textContent"
            " === '您持有摄像头控制权。'",
            timeout=30_000,
        )
        right = page.locator(".pad button[data-pan='1']")
        assert right.get_attribute("aria-label") == "向右"
        assert right.get_attribute("title") == "向右转动（→）"
        assert page.locator(".pad").get_attribute("aria-label").startswith("云台转动")
        assert page.inner_text("#snapshot") == "拍照存入病历"
        assert page.inner_text("label[for='zoom']").startswith("变焦")
        assert page.locator("#language").input_value() == "zh-CN"
        # the pad still steers the camera, and answers in Chinese
        page.click("button[aria-label='向右']")
        page.wait_for_function(
            "() => document.getElementById('camera-status').textContent.startsWith('水平 ')",
            timeout=20_000,
        )

        # The station's switch: a tap, a reload in English, still the appliance's station
        station.select_option("#language", "en")
        station.wait_for_function(
            "() => document.documentElement.lang === 'en'"
            " && document.getElementById('mute').textContent === 'Mute microphone'",
            timeout=30_000,
        )
        station.wait_for_function(f"() => {PC_CONNECTED}", timeout=30_000)
        assert "token" not in station.url
    finally:
        context.close()
        kiosk.close()


def test_ctrl_c_stops_every_process(tmp_path: Path) -> None:
    proc, info = start_demo(tmp_path / "state", PASSWORD)
    pids = info["pids"]
    assert set(pids) == {"mosquitto", "server", "appliance"}
    assert all(pid_alive(pid) for pid in pids.values())
    assert stop_demo(proc, whole_group=False) == 0  # SIGINT to the demo process alone
    wait_until(
        lambda: not any(pid_alive(pid) for pid in pids.values()), 20, "every demo process to exit"
    )

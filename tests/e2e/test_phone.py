"""An expert follows the demo consultation from a phone (375×812, touch): the server sends
a portrait composite, the page never scrolls sideways, a tap on the pad moves the camera.
The clinic station's page fits a tablet either way round."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from firmware.hardware.pca9685_sim import pulse_us
from tests.helpers import join_demo_room, running_demo, wait_until

pytestmark = pytest.mark.e2e

PASSWORD = "a phone in the hand"
PAN_CHANNEL = 0
PHONE = {"viewport": {"width": 375, "height": 812}, "is_mobile": True, "has_touch": True}
NO_SIDEWAYS_SCROLL = "() => document.scrollingElement.scrollWidth <= window.innerWidth"
# Every visible button or control of the page that is smaller than a finger (44 CSS px).
SMALL_TARGETS = """(selector) => [...document.querySelectorAll(selector)]
  .filter((e) => e.offsetParent !== null)
  .map((e) => [e.id || e.getAttribute('aria-label') || e.textContent.trim(),
               e.getBoundingClientRect()])
  .filter(([, r]) => r.width < 44 || r.height < 44)
  .map(([name, r]) => `${name} ${Math.round(r.width)}x${Math.round(r.height)}`)"""


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    state = tmp_path_factory.mktemp("demo") / "state"
    with running_demo(state, PASSWORD) as info:
        yield info


def _pan_pulse(info: dict[str, Any]) -> float | None:
    return pulse_us(Path(info["register_file"]).read_bytes(), PAN_CHANNEL)


def test_a_phone_gets_a_portrait_composite_and_pans_by_touch(
    demo: dict[str, Any], browser: Any
) -> None:
    context = browser.new_context(**PHONE)
    page = context.new_page()
    try:
        join_demo_room(page, demo, PASSWORD, tap=True)
        page.wait_for_function(
            "() => { const v = document.getElementById('live');"
            " return v.readyState >= 2 && v.getVideoPlaybackQuality().totalVideoFrames > 5; }",
            timeout=30_000,
        )
        size = page.evaluate(
            "() => { const v = document.getElementById('live');"
            " return [v.videoWidth, v.videoHeight]; }"
        )
        assert size[0] < size[1], f"the phone gets a portrait composite, not {size}"
        page.wait_for_function("() => typeof room !== 'undefined' && room !== null")
        assert page.evaluate("() => room.size") == size  # the tiles its taps map onto
        box = page.locator("#live").bounding_box()
        assert box is not None and box["width"] >= 340 and box["height"] > box["width"]
        assert box["x"] >= 0 and box["x"] + box["width"] <= 375
        assert page.evaluate(NO_SIDEWAYS_SCROLL)
        assert page.evaluate(SMALL_TARGETS, ".pad button") == []

        before = _pan_pulse(demo)
        assert before is None or abs(before - 1500) < 5  # released, or held at the centre
        page.locator("button[aria-label='pan right']").scroll_into_view_if_needed()
        page.tap("button[aria-label='pan right']")
        expected = 750 + 1500 * 95 / 180  # one 5° step right of centre
        wait_until(
            lambda: abs((_pan_pulse(demo) or 0) - expected) < 5,
            5,
            "a tap on the pad to reach the pan servo",
            step=0.005,
        )
        page.wait_for_function(
            "() => document.getElementById('camera-status').textContent.startsWith('Pan 5.0')"
        )

        # A finger held on "pan left" moves the camera until it is lifted (pointer events
        # from a real touch sequence, not a mouse).
        pad = page.locator("button[aria-label='pan left']").bounding_box()
        assert pad is not None
        finger = {"x": pad["x"] + pad["width"] / 2, "y": pad["y"] + pad["height"] / 2}
        cdp = context.new_cdp_session(page)
        cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [finger]})
        wait_until(
            lambda: (_pan_pulse(demo) or 2250) < 1500 - 20,
            10,
            "the held finger to pan the camera left of centre",
            step=0.02,
        )
        cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
        time.sleep(1.0)  # the stop reaches the servo
        pulses = set()
        for _ in range(20):  # then it stays put (or is released, idle: None)
            pulses.add(_pan_pulse(demo))
            time.sleep(0.05)
        assert len(pulses - {None}) <= 1, f"lifting the finger stopped the move: {pulses}"

        # A tap on a window of the strip makes it the main window, on top at full width.
        tiles = {t[0]: t[1:] for t in page.evaluate("() => room.tiles")}
        x, y, w, h = tiles["presentation"]
        video = page.locator("#live")
        video.scroll_into_view_if_needed()
        shown = video.bounding_box()
        assert shown is not None
        scale = shown["width"] / size[0]  # the stage is 2:3 like the frame: no letterbox
        video.tap(position={"x": (x + w / 2) * scale, "y": (y + h / 2) * scale})
        page.wait_for_function("() => room.main === 'presentation'")
        assert page.evaluate("() => room.tiles[0]")[:4] == ["presentation", 0, 0, size[0]]
        assert page.evaluate(NO_SIDEWAYS_SCROLL)

        # The phone turned on its side: the page asks again, for a landscape composite.
        page.set_viewport_size({"width": 812, "height": 375})
        page.wait_for_function(
            "() => { const v = document.getElementById('live');"
            " return v.videoWidth > v.videoHeight && room.size[0] === v.videoWidth; }",
            timeout=30_000,
        )
        assert page.evaluate(NO_SIDEWAYS_SCROLL)
    finally:
        context.close()


@pytest.mark.parametrize("size", [(1024, 768), (768, 1024)])
def test_the_clinic_station_fits_a_tablet(
    demo: dict[str, Any], browser: Any, size: tuple[int, int]
) -> None:
    width, height = size
    context = browser.new_context(
        viewport={"width": width, "height": height}, is_mobile=True, has_touch=True
    )
    page = context.new_page()
    try:
        page.goto(demo["url"] + "/station/appliance-1")
        page.wait_for_selector("#mute")
        assert page.evaluate(NO_SIDEWAYS_SCROLL)
        assert page.evaluate(SMALL_TARGETS, ".station-controls .big") == []
        video = page.locator("#experts").bounding_box()
        assert video is not None and video["width"] >= 0.9 * width
        for control in ("#mute", "#privacy", "#attention", "#leave"):
            box = page.locator(control).bounding_box()
            assert box is not None, control
            assert box["y"] + box["height"] <= height, f"{control} is below the fold at {size}"
    finally:
        context.close()

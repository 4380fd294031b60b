"""Issue 22 in the browser: click the patient's picture to centre, drag a box to zoom.

The whole demo runs (mosquitto, server, simulated appliance); Chromium receives the
composite over WebRTC. The scene's magenta marker is found in the frames the page
receives (drawn from the video element into a canvas), clicked, and found again: its
position afterwards is measured in the picture, not taken from the angles sent.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

from tests.helpers import join_demo_room, running_demo
from tests.marker import Marker, find_marker

pytestmark = pytest.mark.e2e

PASSWORD = "correct horse battery"

# The composite as received, as RGB bytes (base64) of its intrinsic size.
GRAB_JS = """() => {
  const v = document.getElementById('live');
  const c = document.createElement('canvas');
  c.width = v.videoWidth; c.height = v.videoHeight;
  const g = c.getContext('2d');
  g.drawImage(v, 0, 0);
  const d = g.getImageData(0, 0, c.width, c.height).data;
  let s = '';
  for (let i = 0; i < d.length; i += 4)
    s += String.fromCharCode(d[i], d[i + 1], d[i + 2]);
  return [c.width, c.height, btoa(s)];
}"""


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    state = tmp_path_factory.mktemp("demo") / "state"
    with running_demo(state, PASSWORD) as info:
        yield info


class LiveView:
    """The page's live picture: where it is on screen and what it shows."""

    def __init__(self, page: Any) -> None:
        self.page = page

    def picture(self) -> tuple[float, float, float, float]:
        """(x, y, w, h) of the live picture in layout pixels (letterboxed in its tile)."""
        room = self.page.evaluate("() => room")
        _, tx, ty, tw, th = next(t for t in room["tiles"] if t[0] == "live")
        sw, sh = room.get("live_size") or (16, 9)
        scale = min(tw / sw, th / sh)
        w, h = sw * scale, sh * scale
        return tx + (tw - w) / 2, ty + (th - h) / 2, w, h

    def grab(self) -> tuple[np.ndarray, float]:
        """The live picture as received (RGB) and its aspect ratio."""
        width, height, data = self.page.evaluate(GRAB_JS)
        frame = np.frombuffer(base64.b64decode(data), np.uint8).reshape(height, width, 3)
        size = self.page.evaluate("() => room.size")
        kx, ky = width / size[0], height / size[1]
        x, y, w, h = self.picture()
        crop = frame[round(y * ky) : round((y + h) * ky), round(x * kx) : round((x + w) * kx)]
        return crop, w / h

    def marker(self) -> Marker:
        seen = find_marker(self.grab()[0])
        assert seen is not None, "the marker is not in the live picture"
        return seen

    def on_screen(self, fx: float, fy: float) -> tuple[float, float]:
        """Client coordinates of a point of the live picture (fractions)."""
        box = self.page.evaluate(
            "() => { const r = document.getElementById('live').getBoundingClientRect();"
            " const v = document.getElementById('live');"
            " return [r.left, r.top, r.width, r.height, v.videoWidth, v.videoHeight]; }"
        )
        left, top, bw, bh, vw, vh = box
        size = self.page.evaluate("() => room.size")
        scale = min(bw / vw, bh / vh)
        off_x, off_y = (bw - vw * scale) / 2, (bh - vh * scale) / 2
        x, y, w, h = self.picture()
        k = scale * vw / size[0]
        return left + off_x + (x + fx * w) * k, top + off_y + (y + fy * h) * k

    def settled(self, check: Callable[[Marker], bool], timeout: float = 15.0) -> Marker:
        """The marker once three grabs in a row agree (within 1 % of the width) and pass
        ``check`` (or the last one seen)."""
        deadline = time.monotonic() + timeout
        history: list[Marker] = []
        while time.monotonic() < deadline:
            seen = find_marker(self.grab()[0])
            if seen is not None:
                history.append(seen)
                last = history[-3:]
                steady = all(abs(m.x - seen.x) < 0.01 and abs(m.y - seen.y) < 0.01 for m in last)
                if len(last) == 3 and steady and all(check(m) for m in last):
                    return seen
            time.sleep(0.3)
        assert history, "the marker never showed"
        return history[-1]


def _join(browser: Any, demo: dict[str, Any]) -> Any:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    join_demo_room(page, demo, PASSWORD)
    page.wait_for_function(
        "() => { const v = document.getElementById('live');"
        " return v.readyState >= 2 && v.getVideoPlaybackQuality().totalVideoFrames > 5"
        " && typeof room !== 'undefined' && room !== null && room.floor.holder === room.you; }",
        timeout=30_000,
    )
    page.wait_for_function("() => !document.getElementById('aim-hint').hidden")
    return page


def test_click_centres_the_marker_and_a_box_around_it_fills_the_view(
    demo: dict[str, Any], browser: Any
) -> None:
    page = _join(browser, demo)
    try:
        view = LiveView(page)
        _, aspect = view.grab()
        start = view.settled(lambda m: True)
        assert start.off_centre_pct(aspect) > 20  # off to the side: there is work to do
        print(f"marker at ({start.x:.3f}, {start.y:.3f}) before the click")

        # (1) click on it: it comes to the centre, within 5 % of the frame's width
        page.mouse.click(*view.on_screen(start.x, start.y))
        page.wait_for_function(
            "() => document.getElementById('camera-status').textContent.startsWith('Pan')"
        )
        centred = view.settled(lambda m: m.off_centre_pct(aspect) < 5.0)
        print(f"after the click: {centred.off_centre_pct(aspect):.2f} % of the width off centre")
        assert centred.off_centre_pct(aspect) < 5.0

        # (2) drag a box around it: drawn while dragging, then it fills the view
        half_w, half_h = centred.width / 2, centred.height / 2
        x0, y0 = view.on_screen(centred.x - half_w, centred.y - half_h)
        x1, y1 = view.on_screen(centred.x + half_w, centred.y + half_h)
        page.mouse.move(x0, y0)
        page.mouse.down()
        page.mouse.move((x0 + x1) / 2, (y0 + y1) / 2, steps=4)
        assert page.locator(".aim-box").is_visible()  # the box follows the pointer
        page.mouse.move(x1, y1, steps=4)
        page.mouse.up()
        assert not page.locator(".aim-box").is_visible()
        filled = view.settled(lambda m: abs(m.height - 1.0) < 0.1)
        print(f"after the box: the marker is {filled.height:.3f} of the view's height")
        assert abs(filled.height - 1.0) < 0.1  # its height fills the 16:9 view
        assert filled.off_centre_pct(aspect) < 5.0
        assert float(page.input_value("#zoom")) > 5  # the pad's slider follows

        # (3) double click: back out to the whole picture
        page.mouse.dblclick(*view.on_screen(0.5, 0.5))
        out = view.settled(lambda m: m.height < 0.3)
        assert out.height == pytest.approx(2 * 3.0 / 41.0, rel=0.25)  # 6° of a 41° view
    finally:
        page.close()


PHONE = {"viewport": {"width": 375, "height": 812}, "is_mobile": True, "has_touch": True}


def test_on_a_phone_a_finger_draws_the_box_and_a_double_tap_backs_out(
    demo: dict[str, Any], browser: Any
) -> None:
    context = browser.new_context(**PHONE)
    page = context.new_page()
    try:
        join_demo_room(page, demo, PASSWORD, tap=True)
        page.wait_for_function(
            "() => { const v = document.getElementById('live');"
            " return v.readyState >= 2 && typeof room !== 'undefined' && room !== null"
            " && room.floor.holder === room.you && v.videoWidth < v.videoHeight; }",
            timeout=30_000,
        )
        # home, from the page's own API (the pad is below the video: scrolling there
        # would take the video off screen, where a phone's browser stops playing it)
        page.evaluate(
            "() => Api.call('POST', '/api/consultations/demo-consultation/camera',"
            " {op: 'ptz.home'})"
        )
        view = LiveView(page)
        _, aspect = view.grab()
        start = view.settled(lambda m: m.off_centre_pct(aspect) > 20)

        # a finger drags a box around the marker (a real touch sequence, not a mouse)
        x0, y0 = view.on_screen(start.x - start.width / 2, start.y - start.height / 2)
        x1, y1 = view.on_screen(start.x + start.width / 2, start.y + start.height / 2)
        cdp = context.new_cdp_session(page)
        touch = "Input.dispatchTouchEvent"
        cdp.send(touch, {"type": "touchStart", "touchPoints": [{"x": x0, "y": y0}]})
        for k in range(1, 6):
            point = {"x": x0 + (x1 - x0) * k / 5, "y": y0 + (y1 - y0) * k / 5}
            cdp.send(touch, {"type": "touchMove", "touchPoints": [point]})
        assert page.locator(".aim-box").is_visible()
        cdp.send(touch, {"type": "touchEnd", "touchPoints": []})
        filled = view.settled(lambda m: abs(m.height - 1.0) < 0.1)
        print(f"phone: after the box the marker is {filled.height:.3f} of the view's height")
        assert abs(filled.height - 1.0) < 0.1
        assert filled.off_centre_pct(aspect) < 5.0

        # a double tap backs out
        centre = view.on_screen(0.5, 0.5)
        page.touchscreen.tap(*centre)
        page.touchscreen.tap(*centre)
        out = view.settled(lambda m: m.height < 0.3)
        assert out.height == pytest.approx(2 * 3.0 / 41.0, rel=0.25)
    finally:
        context.close()

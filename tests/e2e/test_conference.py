"""Three experts, one patient: composites, main-window choice and floor control, for real.

Each expert is a separate headless Chromium whose fake webcam plays a solid-colour
y4m file, so every expert's tile in every composite can be checked by its colour.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from firmware.hardware.pca9685_sim import pulse_us
from tests.helpers import CHROMIUM, CHROMIUM_ARGS, start_demo, stop_demo, wait_until

pytestmark = pytest.mark.e2e

PASSWORD = "three experts in a room"
EXPERTS = ["demo", "expert2", "expert3"]  # demo is the chair
COLOURS = {"demo": (255, 0, 0), "expert2": (0, 200, 0), "expert3": (0, 0, 255)}

SAMPLE_JS = """(points) => {
  const v = document.getElementById('live');
  const c = document.createElement('canvas');
  c.width = v.videoWidth; c.height = v.videoHeight;
  const g = c.getContext('2d');
  g.drawImage(v, 0, 0);
  // Tiles are in the layout's size; a viewer on a slower link gets a smaller picture.
  const sx = v.videoWidth / room.size[0], sy = v.videoHeight / room.size[1];
  return points.map(([x, y]) =>
    Array.from(g.getImageData(Math.floor(x * sx), Math.floor(y * sy), 1, 1).data.slice(0, 3)));
}"""
FRAMES_JS = "() => document.getElementById('live').getVideoPlaybackQuality().totalVideoFrames"


def _y4m(path: Path, rgb: tuple[int, int, int]) -> Path:
    r, g, b = rgb
    y = round(0.257 * r + 0.504 * g + 0.098 * b + 16)
    u = round(-0.148 * r - 0.291 * g + 0.439 * b + 128)
    v = round(0.439 * r - 0.368 * g - 0.071 * b + 128)
    w, h = 640, 480
    frame = (
        b"FRAME\n" + bytes([y]) * (w * h) + bytes([u]) * (w * h // 4) + bytes([v]) * (w * h // 4)
    )
    path.write_bytes(f"YUV4MPEG2 W{w} H{h} F15:1 Ip A1:1 C420jpeg\n".encode() + frame * 15)
    return path


class Expert:
    """One expert's browser, logged in and in the room."""

    def __init__(self, pw: Any, user: str, webcam: Path, url: str) -> None:
        self.user = user
        self._pw = pw
        self._webcam = webcam
        self.url = url
        self.browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=[*CHROMIUM_ARGS, f"--use-file-for-fake-video-capture={webcam}"],
        )
        self.page: Any = None

    def open(self) -> None:
        self.page = self.browser.new_page()
        self.page.goto(self.url + "/login?next=/room/demo-consultation")
        self.page.fill("#username", self.user)
        self.page.fill("#password", PASSWORD)
        self.page.click("#login-button")
        self.page.wait_for_url(lambda url: urlparse(url).path == "/room/demo-consultation")
        self.page.wait_for_function(
            "() => typeof room !== 'undefined' && room !== null && "
            "document.getElementById('live').videoWidth > 0 && "
            "document.getElementById('live').getVideoPlaybackQuality().totalVideoFrames > 3",
            timeout=60_000,
        )

    def close_page(self) -> None:
        self.page.close()

    def room(self) -> dict[str, Any]:
        return dict(self.page.evaluate("() => room"))

    def tiles(self) -> dict[str, tuple[int, int, int, int]]:
        return {t[0]: tuple(t[1:]) for t in self.room()["tiles"]}  # type: ignore[misc]

    def colour_at_centre(self, window: str) -> tuple[int, int, int]:
        x, y, w, h = self.tiles()[window]
        return tuple(self.page.evaluate(SAMPLE_JS, [[x + w // 2, y + h // 2]])[0])  # type: ignore[return-value]

    def controls_disabled(self) -> bool:
        return bool(self.page.evaluate("() => document.getElementById('camera-controls').disabled"))

    def frames(self) -> int:
        return int(self.page.evaluate(FRAMES_JS))

    def camera(self, command: dict[str, Any]) -> int:
        return int(
            self.page.evaluate(
                "async (cmd) => { try { await Api.call('POST', "
                "'/api/consultations/demo-consultation/camera', cmd); return 200; } "
                "catch (e) { return e.status || 0; } }",
                command,
            )
        )


def _close(colour: tuple[int, int, int], expected: tuple[int, int, int], tol: int = 60) -> bool:
    return all(abs(a - b) <= tol for a, b in zip(colour, expected, strict=True))


@pytest.fixture(scope="module")
def conference(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[dict[str, Any], dict[str, Expert]]]:
    from playwright.sync_api import sync_playwright

    tmp = tmp_path_factory.mktemp("conference")
    proc, info = start_demo(tmp / "state", PASSWORD, "--experts", "3")
    with sync_playwright() as pw:
        experts = {
            u: Expert(pw, u, _y4m(tmp / f"{u}.y4m", COLOURS[u]), info["url"]) for u in EXPERTS
        }
        try:
            for expert in experts.values():
                expert.open()
            yield info, experts
        finally:
            for expert in experts.values():
                expert.browser.close()
    if proc.poll() is None:
        stop_demo(proc, whole_group=True)


def _pan_pulse(info: dict[str, Any]) -> float | None:
    return pulse_us(Path(info["register_file"]).read_bytes(), 0)


def _not_moved(info: dict[str, Any], before: bytes) -> bool:
    """No new pan pulse since ``before`` (an idle release to full-off is not a move)."""
    now = _pan_pulse(info)
    return now is None or now == pulse_us(before, 0)


def test_each_composite_shows_every_window(conference: Any) -> None:
    _, experts = conference
    for expert in experts.values():
        tiles = expert.tiles()
        assert len(tiles) == 6  # three experts + presentation + live + relevance
        assert next(iter(tiles)) == "live"  # the patient is everyone's main window at first
        for user, colour in COLOURS.items():
            wait_until(
                lambda e=expert, u=user, c=colour: _close(e.colour_at_centre(f"expert:{u}"), c),
                20,
                f"{user}'s webcam colour in {expert.user}'s composite",
            )
        live = expert.colour_at_centre("live")
        assert not any(_close(live, c) for c in COLOURS.values())  # the scene, not a webcam


def test_browsers_are_asked_to_show_frames_at_once(conference: Any) -> None:
    """Chromium offers the playout-delay extension and the server's answer takes it."""
    _, experts = conference
    for expert in experts.values():
        sdp = expert.page.evaluate("() => pc.remoteDescription.sdp")
        assert "rtp-hdrext/playout-delay" in sdp, f"{expert.user}: not negotiated"


def test_choosing_a_main_window_changes_only_that_experts_layout(conference: Any) -> None:
    _, experts = conference
    chooser = experts["expert2"]
    others = [experts["demo"], experts["expert3"]]
    main_rect = chooser.tiles()["live"]
    x, y, w, h = chooser.tiles()["expert:demo"]
    box = chooser.page.locator("#live").bounding_box()
    vw, vh = chooser.page.evaluate("() => [room.size[0], room.size[1]]")
    scale = min(box["width"] / vw, box["height"] / vh)
    off_x, off_y = (box["width"] - vw * scale) / 2, (box["height"] - vh * scale) / 2
    chooser.page.mouse.click(
        box["x"] + off_x + (x + w / 2) * scale, box["y"] + off_y + (y + h / 2) * scale
    )
    wait_until(lambda: chooser.room()["main"] == "expert:demo", 10, "the choice to register")
    cx, cy = main_rect[0] + main_rect[2] // 2, main_rect[1] + main_rect[3] // 2
    wait_until(
        lambda: _close(tuple(chooser.page.evaluate(SAMPLE_JS, [[cx, cy]])[0]), COLOURS["demo"]),
        15,
        "Dr. Demo's webcam large in expert2's view",
    )
    for other in others:
        assert other.room()["main"] == "live"
        colour = tuple(other.page.evaluate(SAMPLE_JS, [[cx, cy]])[0])
        assert not _close(colour, COLOURS["demo"])  # still the patient there
    chooser.page.evaluate("() => send({type: 'main', window: 'live'})")  # and back
    wait_until(lambda: chooser.room()["main"] == "live", 10, "live as main again")


def test_floor_control(conference: Any) -> None:
    info, experts = conference
    chair, second, third = experts["demo"], experts["expert2"], experts["expert3"]
    # a non-holder's pan is refused and never reaches the servo
    regs = Path(info["register_file"]).read_bytes()
    assert third.controls_disabled()
    assert third.camera({"op": "ptz.relative", "pan": 10}) == 403
    time.sleep(0.5)
    assert _not_moved(info, regs)
    # the holder's pan moves it
    assert chair.camera({"op": "ptz.absolute", "pan": 10, "tilt": 0}) == 200
    wait_until(
        lambda: abs((_pan_pulse(info) or 0) - (750 + 1500 * 100 / 180)) < 5,
        3,
        "pan to 10°",
        step=0.005,
    )
    # expert2 asks, the chair grants, expert2 steers
    second.page.click("#floor-request")
    chair.page.wait_for_selector("button.floor-grant[data-user='expert2']")
    chair.page.click("button.floor-grant[data-user='expert2']")
    wait_until(lambda: second.room()["floor"]["holder"] == "expert2", 10, "grant")
    assert not second.controls_disabled()
    assert second.camera({"op": "ptz.absolute", "pan": -10, "tilt": 0}) == 200
    wait_until(
        lambda: abs((_pan_pulse(info) or 0) - (750 + 1500 * 80 / 180)) < 5,
        3,
        "pan to -10°",
        step=0.005,
    )
    assert chair.camera({"op": "ptz.home"}) == 403  # the chair must take it back first
    # the chair takes control back: expert2's next pan is refused
    chair.page.click("#floor-revoke")
    wait_until(lambda: second.room()["floor"]["holder"] == "demo", 10, "revoke")
    regs = Path(info["register_file"]).read_bytes()
    assert second.camera({"op": "ptz.relative", "pan": 20}) == 403
    time.sleep(0.5)
    assert _not_moved(info, regs)


def test_a_page_closed_and_reopened_leaves_the_others_running(conference: Any) -> None:
    _, experts = conference
    leaving, staying = experts["expert3"], [experts["demo"], experts["expert2"]]
    leaving.close_page()
    try:
        before = [e.frames() for e in staying]
        time.sleep(3.0)
        after = [e.frames() for e in staying]
        assert all(b > a + 3 for a, b in zip(before, after, strict=True))  # composites go on
        wait_until(
            lambda: "expert3" not in staying[0].room()["online"], 10, "expert3 shown offline"
        )
    finally:
        leaving.open()
    wait_until(
        lambda: _close(leaving.colour_at_centre("expert:expert3"), COLOURS["expert3"]),
        20,
        "expert3 back in their own composite",
    )
    assert "expert3" in staying[0].room()["online"]


AUDIO_JS = """async () => {
  let level = 0, packets = 0;
  (await pc.getStats()).forEach((r) => {
    if (r.type === 'inbound-rtp' && r.kind === 'audio') {
      packets += r.packetsReceived; level = Math.max(level, r.audioLevel || 0);
    }
  });
  return [packets, level];
}"""


def test_everyone_hears_the_others(conference: Any) -> None:
    _, experts = conference
    for expert in experts.values():
        # Chromium's fake microphone beeps; the mix of the two others must be audible
        wait_until(
            lambda e=expert: e.page.evaluate(AUDIO_JS)[1] > 0.01,
            15,
            f"audio from the others at {expert.user}",
        )

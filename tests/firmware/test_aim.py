"""Click to centre and drag to zoom: the geometry, the command's validation, and the
simulated rig showing the clicked point in the middle afterwards."""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from clinicam.protocol import CommandRejected, PtzFrame, PtzLookAt, parse_command
from firmware.control.aim import View, crop_around, follow_head, frame_box, look_at
from firmware.hardware.lens import Lens
from firmware.hardware.scene import MARKER_RADIUS_DEG
from tests.firmware.test_device_commands import Device, _device
from tests.marker import find_marker, marker_mask

SENSOR = (4608, 2592)
FULL = (0, 0, *SENSOR)
SIM_LENS = Lens(66.0, 41.0, "equirectangular")
CM3_LENS = Lens(66.0, 41.0, "rectilinear")


def _view(lens: Lens = SIM_LENS, crop: tuple[int, int, int, int] = FULL, **kw: float) -> View:
    limit = kw.pop("limit", 80.0)
    return View(
        lens=lens,
        sensor=SENSOR,
        crop=crop,
        pan=kw.get("pan", 0.0),
        tilt=kw.get("tilt", 0.0),
        clamp=lambda p, t: (min(max(p, -limit), limit), min(max(t, -45.0), 45.0)),
        max_zoom=8.0,
    )


# -- the lens ------------------------------------------------------------------------


def test_rectilinear_lens_uses_the_tangent_not_a_linear_guess() -> None:
    assert CM3_LENS.direction(0, 0, 12, -7) == pytest.approx((12, -7))
    assert CM3_LENS.direction(1, 0, 0, 0) == pytest.approx((33, 0))  # the edge: half the fov
    half = math.degrees(math.atan(0.5 * math.tan(math.radians(33))))
    assert CM3_LENS.direction(0.5, 0, 0, 0) == pytest.approx((half, 0))
    assert half > 17.5  # a linear guess would say 16.5°
    up = math.degrees(math.atan(0.5 * math.tan(math.radians(20.5))))
    assert CM3_LENS.direction(0, 0.5, 0, 0) == pytest.approx((0, up))


def test_equirectangular_lens_is_linear_in_angle() -> None:
    assert SIM_LENS.direction(0.5, -0.5, 10, 5) == pytest.approx((10 + 16.5, 5 - 10.25))


@pytest.mark.parametrize("lens", [CM3_LENS, SIM_LENS])
def test_offset_inverts_direction(lens: Lens) -> None:
    rng = random.Random(4)
    for _ in range(200):
        u, v = rng.uniform(-1, 1), rng.uniform(-1, 1)
        pan, tilt = rng.uniform(-80, 80), rng.uniform(-45, 45)
        target = lens.direction(u, v, pan, tilt)
        assert lens.offset(*target, pan, tilt) == pytest.approx((u, v), abs=1e-9)


def test_a_tilted_rectilinear_head_needs_more_pan_for_the_same_pixel() -> None:
    # Looking up 40°, a point at the frame's right edge is further round in pan than 33°.
    pan, _ = CM3_LENS.direction(1, 0, 0, 40)
    assert pan > 33.0 + 5.0


# -- the geometry --------------------------------------------------------------------


def test_click_at_the_centre_changes_nothing() -> None:
    aim = look_at(_view(pan=10, tilt=5), 0.5, 0.5)
    assert (aim.pan, aim.tilt, aim.crop) == (pytest.approx(10), pytest.approx(5), FULL)


def test_click_uses_the_field_of_view_at_the_current_zoom() -> None:
    zoom2 = crop_around(SENSOR[0] / 2, SENSOR[1] / 2, SENSOR[0] / 2, SENSOR, 8.0)
    assert zoom2 == (1152, 648, 2304, 1296)
    aim = look_at(_view(crop=zoom2), 1.0, 0.0)  # top right corner of a 2× view
    assert (aim.pan, aim.tilt) == pytest.approx((66 / 4, 41 / 4))
    assert aim.crop == zoom2  # the zoom stays, centred again


def test_click_through_an_off_centre_crop() -> None:
    top_left = (0, 0, 2304, 1296)  # the sensor's top-left quarter is what is shown
    aim = look_at(_view(crop=top_left), 0.5, 0.5)
    assert (aim.pan, aim.tilt) == pytest.approx((-66 / 4, 41 / 4))
    assert aim.crop == (1152, 648, 2304, 1296)


def test_past_the_soft_limit_the_crop_moves_instead() -> None:
    aim = look_at(_view(pan=75, limit=80, crop=(1152, 648, 2304, 1296)), 1.0, 0.5)
    assert aim.pan == 80.0  # clamped: the rig's limit
    # the target is 75 + 16.5 = 91.5°: 11.5° right of the centre, 0.348 of half the sensor
    wanted_x = SENSOR[0] / 2 * (1 + 11.5 / 33)
    assert aim.crop[0] + aim.crop[2] / 2 == pytest.approx(wanted_x, abs=1)
    aim = look_at(_view(pan=80, limit=80), 1.0, 0.5)  # no zoom: nowhere to move the crop
    assert aim.crop == FULL


def test_the_crop_makes_up_for_where_the_servo_really_stops() -> None:
    zoom4 = crop_around(SENSOR[0] / 2, SENSOR[1] / 2, SENSOR[0] / 4, SENSOR, 8.0)
    view = _view(crop=zoom4)
    aim = look_at(view, 0.75, 0.5)
    assert aim.crop == zoom4
    crop = follow_head(view, aim, (aim.pan - 0.5, aim.tilt + 0.25))  # 0.5° short, 0.25° high
    assert crop[0] - zoom4[0] == round(0.5 / 33 * SENSOR[0] / 2)
    assert crop[1] - zoom4[1] == round(0.25 / 20.5 * SENSOR[1] / 2)
    assert crop[2:] == zoom4[2:]


def test_drag_a_box_to_fill_the_view() -> None:
    aim = frame_box(_view(), 0.6, 0.6, 0.2, 0.2)
    assert (aim.pan, aim.tilt) == pytest.approx((0.2 * 66, -0.2 * 41))
    assert aim.zoom(SENSOR) == pytest.approx(5.0, rel=0.01)
    assert aim.crop[2] / aim.crop[3] == pytest.approx(SENSOR[0] / SENSOR[1], rel=0.01)
    tall = frame_box(_view(), 0.45, 0.25, 0.1, 0.5)  # the height decides: the whole box shows
    assert tall.zoom(SENSOR) == pytest.approx(2.0, rel=0.01)
    tiny = frame_box(_view(), 0.5, 0.5, 0.01, 0.01)
    assert tiny.zoom(SENSOR) == pytest.approx(8.0, rel=0.01)  # no more than the maximum


def test_a_rectilinear_box_off_axis_shrinks_when_centred() -> None:
    box = (0.7, 0.45, 0.25, 0.1)  # wide: its width decides the zoom
    flat = frame_box(_view(SIM_LENS), *box)
    pinhole = frame_box(_view(CM3_LENS), *box)
    assert pinhole.zoom(SENSOR) > flat.zoom(SENSOR) * 1.1


# -- the command on the wire ---------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        '{"op": "ptz.look_at", "id": "a", "x": 1.5, "y": 0.5}',
        '{"op": "ptz.look_at", "id": "a", "x": -0.01, "y": 0.5}',
        '{"op": "ptz.look_at", "id": "a", "x": 0.5}',
        '{"op": "ptz.look_at", "id": "a", "x": "left", "y": 0.5}',
        '{"op": "ptz.look_at", "id": "a", "x": NaN, "y": 0.5}',
        '{"op": "ptz.look_at", "id": "a", "x": 0.5, "y": 0.5, "pan": 10}',
        '{"op": "ptz.frame", "id": "a", "x": 0.8, "y": 0.1, "width": 0.3, "height": 0.1}',
        '{"op": "ptz.frame", "id": "a", "x": 0.1, "y": 0.1, "width": 0, "height": 0.1}',
        '{"op": "ptz.frame", "id": "a", "x": 0.1, "y": 0.1, "width": 0.1}',
    ],
)
def test_malformed_aims_are_refused(payload: str) -> None:
    with pytest.raises(CommandRejected):
        parse_command(payload.encode())


def test_valid_aims_parse() -> None:
    assert isinstance(parse_command(b'{"op":"ptz.look_at","id":"a","x":0,"y":1}'), PtzLookAt)
    frame = b'{"op":"ptz.frame","id":"a","x":0.5,"y":0.5,"width":0.5,"height":0.5}'
    assert isinstance(parse_command(frame), PtzFrame)


# -- the simulated rig ---------------------------------------------------------------


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Device]:
    dev = await _device(tmp_path)
    yield dev
    await dev.appliance.stop()
    dev.sim.close()


# The PCA9685 sets a servo in steps of 20 ms / 4096 = 4.9 µs: 0.59° of a 1500 µs / 180°
# servo, and servokit truncates the duty cycle: the head stops up to one step short of
# where it is sent (the simulated servo follows the register, as the real one does):
# 0.6° at the scene's 20 px per degree. Zoomed in, the crop makes up for it.
RIG_STEP_PX = 0.6 * 20 + 2


def _scene_point(dev: Device, x: float, y: float) -> tuple[float, float]:
    """Where in the scene image display point (x, y) is, as the virtual camera renders it."""
    rx, ry, rw, rh = dev.sim.camera.crop_region()
    return rx + x * rw, ry + y * rh


@pytest.mark.parametrize("zoom", [1.0, 3.0, 8.0])
async def test_the_clicked_point_ends_up_in_the_middle(rig: Device, zoom: float) -> None:
    await rig.send(op="ptz.absolute", pan=-10, tilt=5)
    await rig.send(op="zoom", level=zoom)
    await rig.settle()
    for x, y in [(0.8, 0.3), (0.15, 0.9), (0.5, 0.5)]:
        wanted = _scene_point(rig, x, y)
        ack = await rig.send(op="ptz.look_at", x=x, y=y)
        assert ack["ok"], ack
        await rig.settle()
        await asyncio.sleep(0.05)  # the crop follows the head once it has arrived
        # zoomed, the crop makes up for the servo's steps: as close as the scene's pixels
        tolerance = RIG_STEP_PX if zoom == 1.0 else 2.0
        assert _scene_point(rig, 0.5, 0.5) == pytest.approx(wanted, abs=tolerance)
        assert rig.appliance.control.imaging.zoom_level() == pytest.approx(zoom, rel=0.01)


async def test_a_dragged_box_becomes_the_view(rig: Device) -> None:
    await rig.settle()
    corner = _scene_point(rig, 0.6, 0.2)
    far = _scene_point(rig, 0.8, 0.4)
    ack = await rig.send(op="ptz.frame", x=0.6, y=0.2, width=0.2, height=0.2)
    assert ack["ok"] and ack["result"]["zoom"] == pytest.approx(5.0, rel=0.01)
    assert ack["state"]["zoom"] == 1.0  # first the head turns, then the zoom
    await rig.settle()
    await asyncio.sleep(0.05)
    rx, ry, rw, rh = rig.sim.camera.crop_region()
    # the box's height fills the view (the sensor is wider than the box: its width shows)
    assert ry == pytest.approx(corner[1], abs=RIG_STEP_PX)
    assert ry + rh == pytest.approx(far[1], abs=RIG_STEP_PX)
    assert rx + rw / 2 == pytest.approx((corner[0] + far[0]) / 2, abs=RIG_STEP_PX)


async def test_refused_aims_never_move_the_camera(rig: Device) -> None:
    await rig.settle()
    before = (rig.appliance.motion.target, rig.sim.camera.metadata()["ScalerCrop"])
    for bad in (
        {"op": "ptz.look_at", "x": 2, "y": 0.5},
        {"op": "ptz.look_at", "x": 0.5},
        {"op": "ptz.frame", "x": 0.9, "y": 0.9, "width": 0.5, "height": 0.5},
    ):
        ack = await rig.send(**bad)
        assert not ack["ok"] and "invalid command" in ack["error"]
    rig.appliance.privacy.set_private(True, "test")
    ack = await rig.send(op="ptz.look_at", x=0.9, y=0.1)
    assert not ack["ok"] and "privacy" in ack["error"]
    rig.appliance.privacy.set_private(False, "test")
    await rig.settle()
    assert (rig.appliance.motion.target, rig.sim.camera.metadata()["ScalerCrop"]) == before


async def test_a_click_on_the_marker_centres_it_in_the_rendered_picture(rig: Device) -> None:
    """The marker (the scene's only magenta) found in the frames, clicked, found again."""
    await rig.settle()
    frame = rig.sim.camera.capture().to_ndarray(format="rgb24")
    seen = find_marker(frame)
    assert seen is not None and seen.pixels > 1000
    assert marker_mask(rig.sim.camera.scene).sum() == pytest.approx(
        math.pi * (MARKER_RADIUS_DEG * 20) ** 2, rel=0.05
    )  # the scene has no other magenta
    assert (await rig.send(op="ptz.look_at", x=seen.x, y=seen.y))["ok"]
    await rig.settle()
    await asyncio.sleep(0.05)
    after = find_marker(rig.sim.camera.capture().to_ndarray(format="rgb24"))
    assert after is not None and after.off_centre_pct(16 / 9) < 1.0
    box = (after.x - after.width / 2, after.y - after.height / 2, after.width, after.height)
    ack = await rig.send(op="ptz.frame", x=box[0], y=box[1], width=box[2], height=box[3])
    assert ack["ok"]
    await rig.settle()
    await asyncio.sleep(0.05)
    filled = find_marker(rig.sim.camera.capture().to_ndarray(format="rgb24"))
    assert filled is not None and filled.height == pytest.approx(1.0, abs=0.05)


async def test_the_head_is_where_the_pulses_put_it_even_limp(rig: Device) -> None:
    await rig.send(op="ptz.absolute", pan=3.21, tilt=-7.77)
    await rig.settle()
    physical = (rig.sim.pan_servo.angle - 90.0, rig.sim.tilt_servo.angle - 90.0)
    driven = rig.appliance.motion.driven()
    assert driven == pytest.approx(physical, abs=0.05)  # read back from the registers
    assert driven != pytest.approx((3.21, -7.77), abs=0.05)  # the PWM's steps show
    rig.appliance.pantilt.release()  # idle: no pulses, the servo stays where it was
    assert rig.appliance.motion.driven() == driven

"""The virtual camera's libcamera controls, measured on its pixels: zoom, focus, colour, stills."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from typing import Any

import av
import numpy as np
import pytest

from firmware.config import ApplianceConfig
from firmware.hardware.camera_sim import VirtualCamera
from firmware.hardware.sim import SimRig, build_sim_rig
from tests.helpers import image_shift

ZOOM_2X = (1152, 648, 2304, 1296)
SUBJECT_DIOPTRES = 2.0  # the default subject distance, 0.5 m


class FakeClock:
    """A monotonic clock that only moves when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def config() -> ApplianceConfig:
    return ApplianceConfig.model_validate({"sim": {"servo_seconds_per_60deg": 0.0}})


@pytest.fixture
def rig(config: ApplianceConfig) -> Iterator[SimRig]:
    instance = build_sim_rig(config)
    yield instance
    instance.close()


def _camera_with_clock(
    rig: SimRig, config: ApplianceConfig, clock: FakeClock, subject_distance_m: float = 0.5
) -> VirtualCamera:
    """A camera on the rig's scene, looking straight ahead, with a test-driven clock."""
    return VirtualCamera(
        rig.camera.scene,
        config.sim.scene_px_per_deg,
        lambda: (0.0, 0.0),
        config.camera,
        subject_distance_m=subject_distance_m,
        clock=clock,
    )


def _luma(frame: av.VideoFrame) -> np.ndarray:
    planes: np.ndarray = frame.to_ndarray(format="yuv420p")
    return planes[: frame.height].astype(np.float64)


def _rgb(frame: av.VideoFrame) -> np.ndarray:
    rgb: np.ndarray = frame.to_ndarray(format="rgb24")
    return rgb.astype(np.float64)


def _sharpness(luma: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian: high for crisp detail, ~0 for a blur."""
    lap = luma[:-2, 1:-1] + luma[2:, 1:-1] + luma[1:-1, :-2] + luma[1:-1, 2:] - 4 * luma[1:-1, 1:-1]
    return float(lap.var())


def _downscale(image: np.ndarray, width: int, height: int) -> np.ndarray:
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
    small: np.ndarray = frame.reformat(width=width, height=height).to_ndarray(format="rgb24")
    return small.astype(np.float64)


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def _controls(meta: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in meta.items() if k != "FrameTimestamp"}


def test_defaults_are_those_of_a_camera_module_3(rig: SimRig) -> None:
    camera = rig.camera
    assert camera.sensor_resolution == (4608, 2592)
    assert camera.size == (1280, 720)
    meta = camera.metadata()
    assert meta["AfMode"] == 2 and meta["AfState"] == 2  # continuous, in focus
    assert meta["LensPosition"] == pytest.approx(SUBJECT_DIOPTRES)
    assert meta["AwbEnable"] is True and meta["AwbMode"] == 0
    assert (meta["Brightness"], meta["Contrast"], meta["Saturation"]) == (0.0, 1.0, 1.0)
    assert meta["ScalerCrop"] == (0, 0, 4608, 2592)
    assert meta["FrameTimestamp"] is None  # nothing captured yet


def test_zoom_2x_halves_the_field_of_view(rig: SimRig) -> None:
    camera, pantilt = rig.camera, rig.pantilt

    def pan_shift() -> tuple[int, int]:
        pantilt.move_to(0, 0)
        before = _luma(camera.capture())[::2, ::2]
        pantilt.move_to(2, 0)
        after = _luma(camera.capture())[::2, ::2]
        return image_shift(before, after)

    pantilt.move_to(0, 0)
    wide = _rgb(camera.capture())
    dx1, dy1 = pan_shift()
    camera.set_controls({"ScalerCrop": ZOOM_2X})
    assert camera.metadata()["ScalerCrop"] == ZOOM_2X
    dx2, dy2 = pan_shift()
    assert dx1 < -10 and dy1 == 0 and dy2 == 0  # pan right: the picture slides left
    assert abs(dx2 - 2 * dx1) <= 1  # the same 2° cover twice as many pixels

    # The zoomed frame is the middle of the wide one, magnified twice.
    pantilt.move_to(0, 0)
    zoomed = _downscale(camera.capture().to_ndarray(format="rgb24"), 640, 360)
    middle = wide[180:540, 320:960]
    assert abs(zoomed.mean() - middle.mean()) < 3
    assert _correlation(zoomed, middle) > 0.9
    assert _correlation(zoomed, _downscale(wide.astype(np.uint8), 640, 360)) < 0.5


def test_scaler_crop_is_fitted_like_libcamera(rig: SimRig) -> None:
    camera = rig.camera
    cases = {
        (4000, 2000, 100, 100): (3762, 1888, 576, 324),  # grown to 1/8 around its centre
        (0, 1000, 4608, 100): (0, 0, 4608, 2592),  # grown to 16:9, moved inside
        (1000, 500, 3608, 2092): (889, 500, 3719, 2092),  # widened to 16:9, moved inside
        (3000, 1500, 2304, 1296): (2304, 1296, 2304, 1296),  # moved back onto the sensor
    }
    for request, applied in cases.items():
        camera.set_controls({"ScalerCrop": request})
        assert camera.metadata()["ScalerCrop"] == applied, request


@pytest.mark.parametrize(
    ("controls", "name"),
    [
        ({"ScalerCrop": (-1, 0, 2304, 1296)}, "ScalerCrop"),
        ({"ScalerCrop": (0, 0, 0, 1296)}, "ScalerCrop"),
        ({"ScalerCrop": (0, 0, 5000, 2592)}, "ScalerCrop"),
        ({"ScalerCrop": (4608, 0, 100, 100)}, "ScalerCrop"),
        ({"ScalerCrop": (0, 0, 2304)}, "ScalerCrop"),
        ({"ScalerCrop": (0.5, 0, 2304, 1296)}, "ScalerCrop"),
        ({"Brightness": 0.5, "Sharpness": 2.0}, "Sharpness"),
        ({"Saturation": 0.0, "LensPosition": 15.5}, "LensPosition"),
        ({"AfMode": 3}, "AfMode"),
        ({"AfMode": True}, "AfMode"),
        ({"AfTrigger": 2}, "AfTrigger"),
        ({"AwbMode": 7}, "AwbMode"),
        ({"AwbEnable": "yes"}, "AwbEnable"),
        ({"ColourGains": (2.0,)}, "ColourGains"),
        ({"ColourGains": (2.0, 33.0)}, "ColourGains"),
        ({"Brightness": -1.5}, "Brightness"),
        ({"Contrast": float("nan")}, "Contrast"),
        ({"Saturation": "2"}, "Saturation"),
    ],
)
def test_invalid_controls_are_refused_and_change_nothing(
    rig: SimRig, controls: dict[str, Any], name: str
) -> None:
    camera = rig.camera
    camera.set_controls({"ScalerCrop": ZOOM_2X, "AfMode": 0, "LensPosition": 2.0})
    before_meta = _controls(camera.metadata())
    before = _luma(camera.capture())
    with pytest.raises(ValueError, match=name):
        camera.set_controls({"Contrast": 1.5, **controls})
    assert _controls(camera.metadata()) == before_meta
    assert np.array_equal(_luma(camera.capture()), before)


def test_manual_focus_blur_grows_with_the_dioptre_error(rig: SimRig) -> None:
    camera = rig.camera
    sharpness = {}
    for error in (0.0, 1.0, 4.0, -1.0):
        camera.set_controls({"AfMode": 0, "LensPosition": SUBJECT_DIOPTRES + error})
        assert camera.metadata()["LensPosition"] == SUBJECT_DIOPTRES + error
        sharpness[error] = _sharpness(_luma(camera.capture()))
    assert sharpness[1.0] < 0.75 * sharpness[0.0]  # clearly visible at 1 dioptre
    assert sharpness[4.0] < 0.1 * sharpness[1.0]  # strong at 4
    assert sharpness[-1.0] < 0.75 * sharpness[0.0]  # focused too far is blurred too

    camera.set_controls({"LensPosition": SUBJECT_DIOPTRES})
    assert _sharpness(_luma(camera.capture())) == pytest.approx(sharpness[0.0])


def test_one_shot_autofocus_scans_then_focuses(rig: SimRig, config: ApplianceConfig) -> None:
    clock = FakeClock()
    camera = _camera_with_clock(rig, config, clock)
    sharp = _sharpness(_luma(camera.capture()))
    camera.set_controls({"AfMode": 0, "LensPosition": 8.0})
    assert camera.metadata()["AfState"] == 0  # manual: idle
    assert _sharpness(_luma(camera.capture())) < 0.1 * sharp

    camera.set_controls({"AfMode": 1, "AfTrigger": 0})
    meta = camera.metadata()
    assert (meta["AfMode"], meta["AfState"], meta["LensPosition"]) == (1, 1, 8.0)
    clock.now += 0.15
    meta = camera.metadata()
    assert meta["AfState"] == 1 and SUBJECT_DIOPTRES < meta["LensPosition"] < 8.0
    camera.set_controls({"LensPosition": 12.0})  # ignored outside manual mode, as libcamera
    clock.now += 0.6
    meta = camera.metadata()
    assert meta["AfState"] == 2
    assert meta["LensPosition"] == pytest.approx(SUBJECT_DIOPTRES, abs=0.01)
    assert _sharpness(_luma(camera.capture())) == pytest.approx(sharp, rel=0.01)


def test_autofocus_cancel_continuous_and_failure(rig: SimRig, config: ApplianceConfig) -> None:
    clock = FakeClock()
    camera = _camera_with_clock(rig, config, clock)
    camera.set_controls({"AfMode": 0, "LensPosition": 10.0})
    camera.set_controls({"AfMode": 1, "AfTrigger": 0})
    clock.now += 0.1
    camera.set_controls({"AfTrigger": 1})  # cancel: the lens stops where it was
    stopped = camera.metadata()
    assert stopped["AfState"] == 0 and SUBJECT_DIOPTRES < stopped["LensPosition"] < 10.0
    clock.now += 1.0
    assert camera.metadata()["LensPosition"] == stopped["LensPosition"]

    camera.set_controls({"AfMode": 0, "LensPosition": 0.0})
    camera.set_controls({"AfMode": 2})  # continuous: converges by itself
    assert camera.metadata()["AfState"] == 1
    clock.now += 1.0
    meta = camera.metadata()
    assert meta["AfState"] == 2 and meta["LensPosition"] == pytest.approx(SUBJECT_DIOPTRES)

    too_close = _camera_with_clock(rig, config, clock, subject_distance_m=0.05)  # 20 dioptres
    too_close.set_controls({"AfMode": 1, "AfTrigger": 0})
    clock.now += 1.0
    assert too_close.metadata()["AfState"] == 3  # failed


def test_colour_gains_move_the_channel_means(rig: SimRig) -> None:
    camera = rig.camera

    def means() -> np.ndarray:
        result: np.ndarray = _rgb(camera.capture()).reshape(-1, 3).mean(axis=0)
        return result

    auto = means()
    camera.set_controls({"ColourGains": (2.0, 1.8)})  # the neutral gains: same picture
    meta = camera.metadata()
    assert meta["AwbEnable"] is False and meta["ColourGains"] == (2.0, 1.8)
    assert np.allclose(means(), auto, atol=0.5)

    camera.set_controls({"ColourGains": (2.5, 1.8)})
    redder = means()
    assert redder[0] / redder[1] > 1.15 * auto[0] / auto[1]
    assert redder[2] / redder[1] == pytest.approx(auto[2] / auto[1], rel=0.05)

    camera.set_controls({"ColourGains": (2.0, 2.25)})
    bluer = means()
    assert bluer[2] / bluer[1] > 1.15 * auto[2] / auto[1]
    assert bluer[0] / bluer[1] == pytest.approx(auto[0] / auto[1], rel=0.05)

    camera.set_controls({"AwbEnable": True, "AwbMode": 1})  # incandescent in daylight
    tungsten = means()
    assert tungsten[2] / tungsten[0] > 1.3 * auto[2] / auto[0]
    camera.set_controls({"AwbMode": 5})  # daylight: neutral
    assert np.allclose(means(), auto, atol=0.5)


def test_saturation_brightness_and_contrast(rig: SimRig) -> None:
    camera = rig.camera
    normal = _rgb(camera.capture())
    normal_luma = _luma(camera.capture())

    camera.set_controls({"Saturation": 0.0})
    grey = _rgb(camera.capture())
    assert np.abs(grey[..., 0] - grey[..., 1]).max() <= 2
    assert np.abs(grey[..., 2] - grey[..., 1]).max() <= 2
    camera.set_controls({"Saturation": 2.0})
    vivid = _rgb(camera.capture())
    spread = np.abs(normal - normal.mean(axis=2, keepdims=True)).mean()
    assert np.abs(vivid - vivid.mean(axis=2, keepdims=True)).mean() > 1.5 * spread

    camera.set_controls({"Saturation": 1.0, "Brightness": 0.2})
    brighter = _luma(camera.capture())
    assert 35 < brighter.mean() - normal_luma.mean() < 50  # 0.2·255 in RGB, 0.2·219 in Y
    camera.set_controls({"Brightness": -0.2})
    assert _luma(camera.capture()).mean() < normal_luma.mean() - 35

    camera.set_controls({"Brightness": 0.0, "Contrast": 1.5})
    contrasty = _luma(camera.capture())
    assert contrasty.std() > 1.3 * normal_luma.std()
    camera.set_controls({"Contrast": 0.0})
    flat = _luma(camera.capture())
    assert flat.std() < 1.0 and abs(flat.mean() - 126) < 3  # mid-grey


def test_still_is_full_resolution_and_follows_the_crop(rig: SimRig) -> None:
    camera = rig.camera
    wide_still = camera.capture_still()
    assert wide_still.shape == (2592, 4608, 3) and wide_still.dtype == np.uint8
    camera.set_controls({"ScalerCrop": ZOOM_2X})
    stream = _rgb(camera.capture())
    still = camera.capture_still()
    assert still.shape == (2592, 4608, 3)
    assert _correlation(_downscale(still, 1280, 720), stream) > 0.97
    assert _correlation(_downscale(wide_still, 1280, 720), stream) < 0.5

    camera.set_controls({"Saturation": 0.0, "AfMode": 0, "LensPosition": 6.0})
    grey_blurred = camera.capture_still().astype(np.float64)
    assert np.abs(grey_blurred[..., 0] - grey_blurred[..., 1]).max() <= 2
    assert _sharpness(grey_blurred[::4, ::4, 1]) < 0.3 * _sharpness(
        still[::4, ::4, 1].astype(np.float64)
    )


def test_frame_timestamps_increase(rig: SimRig) -> None:
    camera = rig.camera
    stamps = []
    for _ in range(5):
        start = time.monotonic_ns()
        camera.capture()
        stamp = camera.metadata()["FrameTimestamp"]
        assert start <= stamp <= time.monotonic_ns()
        stamps.append(stamp)
    assert all(b > a for a, b in itertools.pairwise(stamps))
    camera.capture_still()  # a still is not a stream frame
    assert camera.metadata()["FrameTimestamp"] == stamps[-1]


def test_controls_can_change_while_another_thread_captures(rig: SimRig) -> None:
    camera = rig.camera
    errors: list[BaseException] = []
    stop = threading.Event()

    def capture_loop() -> None:
        try:
            while not stop.is_set():
                frame = camera.capture()
                assert (frame.width, frame.height) == (1280, 720)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    worker = threading.Thread(target=capture_loop)
    worker.start()
    try:
        for i in range(40):
            level = 1 + i % 4
            w, h = 4608 // level, 2592 // level
            camera.set_controls(
                {
                    "ScalerCrop": ((4608 - w) // 2, (2592 - h) // 2, w, h),
                    "Saturation": 0.5 * (i % 3),
                    "AfMode": 0,
                    "LensPosition": float(i % 6),
                }
            )
    finally:
        stop.set()
        worker.join(timeout=10)
    assert not errors
    assert camera.metadata()["ScalerCrop"] == (1728, 972, 1152, 648)  # the last: 4×, i = 39


def test_a_still_view_is_rendered_once_and_any_change_renders_afresh(
    rig: SimRig, config: ApplianceConfig
) -> None:
    """The sim reuses its last picture only while nothing that shapes it has changed."""
    pointing = [0.0, 0.0]
    camera = VirtualCamera(
        rig.camera.scene,
        config.sim.scene_px_per_deg,
        lambda: (pointing[0], pointing[1]),
        config.camera,
    )
    camera.set_controls({"AfMode": 0, "LensPosition": SUBJECT_DIOPTRES})
    first = camera.capture()
    assert camera.capture() is first  # nothing changed: no second render
    reference = _luma(first).copy()

    pointing[0] = 5.0  # the head turned
    panned = camera.capture()
    assert panned is not first and image_shift(reference, _luma(panned))[0] != 0
    pointing[0] = 0.0
    assert np.array_equal(_luma(camera.capture()), reference)  # back: the same picture

    for controls in ({"Brightness": 0.3}, {"Saturation": 0.0}, {"ScalerCrop": ZOOM_2X}):
        before = camera.capture()
        camera.set_controls(controls)
        after = camera.capture()
        changed = not np.array_equal(after.to_ndarray(), before.to_ndarray())  # Y, U and V
        assert after is not before and changed, controls
        assert camera.capture() is after

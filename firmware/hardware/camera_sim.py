"""A virtual camera: a viewport over the generated scene that follows the pan-tilt head.

It looks where the *simulated servos* physically point (read from their model of the
PCA9685 pulses), not where the driver meant them to, so a wrong register shows up
as a wrong picture.

It takes the libcamera controls of a Camera Module 3 under picamera2 (see
:class:`~firmware.hardware.protocols.Camera`) and renders their effect:

* ``ScalerCrop`` selects a part of the sensor (digital zoom). The sensor's full field
  of view is the configured hfov × vfov and its pixels map linearly onto the scene
  viewport; the crop is cut from the scene at the scene's resolution. A rectangle
  inside the sensor is adjusted as libcamera does: grown to the sensor's aspect
  ratio around its centre, at least 1/8 of the sensor (8× zoom) and moved inside it.
* Focus: the patient is ``subject_distance_m`` away, in focus at ``1/d`` dioptres;
  the picture blurs with the dioptre error like the real lens (see
  :mod:`~firmware.hardware.camera_effects`). ``AfMode`` 0 manual, 1 auto (one-shot,
  ``AfTrigger`` 0 starts a :data:`AF_SCAN_S` scan, 1 cancels it), 2 continuous (the lens
  slews at :data:`CAF_DIOPTRES_PER_S`). ``LensPosition`` is applied in manual mode
  only and ``AfTrigger`` in auto mode only, as in libcamera. A subject nearer than
  the lens can focus (1/15 m) makes AF fail (``AfState`` 3).
* Colour: the scene is lit so that the red and blue gains :data:`NEUTRAL_GAINS` give
  a neutral picture; ``ColourGains`` (which, as in picamera2, turn AWB off) scale the
  red and blue channels by ``gain / neutral``. With AWB on, ``AwbMode`` picks the
  gains of :data:`AWB_MODE_GAINS` (auto and daylight are neutral; the others are
  meant for warmer or cooler light, so they tint the picture). ``Brightness`` adds
  ``b × 255``, ``Contrast`` scales around 128, ``Saturation`` mixes with the luma.
  ``ColourCorrectionMatrix`` (9 numbers, row-major, linear RGB after the gains) is taken
  only with AWB off, and turning AWB on returns to the camera's own matrix, as on a Pi.
  The room's lighting (a sim-only setting, :meth:`VirtualCamera.set_lighting`) and the
  CCM are rendered in linear light (:mod:`~firmware.hardware.colour_sim`), the gains then
  too; with neither, the gains stay in the 8-bit tone curves of the hot path.
* A 24-patch colour card can be held in view (sim only, :meth:`VirtualCamera.hold_card`).
"""

from __future__ import annotations

import logging
import math
import numbers
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import av
import numpy as np

from firmware.config import CameraConfig
from firmware.hardware import camera_effects as fx
from firmware.hardware import colour_sim, timestamp
from firmware.hardware.lens import Lens

_LOGGER = logging.getLogger(__name__)

LENS_MIN, LENS_MAX = 0.0, 15.0
LENS_DEFAULT = 1.0  # where a failed scan leaves the lens (libcamera's default position)
AF_SCAN_S = 0.4
CAF_DIOPTRES_PER_S = 20.0
AF_IDLE, AF_SCANNING, AF_FOCUSED, AF_FAILED = 0, 1, 2, 3
MIN_CROP_DIVISOR = 8

NEUTRAL_GAINS = (2.0, 1.8)
AWB_MODE_GAINS: dict[int, tuple[float, float]] = {
    0: NEUTRAL_GAINS,  # auto: finds the scene's illuminant
    1: (1.60, 2.30),  # incandescent (~2700 K): the daylit scene turns bluish
    2: (1.65, 2.20),  # tungsten (~3000 K)
    3: (1.85, 2.00),  # fluorescent (~4000 K)
    4: (1.75, 2.05),  # indoor (~3500 K)
    5: NEUTRAL_GAINS,  # daylight: the scene's illuminant
    6: (2.20, 1.65),  # cloudy (~7000 K): warmer
}

CONTROLS = (
    "AfMode",
    "AfTrigger",
    "LensPosition",
    "AwbEnable",
    "AwbMode",
    "ColourGains",
    "ColourCorrectionMatrix",
    "Brightness",
    "Contrast",
    "Saturation",
    "ScalerCrop",
)


def _integer(name: str, value: Any, allowed: Sequence[int]) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value not in allowed:
        raise ValueError(f"{name} must be one of {list(allowed)}, got {value!r}")
    return int(value)


def _real(name: str, value: Any, low: float, high: float) -> float:
    number = (
        float(value) if isinstance(value, numbers.Real) and not isinstance(value, bool) else None
    )
    if number is None or not math.isfinite(number) or not low <= number <= high:
        raise ValueError(f"{name} must be a number from {low} to {high}, got {value!r}")
    return number


def _sequence(name: str, value: Any, length: int) -> list[Any]:
    if isinstance(value, str | bytes) or not isinstance(value, Sequence | np.ndarray):
        raise ValueError(f"{name} must be a sequence of {length} numbers, got {value!r}")
    items = list(value)
    if len(items) != length:
        raise ValueError(f"{name} must have {length} values, got {len(items)}")
    return items


def fit_scaler_crop(
    rect: tuple[int, int, int, int], sensor: tuple[int, int]
) -> tuple[int, int, int, int]:
    """The crop libcamera would apply for ``rect``: sensor aspect, ≥ 1/8 sensor, inside it."""
    sensor_w, sensor_h = sensor
    x, y, w, h = rect
    aspect = sensor_w / sensor_h
    cx, cy = x + w / 2, y + h / 2
    fw, fh = (float(w), w / aspect) if w / h >= aspect else (h * aspect, float(h))
    scale = min(max(fw, sensor_w / MIN_CROP_DIVISOR), sensor_w) / fw
    fw, fh = fw * scale, fh * scale
    w, h = min(round(fw), sensor_w), min(round(fh), sensor_h)
    x = min(max(round(cx - w / 2), 0), sensor_w - w)
    y = min(max(round(cy - h / 2), 0), sensor_h - h)
    return x, y, w, h


class _Autofocus:
    """The AF algorithm's state; ``update`` advances it to the clock's time."""

    def __init__(self, subject_dioptres: float, now: float) -> None:
        self.subject = subject_dioptres
        self.reachable = subject_dioptres <= LENS_MAX
        self.target = min(subject_dioptres, LENS_MAX)
        self.mode = 2
        self.lens = self.target
        self.state = AF_FOCUSED if self.reachable else AF_FAILED
        self._scan_from = self.lens
        self._scan_start = now
        self._last = now

    def update(self, now: float) -> None:
        if self.mode == 1 and self.state == AF_SCANNING:
            progress = (now - self._scan_start) / AF_SCAN_S
            if progress >= 1.0:
                self.lens = self.target if self.reachable else LENS_DEFAULT
                self.state = AF_FOCUSED if self.reachable else AF_FAILED
            else:
                self.lens = self._scan_from + (self.target - self._scan_from) * max(progress, 0.0)
        elif self.mode == 2:
            step = CAF_DIOPTRES_PER_S * max(now - self._last, 0.0)
            error = self.target - self.lens
            self.lens = (
                self.target if abs(error) <= step else self.lens + math.copysign(step, error)
            )
            if self.lens != self.target:
                self.state = AF_SCANNING
            else:
                self.state = AF_FOCUSED if self.reachable else AF_FAILED
        self._last = now

    def set_mode(self, mode: int, now: float) -> None:
        if mode == self.mode:
            return
        self.mode = mode
        self._last = now
        if mode == 2:
            self.update(now)
        else:
            self.state = AF_IDLE

    def set_lens(self, position: float) -> None:
        if self.mode == 0:
            self.lens = position
        else:
            _LOGGER.debug("LensPosition ignored outside manual focus (AfMode %d)", self.mode)

    def trigger(self, action: int, now: float) -> None:
        if self.mode != 1:
            _LOGGER.debug("AfTrigger ignored outside one-shot auto focus (AfMode %d)", self.mode)
        elif action == 0 and self.state != AF_SCANNING:
            self.state, self._scan_from, self._scan_start = AF_SCANNING, self.lens, now
        elif action == 1 and self.state == AF_SCANNING:
            self.state = AF_IDLE


class VirtualCamera:
    """A :class:`~firmware.hardware.protocols.Camera` rendering from a scene image."""

    def __init__(
        self,
        scene: np.ndarray,
        px_per_deg: float,
        pointing: Callable[[], tuple[float, float]],
        config: CameraConfig,
        *,
        subject_distance_m: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
        stamp_time: bool = False,
        lighting: tuple[float, ...] = colour_sim.IDENTITY,
    ) -> None:
        self._stamp_time = stamp_time
        self._lighting = lighting
        self._ccm = colour_sim.IDENTITY
        self._matrix: np.ndarray | None = None
        self._card: colour_sim.HeldCard | None = None
        self._scene = scene
        self._ppd = px_per_deg
        self._pointing = pointing
        self._config = config
        self._clock = clock
        self._view_w = min(round(config.hfov_deg * px_per_deg), scene.shape[1]) // 2 * 2
        self._view_h = min(round(config.vfov_deg * px_per_deg), scene.shape[0]) // 2 * 2
        self._lock = threading.Lock()
        self._af = _Autofocus(1.0 / subject_distance_m, clock())
        self._awb_enable = True
        self._awb_mode = 0
        self._manual_gains = NEUTRAL_GAINS
        self._brightness = 0.0
        self._contrast = 1.0
        self._saturation = 1.0
        self._crop = (0, 0, config.sensor_width, config.sensor_height)
        self._tone: fx.ToneMap | None = None
        self._chroma: np.ndarray | None = None
        self._update_colour()
        self._frame_ns: int | None = None
        self._size = (config.width, config.height)
        self._last_render: tuple[tuple[object, ...], av.VideoFrame, object, object] | None = None

    @property
    def size(self) -> tuple[int, int]:
        return self._size

    def configure_stream(self, width: int, height: int, fps: int) -> None:
        """Render at the new size (the scene is sampled afresh: 4K shows 4K detail)."""
        with self._lock:
            self._size = (width, height)

    @property
    def sensor_resolution(self) -> tuple[int, int]:
        return self._config.sensor_width, self._config.sensor_height

    @property
    def lens(self) -> Lens:
        """Equirectangular: the scene is laid out in pan/tilt degrees (see :meth:`viewport`)."""
        return Lens(self._config.hfov_deg, self._config.vfov_deg, "equirectangular")

    @property
    def scene(self) -> np.ndarray:
        """The scene image the camera looks at (read-only use)."""
        return self._scene

    def viewport(self) -> tuple[int, int, int, int]:
        """(x, y, w, h) of the scene region the whole sensor sees, for where the head points."""
        pan, tilt = self._pointing()
        height, width = self._scene.shape[:2]
        cx = width / 2 + pan * self._ppd
        cy = height / 2 - tilt * self._ppd
        x = round(min(max(cx - self._view_w / 2, 0), width - self._view_w))
        y = round(min(max(cy - self._view_h / 2, 0), height - self._view_h))
        return x, y, self._view_w, self._view_h

    def crop_region(
        self, crop: tuple[int, int, int, int] | None = None
    ) -> tuple[int, int, int, int]:
        """(x, y, w, h) of the scene region streamed for a ScalerCrop (default: the current)."""
        cx, cy, cw, ch = self._crop if crop is None else crop
        vx, vy, vw, vh = self.viewport()
        sensor_w, sensor_h = self.sensor_resolution
        x0, x1 = round(vx + cx * vw / sensor_w), round(vx + (cx + cw) * vw / sensor_w)
        y0, y1 = round(vy + cy * vh / sensor_h), round(vy + (cy + ch) * vh / sensor_h)
        return x0, y0, max(x1 - x0, 2), max(y1 - y0, 2)

    def capture(self) -> av.VideoFrame:
        frame = self._render(self.size, "yuv420p", stamp=True)
        return timestamp.stamp(frame) if self._stamp_time else frame

    def capture_still(self) -> np.ndarray:
        frame = self._render(self.sensor_resolution, "rgb24", stamp=False)
        still: np.ndarray = frame.to_ndarray(format="rgb24")
        return still

    def _render(self, size: tuple[int, int], out_format: str, *, stamp: bool) -> av.VideoFrame:
        taken_ns = time.monotonic_ns()
        with self._lock:
            self._af.update(self._clock())
            crop, tone, chroma = self._crop, self._tone, self._chroma
            matrix, card = self._matrix, self._card
            error = self._af.lens - self._af.subject
            if stamp:
                previous = self._frame_ns
                self._frame_ns = taken_ns if previous is None else max(taken_ns, previous + 1)
        x, y, w, h = self.crop_region(crop)
        blur_to = fx.defocus_size((crop[2], crop[3]), (w, h), error)
        # The scene is still: the same view, size and effects give the same picture, so
        # the last one is reused (a sensor costs its host nothing; rendering it here
        # costs a third of a core at 720p30, which the benchmarks would otherwise pay).
        # ToneMap and chroma tables are replaced, never modified, when controls change.
        key = (x, y, w, h, size, out_format, id(tone), id(chroma), blur_to, id(matrix), id(card))
        cached = self._last_render
        if cached is not None and cached[0] == key and cached[2] is tone and cached[3] is chroma:
            return cached[1]
        region = self._scene[y : y + h, x : x + w]
        copy = tone is not None or matrix is not None or card is not None
        pixels = np.array(region, order="C") if copy else np.ascontiguousarray(region)
        if card is not None:
            colour_sim.paste_card(pixels, (x, y, w, h), card)
        if matrix is not None:
            colour_sim.apply_matrix(pixels, matrix)
        frame = fx.render(pixels, size, out_format, tone=tone, chroma=chroma, blur_to=blur_to)
        self._last_render = (key, frame, tone, chroma)
        return frame

    def set_controls(self, controls: Mapping[str, Any]) -> None:
        """Validate every control, then apply them all (or none: ``ValueError`` names it)."""
        values = {name: self._validate(name, value) for name, value in controls.items()}
        with self._lock:
            now = self._clock()
            self._af.update(now)
            if "AfMode" in values:  # before LensPosition/AfTrigger, as libcamera does
                self._af.set_mode(values["AfMode"], now)
            if "LensPosition" in values:
                self._af.set_lens(values["LensPosition"])
            if "AfTrigger" in values:
                self._af.trigger(values["AfTrigger"], now)
            awb_enable = values.get("AwbEnable")
            ccm = values.get("ColourCorrectionMatrix")
            if "ColourGains" in values:  # picamera2: "setting these numbers disables AWB"
                self._manual_gains = values["ColourGains"]
                awb_enable = False if awb_enable is None else awb_enable
            elif awb_enable is False and self._awb_enable:  # freeze the gains in use
                self._manual_gains = self._gains()
            self._awb_mode = values.get("AwbMode", self._awb_mode)
            self._awb_enable = self._awb_enable if awb_enable is None else awb_enable
            if self._awb_enable:  # AWB picks the matrix, as the Pi's IPA does
                if ccm is not None:
                    _LOGGER.debug("ColourCorrectionMatrix ignored while AWB is on")
                self._ccm = colour_sim.IDENTITY
            elif ccm is not None:
                self._ccm = ccm
            self._brightness = values.get("Brightness", self._brightness)
            self._contrast = values.get("Contrast", self._contrast)
            self._saturation = values.get("Saturation", self._saturation)
            self._crop = values.get("ScalerCrop", self._crop)
            self._update_colour()
        _LOGGER.debug("camera controls set: %s", values)

    def _update_colour(self) -> None:
        """Rebuild the colour tables from the controls and the lighting (lock held)."""
        red, blue = self._gains()
        multipliers = (red / NEUTRAL_GAINS[0], 1.0, blue / NEUTRAL_GAINS[1])
        linear = self._lighting != colour_sim.IDENTITY or self._ccm != colour_sim.IDENTITY
        self._matrix = (
            colour_sim.colour_matrix(self._lighting, multipliers, self._ccm) if linear else None
        )
        curve_gains = (1.0, 1.0, 1.0) if linear else multipliers
        self._tone = fx.tone_map(curve_gains, self._brightness, self._contrast)
        self._chroma = fx.chroma_lut(self._saturation)

    def set_lighting(self, lighting: tuple[float, ...]) -> None:
        """Sim only: the room's light, a row-major 3×3 linear-RGB matrix (see colour_sim)."""
        if len(lighting) != 9 or not all(math.isfinite(v) for v in lighting):
            raise ValueError("lighting must be 9 finite numbers")
        with self._lock:
            self._lighting = tuple(float(v) for v in lighting)
            self._update_colour()

    def hold_card(self, centre: tuple[float, float] = (0.5, 0.5), width: float = 0.3) -> None:
        """Sim only: hold the 24-patch card up where the view is now: centred at ``centre``
        (fractions of the view), ``width`` of the view wide. It stays there in the scene."""
        if not (0.0 <= centre[0] <= 1.0 and 0.0 <= centre[1] <= 1.0 and 0.02 <= width <= 1.0):
            raise ValueError("the card's centre must be inside the view, 2..100 % wide")
        x, y, w, h = self.crop_region()
        image = colour_sim.card_image(max(round(width * w), 24))
        ch, cw = image.shape[:2]
        card = colour_sim.HeldCard(
            round(x + centre[0] * w - cw / 2), round(y + centre[1] * h - ch / 2), image
        )
        with self._lock:
            self._card = card

    def drop_card(self) -> None:
        """Sim only: take the card away."""
        with self._lock:
            self._card = None

    def _validate(self, name: str, value: Any) -> Any:
        if name in ("AfMode", "AwbMode"):
            return _integer(name, value, range(3) if name == "AfMode" else range(7))
        if name == "AfTrigger":
            return _integer(name, value, range(2))
        if name == "LensPosition":
            return _real(name, value, LENS_MIN, LENS_MAX)
        if name == "AwbEnable":
            if isinstance(value, bool | np.bool_) or (
                isinstance(value, numbers.Integral) and value in (0, 1)
            ):
                return bool(value)
            raise ValueError(f"AwbEnable must be a boolean, got {value!r}")
        if name == "ColourGains":
            red, blue = _sequence(name, value, 2)
            return _real(name, red, 0.0, 32.0), _real(name, blue, 0.0, 32.0)
        if name == "ColourCorrectionMatrix":
            items = _sequence(name, value, 9)
            return tuple(_real(name, v, -16.0, 16.0) for v in items)
        if name == "Brightness":
            return _real(name, value, -1.0, 1.0)
        if name in ("Contrast", "Saturation"):
            return _real(name, value, 0.0, 32.0)
        if name == "ScalerCrop":
            sensor_w, sensor_h = self.sensor_resolution
            items = _sequence(name, value, 4)
            if any(isinstance(v, bool) or not isinstance(v, numbers.Integral) for v in items):
                raise ValueError(f"ScalerCrop must be 4 integers (x, y, w, h), got {value!r}")
            x, y, w, h = (int(v) for v in items)
            if not (0 <= x < sensor_w and 0 <= y < sensor_h):
                raise ValueError(f"ScalerCrop origin ({x}, {y}) is outside the sensor")
            if not (0 < w <= sensor_w and 0 < h <= sensor_h):
                raise ValueError(f"ScalerCrop size {w}×{h} must be 1..{sensor_w}×1..{sensor_h}")
            return fit_scaler_crop((x, y, w, h), (sensor_w, sensor_h))
        raise ValueError(f"unknown control {name!r}; known: {', '.join(CONTROLS)}")

    def _gains(self) -> tuple[float, float]:
        return AWB_MODE_GAINS[self._awb_mode] if self._awb_enable else self._manual_gains

    def metadata(self) -> dict[str, Any]:
        """Current controls (ScalerCrop as applied) and ``FrameTimestamp`` (ns, or None)."""
        with self._lock:
            self._af.update(self._clock())
            return {
                "AfMode": self._af.mode,
                "AfState": self._af.state,
                "LensPosition": self._af.lens,
                "AwbEnable": self._awb_enable,
                "AwbMode": self._awb_mode,
                "ColourGains": self._gains(),
                "ColourCorrectionMatrix": self._ccm,
                "Brightness": self._brightness,
                "Contrast": self._contrast,
                "Saturation": self._saturation,
                "ScalerCrop": self._crop,
                "FrameTimestamp": self._frame_ns,
            }

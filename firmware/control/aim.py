"""Click to centre and drag to zoom: where to turn the head and how to crop the sensor.

Pure geometry, the same on a Pi and in the simulation. A point of the *displayed*
frame, normalized to [0, 1] (x right, y down), is taken through the camera's current
``ScalerCrop`` (the displayed frame is that part of the sensor, possibly off-centre)
to a sensor pixel, then through the lens model (:class:`~firmware.hardware.lens.Lens`,
field of view from the rig's configuration) to the direction it shows. The head turns
to look along that direction, clamped to the rig's soft limits (from its calibration);
whatever a limit keeps the head from turning is made up by moving the crop on the
sensor, as far as the sensor reaches.

The crop keeps the sensor's aspect ratio (libcamera adjusts any other to it) and is at
least ``1/max_zoom`` of the sensor.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from firmware.hardware.lens import Lens

Crop = tuple[int, int, int, int]
Clamp = Callable[[float, float], tuple[float, float]]


@dataclass(frozen=True)
class Aim:
    """Where the head goes and the sensor crop to stream from there."""

    pan: float
    tilt: float
    crop: Crop
    target: tuple[float, float]  # the direction to show in the crop's centre

    def zoom(self, sensor: tuple[int, int]) -> float:
        return sensor[0] / self.crop[2]


def current_crop(metadata: Mapping[str, Any], sensor: tuple[int, int]) -> Crop:
    """The crop the camera applies now (the whole sensor when it reports none)."""
    crop = metadata.get("ScalerCrop")
    if not crop or len(crop) != 4:
        return 0, 0, sensor[0], sensor[1]
    x, y, w, h = (int(v) for v in crop)
    return x, y, w, h


def sensor_offset(x: float, y: float, crop: Crop, sensor: tuple[int, int]) -> tuple[float, float]:
    """Normalized offset (u right, v up; ±1 at the sensor's edges) of display point (x, y)."""
    sx, sy = crop[0] + x * crop[2], crop[1] + y * crop[3]
    half_w, half_h = sensor[0] / 2, sensor[1] / 2
    return (sx - half_w) / half_w, (half_h - sy) / half_h


def crop_around(
    sx: float, sy: float, width: float, sensor: tuple[int, int], max_zoom: float
) -> Crop:
    """A crop at the sensor's aspect, ``width`` wide (within 1/max_zoom … 1 of the sensor),
    centred on sensor pixel (sx, sy) as nearly as the sensor allows."""
    sensor_w, sensor_h = sensor
    width = min(max(width, sensor_w / max_zoom), sensor_w)
    w = min(round(width / 2) * 2, sensor_w)
    h = min(round(w * sensor_h / sensor_w / 2) * 2, sensor_h)
    x = min(max(round(sx - w / 2), 0), sensor_w - w)
    y = min(max(round(sy - h / 2), 0), sensor_h - h)
    return x, y, w, h


def _to_sensor(u: float, v: float, sensor: tuple[int, int]) -> tuple[float, float]:
    u, v = min(max(u, -2.0), 2.0), min(max(v, -2.0), 2.0)  # far out of view: as far as 2×
    return sensor[0] / 2 * (1 + u), sensor[1] / 2 * (1 - v)


@dataclass(frozen=True)
class View:
    """What the camera does now: lens, sensor, crop, head position and its limits."""

    lens: Lens
    sensor: tuple[int, int]
    crop: Crop
    pan: float
    tilt: float
    clamp: Clamp
    max_zoom: float

    def direction(self, x: float, y: float) -> tuple[float, float]:
        """(pan, tilt) of what display point (x, y) shows."""
        return self.lens.direction(
            *sensor_offset(x, y, self.crop, self.sensor), self.pan, self.tilt
        )


def look_at(view: View, x: float, y: float) -> Aim:
    """Centre display point (x, y), keeping the zoom."""
    target = view.direction(x, y)
    pan, tilt = view.clamp(*target)
    sx, sy = _to_sensor(*view.lens.offset(*target, pan, tilt), view.sensor)
    return Aim(pan, tilt, crop_around(sx, sy, view.crop[2], view.sensor, view.max_zoom), target)


def frame_box(view: View, x: float, y: float, width: float, height: float) -> Aim:
    """Centre the display box (x, y, width, height) and zoom so that it fills the view
    (the whole box inside, aspect kept, no more than ``max_zoom``)."""
    target = view.direction(x + width / 2, y + height / 2)
    pan, tilt = view.clamp(*target)
    # The box's outline as seen from where the head will be (a rectilinear lens magnifies
    # off-axis: the same box is smaller in the middle of the sensor).
    xs, ys = [], []
    for i in range(3):
        for j in range(3):
            if i == j == 1:
                continue
            edge = view.direction(x + width * i / 2, y + height * j / 2)
            sx, sy = _to_sensor(*view.lens.offset(*edge, pan, tilt), view.sensor)
            xs.append(sx)
            ys.append(sy)
    box_w, box_h = max(xs) - min(xs), max(ys) - min(ys)
    crop_w = max(box_w, box_h * view.sensor[0] / view.sensor[1])
    centre = (max(xs) + min(xs)) / 2, (max(ys) + min(ys)) / 2
    return Aim(pan, tilt, crop_around(*centre, crop_w, view.sensor, view.max_zoom), target)


def follow_head(view: View, aim: Aim, head: tuple[float, float]) -> Crop:
    """The aim's crop moved for where the head really is (the servo's pulses come in
    steps: 0.59° on a PCA9685 at 50 Hz, a tenth of an 8× view), as far as the sensor
    allows; ``view`` gives the lens, sensor and maximum zoom."""
    meant = _to_sensor(*view.lens.offset(*aim.target, aim.pan, aim.tilt), view.sensor)
    real = _to_sensor(*view.lens.offset(*aim.target, *head), view.sensor)
    x, y, w, _ = aim.crop
    centre_x = x + w / 2 + real[0] - meant[0]
    centre_y = y + aim.crop[3] / 2 + real[1] - meant[1]
    return crop_around(centre_x, centre_y, w, view.sensor, view.max_zoom)

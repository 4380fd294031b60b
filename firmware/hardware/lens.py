"""How a camera's lens maps directions onto its sensor, for a camera on a pan-tilt head.

Two models:

* ``rectilinear``: a pinhole (the Camera Module 3's lenses). A point at normalized
  sensor offset (u, v) ∈ [-1, 1]² from the optical centre lies along the ray
  ``(u·tan(hfov/2), v·tan(vfov/2), 1)`` in the camera's frame; turning that ray by the
  head's tilt, then its pan, gives the pan and tilt that look straight at it.
* ``equirectangular``: sensor position is linear in the head's angles, so a point at
  (u, v) lies at ``(pan + u·hfov/2, tilt + v·vfov/2)``. The simulated camera renders
  this way (its scene is laid out in pan/tilt degrees: see
  :mod:`~firmware.hardware.camera_sim`).

Offsets: u + is right, v + is up; pan + is right, tilt + is up (degrees).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

Projection = Literal["rectilinear", "equirectangular"]


@dataclass(frozen=True)
class Lens:
    """The full-sensor field of view and the projection of one camera."""

    hfov_deg: float
    vfov_deg: float
    projection: Projection = "rectilinear"

    def direction(self, u: float, v: float, pan: float, tilt: float) -> tuple[float, float]:
        """(pan, tilt) that looks at the point seen at sensor offset (u, v) from (pan, tilt)."""
        if self.projection == "equirectangular":
            return pan + u * self.hfov_deg / 2, tilt + v * self.vfov_deg / 2
        x = u * math.tan(math.radians(self.hfov_deg / 2))
        y = v * math.tan(math.radians(self.vfov_deg / 2))
        wx, wy, wz = _to_world((x, y, 1.0), pan, tilt)
        return math.degrees(math.atan2(wx, wz)), math.degrees(math.atan2(wy, math.hypot(wx, wz)))

    def offset(
        self, target_pan: float, target_tilt: float, pan: float, tilt: float
    ) -> tuple[float, float]:
        """Sensor offset (u, v) at which the head at (pan, tilt) sees the target direction.

        Outside [-1, 1] when the target is out of view (``inf`` behind the camera).
        """
        if self.projection == "equirectangular":
            return (
                (target_pan - pan) / (self.hfov_deg / 2),
                (target_tilt - tilt) / (self.vfov_deg / 2),
            )
        p, t = math.radians(target_pan), math.radians(target_tilt)
        world = (math.sin(p) * math.cos(t), math.sin(t), math.cos(p) * math.cos(t))
        x, y, z = _to_camera(world, pan, tilt)
        if z <= 1e-9:
            return math.inf, math.inf
        return (
            x / z / math.tan(math.radians(self.hfov_deg / 2)),
            y / z / math.tan(math.radians(self.vfov_deg / 2)),
        )


def _axes(
    pan: float, tilt: float
) -> tuple[tuple[float, float, float], tuple[float, float, float], tuple[float, float, float]]:
    """The camera's right, up and forward unit vectors in the world (x right, y up, z ahead)."""
    p, t = math.radians(pan), math.radians(tilt)
    right = (math.cos(p), 0.0, -math.sin(p))
    up = (-math.sin(p) * math.sin(t), math.cos(t), -math.cos(p) * math.sin(t))
    forward = (math.sin(p) * math.cos(t), math.sin(t), math.cos(p) * math.cos(t))
    return right, up, forward


def _to_world(ray: tuple[float, float, float], pan: float, tilt: float) -> tuple[float, ...]:
    right, up, forward = _axes(pan, tilt)
    return tuple(
        ray[0] * r + ray[1] * u + ray[2] * f for r, u, f in zip(right, up, forward, strict=True)
    )


def _to_camera(world: tuple[float, float, float], pan: float, tilt: float) -> tuple[float, ...]:
    return tuple(sum(a * b for a, b in zip(axis, world, strict=True)) for axis in _axes(pan, tilt))

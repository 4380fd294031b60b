"""The interfaces the rest of the firmware sees; backends are chosen by config."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import av
import numpy as np

from firmware.hardware.lens import Lens


class PanTilt(Protocol):
    """A two-axis head. Degrees are relative to the rig's centre: pan + right, tilt + up."""

    @property
    def position(self) -> tuple[float, float]:
        """The last commanded (pan, tilt); hobby servos report no position of their own."""
        ...

    @property
    def limits(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """Soft limits ((pan min, pan max), (tilt min, tilt max)) from the calibration."""
        ...

    def move_to(self, pan: float, tilt: float) -> tuple[float, float]:
        """Drive to (pan, tilt), clamped to the soft limits; returns the target used."""
        ...

    def driven(self) -> tuple[float, float]:
        """Where the pulses now written send the head: :attr:`position` to the PWM's
        resolution (read back from the driver), for aiming finer than its steps."""
        ...

    def release(self) -> None:
        """Stop driving the servos (full-off PWM)."""
        ...


class Camera(Protocol):
    """A camera that produces frames for the stream encoder.

    Controls use libcamera's names and units (as picamera2 does), so one command works
    on the real Camera Module 3 and on the simulation: ``AfMode`` (0 manual,
    1 auto, 2 continuous), ``AfTrigger`` (0 start, 1 cancel), ``LensPosition``
    (dioptres, 0 = infinity .. 15), ``AwbEnable`` (bool), ``AwbMode`` (0 auto,
    1 incandescent, 2 tungsten, 3 fluorescent, 4 indoor, 5 daylight, 6 cloudy),
    ``ColourGains`` ((red, blue), 0..32), ``ColourCorrectionMatrix`` (9 numbers, row-major,
    -16..16; taken with AWB off only), ``Brightness`` (-1..1, 0 neutral),
    ``Contrast`` (0..32, 1 neutral), ``Saturation`` (0..32, 1 neutral) and
    ``ScalerCrop`` ((x, y, w, h) in sensor pixels).
    """

    @property
    def size(self) -> tuple[int, int]:
        """Stream width and height in pixels."""
        ...

    @property
    def sensor_resolution(self) -> tuple[int, int]:
        """Full sensor size in pixels (ScalerCrop coordinates, still captures)."""
        ...

    @property
    def lens(self) -> Lens:
        """Full-sensor field of view and projection (click to centre, drag to zoom)."""
        ...

    def capture(self) -> av.VideoFrame:
        """The current view as a yuv420p frame of :attr:`size`."""
        ...

    def configure_stream(self, width: int, height: int, fps: int) -> None:
        """Produce frames of ``width`` × ``height`` at ``fps`` from now on."""
        ...

    def set_controls(self, controls: Mapping[str, Any]) -> None:
        """Apply libcamera controls (validated by the caller)."""
        ...

    def metadata(self) -> dict[str, Any]:
        """Current control values and state, e.g. ``LensPosition``, ``AfState``."""
        ...

    def capture_still(self) -> np.ndarray:
        """A full-sensor-resolution RGB still (H, W, 3) uint8, taken while streaming."""
        ...

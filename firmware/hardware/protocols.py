"""The interfaces the rest of the firmware sees; backends are chosen by config."""

from __future__ import annotations

from typing import Protocol

import av


class PanTilt(Protocol):
    """A two-axis head. Degrees are relative to the rig's centre: pan + right, tilt + up."""

    @property
    def position(self) -> tuple[float, float]:
        """The last commanded (pan, tilt); hobby servos report no position of their own."""
        ...

    def move_to(self, pan: float, tilt: float) -> tuple[float, float]:
        """Drive to (pan, tilt), clamped to the soft limits; returns the target used."""
        ...

    def release(self) -> None:
        """Stop driving the servos (full-off PWM)."""
        ...


class Camera(Protocol):
    """A camera that produces frames for the stream encoder."""

    @property
    def size(self) -> tuple[int, int]:
        """Stream width and height in pixels."""
        ...

    def capture(self) -> av.VideoFrame:
        """The current view as a yuv420p frame of :attr:`size`."""
        ...

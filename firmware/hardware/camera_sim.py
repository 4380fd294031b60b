"""A virtual camera: a viewport over the generated scene that follows the pan-tilt head.

It looks where the *simulated servos* physically point (read from their model of the
PCA9685 pulses), not where the driver meant them to, so a wrong register shows up
as a wrong picture.
"""

from __future__ import annotations

from collections.abc import Callable

import av
import numpy as np

from firmware.config import CameraConfig


class VirtualCamera:
    """A :class:`~firmware.hardware.protocols.Camera` rendering from a scene image."""

    def __init__(
        self,
        scene: np.ndarray,
        px_per_deg: float,
        pointing: Callable[[], tuple[float, float]],
        config: CameraConfig,
    ) -> None:
        self._scene = scene
        self._ppd = px_per_deg
        self._pointing = pointing
        self._config = config
        self._view_w = min(round(config.hfov_deg * px_per_deg), scene.shape[1]) // 2 * 2
        self._view_h = min(round(config.vfov_deg * px_per_deg), scene.shape[0]) // 2 * 2

    @property
    def size(self) -> tuple[int, int]:
        return self._config.width, self._config.height

    def viewport(self) -> tuple[int, int, int, int]:
        """(x, y, w, h) of the scene region in view, for where the head points now."""
        pan, tilt = self._pointing()
        height, width = self._scene.shape[:2]
        cx = width / 2 + pan * self._ppd
        cy = height / 2 - tilt * self._ppd
        x = round(min(max(cx - self._view_w / 2, 0), width - self._view_w))
        y = round(min(max(cy - self._view_h / 2, 0), height - self._view_h))
        return x, y, self._view_w, self._view_h

    def capture(self) -> av.VideoFrame:
        x, y, w, h = self.viewport()
        crop = np.ascontiguousarray(self._scene[y : y + h, x : x + w])
        frame = av.VideoFrame.from_ndarray(crop, format="rgb24")
        width, height = self.size
        return frame.reformat(width=width, height=height, format="yuv420p")

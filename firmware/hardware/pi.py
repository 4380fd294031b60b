"""Real Raspberry Pi hardware: I2C through Blinka, Camera Module 3 through picamera2.

Imported only when ``backend = "pi"``: picamera2 probes the hardware at import.
On a Pi 4 the live stream is encoded by the VideoCore's H.264 block, fed by picamera2
(:mod:`firmware.hardware.pi_encoder`); on a Pi 5 (no such block) frames are taken as
YUV420 and go through the same software encoder as the simulation. Not yet run on a Pi
in CI (no hardware there): the simulation above the same Protocol is what the tests
exercise.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import av
import numpy as np

from firmware.config import ApplianceConfig, CameraConfig
from firmware.hardware.lens import Lens
from firmware.hardware.pantilt import ServoPanTilt


class PiCamera:
    """Camera Module 3 via picamera2, producing yuv420p frames of the stream size."""

    def __init__(self, config: CameraConfig) -> None:
        from picamera2 import Picamera2

        self._config = config
        self._lock = threading.Lock()
        self._cam: Any = Picamera2()
        self._video = self._cam.create_video_configuration(
            main={"size": (config.width, config.height), "format": "YUV420"},
            controls={"FrameRate": config.fps, "AfMode": 2},
        )
        self._still = self._cam.create_still_configuration(main={"format": "RGB888"})
        self._cam.configure(self._video)
        self._cam.start()
        self._controls: dict[str, Any] = {"AfMode": 2}
        self._size = (config.width, config.height)

    @property
    def picamera2(self) -> Any:
        """The Picamera2 object, for the hardware encoder."""
        return self._cam

    @property
    def size(self) -> tuple[int, int]:
        return self._size

    def configure_stream(self, width: int, height: int, fps: int) -> None:
        with self._lock:
            self._cam.stop()
            self._video = self._cam.create_video_configuration(
                main={"size": (width, height), "format": "YUV420"},
                controls={"FrameRate": fps, **self._controls},
            )
            self._cam.configure(self._video)
            self._cam.start()
            self._size = (width, height)

    @property
    def sensor_resolution(self) -> tuple[int, int]:
        width, height = self._cam.sensor_resolution
        return int(width), int(height)

    @property
    def lens(self) -> Lens:
        """The Camera Module 3's lenses are rectilinear; the field of view is configured."""
        return Lens(self._config.hfov_deg, self._config.vfov_deg, "rectilinear")

    def capture(self) -> av.VideoFrame:
        planes = self._cam.capture_array("main")
        return av.VideoFrame.from_ndarray(planes, format="yuv420p")

    def set_controls(self, controls: Mapping[str, Any]) -> None:
        with self._lock:
            self._cam.set_controls(dict(controls))
            self._controls.update(controls)

    def metadata(self) -> dict[str, Any]:
        meta = dict(self._controls)
        meta.update(self._cam.capture_metadata())
        return meta

    def capture_still(self) -> np.ndarray:
        # The stream pauses for the mode switch (about half a second) and resumes.
        still: np.ndarray = self._cam.switch_mode_and_capture_array(self._still, "main")
        return still[:, :, ::-1].copy()  # picamera2's RGB888 is BGR in memory

    def close(self) -> None:
        self._cam.stop()
        self._cam.close()


def build_pi_hardware(config: ApplianceConfig) -> tuple[ServoPanTilt, PiCamera]:
    """The pan-tilt on the Pi's I2C bus and the camera."""
    import board

    pantilt = ServoPanTilt(config.pantilt, i2c=board.I2C())
    return pantilt, PiCamera(config.camera)

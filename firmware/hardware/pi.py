"""Real Raspberry Pi hardware: I2C through Blinka, Camera Module 3 through picamera2.

Imported only when ``backend = "pi"``: picamera2 probes the hardware at import.
The frames are taken as YUV420 and go through the same stream encoder as the
simulation; handing the Pi 4's hardware encoder output straight to the track is
the next step (issue 3).
"""

from __future__ import annotations

from typing import Any

import av

from firmware.config import ApplianceConfig, CameraConfig
from firmware.hardware.pantilt import ServoPanTilt


class PiCamera:
    """Camera Module 3 via picamera2, producing yuv420p frames of the stream size."""

    def __init__(self, config: CameraConfig) -> None:
        from picamera2 import Picamera2

        self._config = config
        self._cam: Any = Picamera2()
        video = self._cam.create_video_configuration(
            main={"size": (config.width, config.height), "format": "YUV420"},
            controls={"FrameRate": config.fps},
        )
        self._cam.configure(video)
        self._cam.start()

    @property
    def size(self) -> tuple[int, int]:
        return self._config.width, self._config.height

    def capture(self) -> av.VideoFrame:
        planes = self._cam.capture_array("main")
        return av.VideoFrame.from_ndarray(planes, format="yuv420p")

    def close(self) -> None:
        self._cam.stop()
        self._cam.close()


def build_pi_hardware(config: ApplianceConfig) -> tuple[ServoPanTilt, PiCamera]:
    """The pan-tilt on the Pi's I2C bus and the camera."""
    import board

    pantilt = ServoPanTilt(config.pantilt, i2c=board.I2C())
    return pantilt, PiCamera(config.camera)

"""Focus, colour and zoom commands, translated into libcamera controls."""

from __future__ import annotations

import logging
from typing import Any

from clinicam.protocol import (
    AWB_MODES,
    LENS_MAX_DIOPTRES,
    Colour,
    ColourState,
    Focus,
    FocusState,
    Zoom,
)
from firmware.hardware.protocols import Camera

_LOGGER = logging.getLogger(__name__)

AF_MODES = {0: "manual", 1: "auto", 2: "continuous"}
AF_STATES = {0: "idle", 1: "scanning", 2: "focused", 3: "failed"}


def scaler_crop(sensor: tuple[int, int], level: float) -> tuple[int, int, int, int]:
    """A crop of the sensor centred on the view, ``level`` times smaller on each side."""
    width, height = sensor
    w, h = round(width / level) // 2 * 2, round(height / level) // 2 * 2
    return (width - w) // 2, (height - h) // 2, w, h


class ImagingCommands:
    """Applies focus, colour and zoom to a :class:`Camera`; reads their state back."""

    def __init__(self, camera: Camera) -> None:
        self._camera = camera

    def focus(self, command: Focus) -> None:
        controls: dict[str, Any]
        if command.mode == "auto":
            controls = {"AfMode": 1, "AfTrigger": 0}
        elif command.mode == "continuous":
            controls = {"AfMode": 2}
        elif command.mode == "manual":
            controls = {"AfMode": 0, "LensPosition": command.lens_position}
        else:
            current = float(self._camera.metadata().get("LensPosition", 0.0))
            step = command.step or 0.0
            controls = {
                "AfMode": 0,
                "LensPosition": min(max(current + step, 0.0), LENS_MAX_DIOPTRES),
            }
        self._camera.set_controls(controls)

    def refocus(self) -> bool:
        """After a large move: a one-shot autofocus if the camera is in one-shot mode."""
        if self._camera.metadata().get("AfMode") == 1:
            self._camera.set_controls({"AfTrigger": 0})
            return True
        return False

    def colour(self, command: Colour) -> None:
        controls: dict[str, Any] = {}
        if command.awb is not None:
            controls.update(AwbEnable=True, AwbMode=AWB_MODES.index(command.awb))
        if command.gains is not None:
            controls.update(AwbEnable=False, ColourGains=tuple(command.gains))
        for name, value in (
            ("Brightness", command.brightness),
            ("Contrast", command.contrast),
            ("Saturation", command.saturation),
        ):
            if value is not None:
                controls[name] = value
        self._camera.set_controls(controls)

    def zoom(self, command: Zoom) -> None:
        self._camera.set_controls(
            {"ScalerCrop": scaler_crop(self._camera.sensor_resolution, command.level)}
        )

    def zoom_level(self) -> float:
        crop = self._camera.metadata().get("ScalerCrop")
        if not crop:
            return 1.0
        return round(self._camera.sensor_resolution[0] / float(crop[2]), 3)

    def focus_state(self) -> FocusState:
        meta = self._camera.metadata()
        return FocusState(
            mode=AF_MODES.get(int(meta.get("AfMode", 2)), "continuous"),
            lens_position=round(float(meta.get("LensPosition", 0.0)), 3),
            af_state=AF_STATES.get(int(meta.get("AfState", 0)), "idle"),
        )

    def colour_state(self) -> ColourState:
        meta = self._camera.metadata()
        awb_on = bool(meta.get("AwbEnable", True))
        gains = meta.get("ColourGains")
        return ColourState(
            awb=AWB_MODES[int(meta.get("AwbMode", 0))] if awb_on else None,
            gains=None if awb_on or gains is None else (float(gains[0]), float(gains[1])),
            brightness=float(meta.get("Brightness", 0.0)),
            contrast=float(meta.get("Contrast", 1.0)),
            saturation=float(meta.get("Saturation", 1.0)),
        )

"""What the appliance does with each command domain, and the state it reports."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Mapping
from typing import Any

from clinicam import __version__
from clinicam.protocol import (
    AWB_MODES,
    LENS_MAX_DIOPTRES,
    MAX_PRESETS,
    ZOOM_MAX,
    ApplianceState,
    Colour,
    ColourCalibrate,
    Focus,
    PresetDelete,
    PresetGoto,
    PresetSave,
    Privacy,
    PtzAbsolute,
    PtzContinuous,
    PtzFrame,
    PtzHome,
    PtzLookAt,
    PtzRelative,
    PtzState,
    PtzStop,
    Snapshot,
    StreamSettings,
    UpdateStatus,
    Zoom,
)
from firmware.config import MotionConfig
from firmware.control.aim import Aim, View, current_crop, follow_head, frame_box, look_at
from firmware.control.colour_calibration import ColourCalibrator
from firmware.control.imaging import ImagingCommands
from firmware.control.motion import MotionController
from firmware.control.presets import Preset, PresetStore
from firmware.control.router import CommandFailed, DomainHandler, Result
from firmware.control.snapshot import SnapshotTaker
from firmware.hardware.gpio import PrivacySwitch
from firmware.hardware.protocols import Camera
from firmware.media.output import StreamOutput

_LOGGER = logging.getLogger(__name__)


class DeviceControl:
    """The appliance's meaning layer: motion, presets, imaging, snapshots, privacy."""

    def __init__(
        self,
        *,
        motion: MotionController,
        camera: Camera,
        presets: PresetStore,
        snapshots: SnapshotTaker,
        privacy: PrivacySwitch,
        motion_config: MotionConfig,
        stream: StreamOutput | None = None,
        model_version: Callable[[], str | None] = lambda: None,
        relevance: DomainHandler | None = None,
        updates: DomainHandler | None = None,
        update_status: Callable[[], UpdateStatus | None] = lambda: None,
        calibrator: ColourCalibrator | None = None,
    ) -> None:
        self.motion = motion
        self.imaging = ImagingCommands(camera)
        self._camera = camera
        self.presets = presets
        self._snapshots = snapshots
        self.privacy = privacy
        self._motion_config = motion_config
        self._stream = stream
        self._model_version = model_version
        self._relevance = relevance
        self._updates = updates
        self._update_status = update_status
        self.calibrator = calibrator
        self._following: asyncio.Task[None] | None = None
        self.on_aimed: Callable[[], None] | None = None  # the crop of an aim is applied

    def handlers(self) -> Mapping[str, DomainHandler]:
        extra = {"model": self._relevance} if self._relevance is not None else {}
        if self._updates is not None:
            extra["appliance"] = self._updates
        return extra | {
            "ptz": self._ptz,
            "preset": self._preset,
            "focus": self._focus,
            "colour": self._colour,
            "zoom": self._zoom,
            "snapshot": self._snapshot,
            "privacy": self._privacy,
            "stream": self._stream_settings,
        }

    def restore_colour(self) -> None:
        """At start: the calibration of the lighting preset the camera starts in, if kept."""
        if self.calibrator is not None:
            controls = self.calibrator.controls_for(self.calibrator.lighting)
            if controls is not None:
                self._camera.set_controls(controls)

    def state(self) -> ApplianceState:
        pan, tilt = self.motion.target
        return ApplianceState(
            ptz=PtzState(pan=round(pan, 3), tilt=round(tilt, 3), moving=self.motion.moving),
            zoom=self.imaging.zoom_level(),
            focus=self.imaging.focus_state(),
            colour=self.imaging.colour_state().model_copy(
                update={"calibration": self.calibrator.state() if self.calibrator else None}
            ),
            stream=self._stream.state() if self._stream is not None else None,
            privacy=self.privacy.is_private,
            model_version=self._model_version(),
            version=__version__,
            update=self._update_status(),
        )

    def capabilities(self, encoder: Mapping[str, Any]) -> dict[str, Any]:
        (pan_min, pan_max), (tilt_min, tilt_max) = self.motion.limits
        sensor_w, sensor_h = self._camera.sensor_resolution
        return {
            "pan": {"min": pan_min, "max": pan_max},
            "tilt": {"min": tilt_min, "max": tilt_max},
            "max_speed_deg_s": self._motion_config.max_speed_deg_s,
            "continuous_timeout_max_s": 1.0,
            "zoom": {"min": 1.0, "max": ZOOM_MAX},
            "lens_position": {"min": 0.0, "max": LENS_MAX_DIOPTRES},
            "awb_modes": list(AWB_MODES),
            "presets": {
                "slots": MAX_PRESETS,
                "saved": {str(k): p.model_dump() for k, p in self.presets.all().items()},
            },
            "sensor_modes": [
                {"width": sensor_w, "height": sensor_h},
                {"width": sensor_w // 2, "height": sensor_h // 2},
            ],
            "encoder": dict(encoder),
        }

    def _after_move(self, before: tuple[float, float]) -> None:
        threshold = self._motion_config.refocus_after_move_deg
        after = self.motion.target
        if threshold > 0 and math.dist(before, after) >= threshold and self.imaging.refocus():
            _LOGGER.info("refocusing after a %.0f° move", math.dist(before, after))

    async def _ptz(self, command: Any) -> Result:
        self._stop_following()
        before = self.motion.target
        if isinstance(command, PtzRelative):
            self.motion.go_by(command.pan, command.tilt)
        elif isinstance(command, PtzAbsolute):
            self.motion.go_to(command.pan, command.tilt)
        elif isinstance(command, PtzContinuous):
            self.motion.continuous(command.pan_speed, command.tilt_speed, command.timeout_s)
        elif isinstance(command, PtzStop):
            self.motion.stop()
        elif isinstance(command, PtzHome):
            self.motion.go_to(0.0, 0.0)
        elif isinstance(command, PtzLookAt | PtzFrame):
            result = self._aim(command)
            self._after_move(before)
            return result
        self._after_move(before)
        return None

    def _aim(self, command: PtzLookAt | PtzFrame) -> Result:
        """Click to centre or drag to zoom, from the camera's own lens, crop and position."""
        sensor = self._camera.sensor_resolution
        pan, tilt = self.motion.driven()  # what the picture shows now (even mid-move)
        view = View(
            lens=self._camera.lens,
            sensor=sensor,
            crop=current_crop(self._camera.metadata(), sensor),
            pan=pan,
            tilt=tilt,
            clamp=self.motion.clamp,
            max_zoom=ZOOM_MAX,
        )
        aim: Aim = (
            look_at(view, command.x, command.y)
            if isinstance(command, PtzLookAt)
            else frame_box(view, command.x, command.y, command.width, command.height)
        )
        self.motion.go_to(aim.pan, aim.tilt)  # first the head turns, then the crop (zoom)
        self._following = asyncio.create_task(self._follow_head(view, aim), name="aim")
        return {
            "pan": round(aim.pan, 3),
            "tilt": round(aim.tilt, 3),
            "zoom": round(aim.zoom(sensor), 3),
        }

    def _stop_following(self) -> None:
        if self._following is not None:
            self._following.cancel()
            self._following = None

    async def _follow_head(self, view: View, aim: Aim) -> None:
        """Once the head has arrived, crop (zoom) for where the servo pulses really put it
        (cancelled by any later move or zoom: see :meth:`_stop_following`)."""
        while self.motion.moving:
            await asyncio.sleep(0.02)
        if self.motion.target != (aim.pan, aim.tilt):
            return
        head = self.motion.driven()
        crop = follow_head(view, aim, head)
        self._camera.set_controls({"ScalerCrop": crop})
        _LOGGER.debug("aim: crop %s for the head at %s", crop, head)
        if self.on_aimed is not None:
            self.on_aimed()

    async def _preset(self, command: Any) -> Result:
        self._stop_following()
        if isinstance(command, PresetSave):
            pan, tilt = self.motion.target
            preset = Preset(name=command.name, pan=pan, tilt=tilt, zoom=self.imaging.zoom_level())
            self.presets.save(command.slot, preset)
            return {"slot": command.slot, "name": command.name}
        if isinstance(command, PresetGoto):
            saved = self.presets.get(command.slot)
            if saved is None:
                raise CommandFailed(f"slot: preset {command.slot} is empty")
            before = self.motion.target
            self.motion.go_to(saved.pan, saved.tilt)
            self.imaging.zoom(Zoom(id=command.id, level=saved.zoom))
            self._after_move(before)
            return {"slot": command.slot, "name": saved.name}
        if isinstance(command, PresetDelete):
            if not self.presets.delete(command.slot):
                raise CommandFailed(f"slot: preset {command.slot} is empty")
            return {"slot": command.slot}
        return None

    async def _focus(self, command: Focus) -> Result:
        self.imaging.focus(command)
        return None

    async def _colour(self, command: Colour | ColourCalibrate) -> Result:
        if isinstance(command, ColourCalibrate):
            if self.calibrator is None:
                raise CommandFailed("this appliance cannot calibrate its colour")
            if self.privacy.is_private:
                raise CommandFailed("privacy mode is on: no pictures are taken")
            return await self.calibrator.calibrate(command.lighting)
        self.imaging.colour(command)
        if self.calibrator is not None:
            if command.awb is not None:  # a lighting preset: its calibration, if it has one
                controls = self.calibrator.controls_for(command.awb)
                if controls is not None:
                    self._camera.set_controls(controls)
            else:
                self.calibrator.forget_current()
        return None

    async def _zoom(self, command: Zoom) -> Result:
        self._stop_following()
        self.imaging.zoom(command)
        return None

    async def _snapshot(self, command: Snapshot) -> Result:
        if self.privacy.is_private:
            raise CommandFailed("privacy mode is on: no pictures are taken")
        return await self._snapshots.take(command)

    async def _stream_settings(self, command: StreamSettings) -> Result:
        if self._stream is None:
            raise CommandFailed("this appliance has no stream to configure")
        problem = self._stream.check(command)
        if problem:
            raise CommandFailed(problem)
        self._stream.update(command)
        return None

    async def _privacy(self, command: Privacy) -> Result:
        self.privacy.set_private(command.enabled, "command")
        if command.enabled:
            self.motion.stop()
        return None

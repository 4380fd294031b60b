"""The appliance program: hardware, MQTT command API and the live stream, wired together."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import signal
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import aiohttp
from aiortc import MediaStreamTrack

from clinicam import sdnotify
from clinicam.ice import restrict_ice_to_loopback
from clinicam.realtime import favour_the_event_loop
from firmware.config import ApplianceConfig
from firmware.control.api import CommandApi
from firmware.control.colour_calibration import CalibrationStore, ColourCalibrator
from firmware.control.device import DeviceControl
from firmware.control.motion import MotionController
from firmware.control.presets import PresetStore
from firmware.control.relevance import RelevanceRunner
from firmware.control.snapshot import SnapshotTaker
from firmware.control.snapshot_upload import SnapshotUploader
from firmware.control.telemetry import Telemetry
from firmware.control.update_request import UpdateRequester
from firmware.hardware.gpio import LightPattern, PrivacySwitch, StatusLight, build_gpio
from firmware.hardware.protocols import Camera, PanTilt
from firmware.media.backfill import BackFiller
from firmware.media.encoders import SoftwareVideoEncoder, VideoEncoder
from firmware.media.microphone import open_microphone
from firmware.media.output import StreamOutput, StreamSettings
from firmware.media.privacy import privacy_frame
from firmware.media.recorder import LocalRecorder
from firmware.media.track import EncodedCameraTrack
from firmware.media.uplink import StreamUplink

_LOGGER = logging.getLogger(__name__)
STATUS_PERIOD_S = 0.5


def build_hardware(config: ApplianceConfig) -> tuple[PanTilt, Camera]:
    """Pick the backend named in the config."""
    if config.backend == "pi":
        from firmware.hardware.pi import build_pi_hardware

        return build_pi_hardware(config)
    from firmware.hardware.sim import build_sim_rig

    rig = build_sim_rig(config)
    return rig.pantilt, rig.camera


@dataclass
class Appliance:
    """Every part of a running appliance."""

    config: ApplianceConfig
    pantilt: PanTilt
    camera: Camera
    light: StatusLight
    privacy: PrivacySwitch
    motion: MotionController
    output: StreamOutput
    control: DeviceControl
    api: CommandApi
    uplink: StreamUplink
    encoder: VideoEncoder
    uploader: SnapshotUploader
    relevance: RelevanceRunner
    updates: UpdateRequester
    recorder: LocalRecorder | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    stopped: bool = False

    def make_track(self) -> EncodedCameraTrack:
        return EncodedCameraTrack(self.encoder, self.output, trace=self.config.camera.frame_trace)

    def make_microphone(self) -> MediaStreamTrack | None:
        if not self.config.microphone.enabled:
            return None
        return open_microphone(
            self.config.backend,
            self.config.microphone.device,
            lambda: self.privacy.is_private,
        )

    def start(self, *, stream: bool = True) -> None:
        """Start motion, MQTT, telemetry, status light and (optionally) the stream."""
        self.motion.start()
        self.api.link.start()
        telemetry = Telemetry(self.api.link, self.output, self.config.telemetry_interval_s)
        self.tasks += [
            asyncio.create_task(telemetry.run(), name="telemetry"),
            asyncio.create_task(self._watch_status(), name="status"),
        ]
        self.tasks.append(asyncio.create_task(self._load_model(), name="model"))
        if stream:
            self.tasks.append(asyncio.create_task(self.encoder.run(), name="encoder"))
            self.tasks.append(asyncio.create_task(self.uplink.run(), name="uplink"))
            if self.recorder is not None:
                filler = BackFiller(
                    self.config.server,
                    self.config.device_id,
                    self.recorder,
                    self.config.recorder,
                    self.uplink.connected,
                    self.output.allowed_kbps,
                )
                self.tasks.append(asyncio.create_task(filler.run(), name="backfill"))
            self.tasks.append(asyncio.create_task(self.uploader.run(), name="snapshots"))

    async def _load_model(self) -> None:
        await asyncio.to_thread(self.relevance.load)
        timeout = aiohttp.ClientTimeout(total=120)
        with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError, ValueError):
            async with aiohttp.ClientSession(timeout=timeout) as http:
                await self.relevance.sync(http)  # follow a model the server promoted
        self.api.publish_state()  # the state carries the model version

    async def stop(self) -> None:
        """Stop everything and release the hardware; safe to call twice."""
        if self.stopped:
            return
        self.stopped = True
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.tasks.clear()
        if self.recorder is not None:
            self.recorder.close()
        await self.relevance.close()
        await self.updates.close()
        await self.motion.close()
        self.api.link.stop()
        self.pantilt.release()
        self.light.close()
        self.privacy.close()

    def status_pattern(self) -> LightPattern:
        if self.privacy.is_private:
            return LightPattern.PRIVACY
        if self.uplink.connected.is_set():
            return LightPattern.STREAMING
        if self.api.link.connected.is_set():
            return LightPattern.ONLINE
        return LightPattern.BOOTING

    async def _watch_status(self) -> None:
        """Keep the status LED and the reported stream state in step with reality."""
        shown: LightPattern | None = None
        update_seen = self.updates.fingerprint()
        while True:
            streaming = self.uplink.connected.is_set()
            update_now = self.updates.fingerprint()  # the root updater writes its result file
            if streaming != self.output.connected or update_now != update_seen:
                self.output.connected = streaming
                update_seen = update_now
                self.api.publish_state()
            pattern = self.status_pattern()
            if pattern != shown:
                self.light.show(pattern)
                shown = pattern
            await asyncio.sleep(STATUS_PERIOD_S)


def build_appliance(
    config: ApplianceConfig,
    *,
    loop: asyncio.AbstractEventLoop,
    hardware: tuple[PanTilt, Camera] | None = None,
    pin_factory: object | None = None,
) -> Appliance:
    """Assemble the appliance; tests pass their own simulated hardware and pin factory."""
    pantilt, camera = hardware if hardware is not None else build_hardware(config)
    light, privacy = build_gpio(config.gpio, backend=config.backend, pin_factory=pin_factory)
    light.show(LightPattern.BOOTING)
    motion = MotionController(pantilt, config.motion)
    cam = config.camera
    output = StreamOutput(
        StreamSettings(cam.width, cam.height, cam.fps, cam.bitrate_kbps, cam.keyframe_interval_s),
        config.backend,
        adaptive=cam.adaptive,
    )
    snapshots = SnapshotTaker(camera, config.state_dir / "snapshots")
    uploader = SnapshotUploader(config.server, config.device_id, config.state_dir / "snapshots")
    snapshots.on_taken = uploader.wake.set
    relevance = RelevanceRunner(
        config.server, config.device_id, config.model, config.state_dir / "models"
    )
    updates = UpdateRequester(config.server, config.device_id, config.state_dir)
    control = DeviceControl(
        motion=motion,
        camera=camera,
        presets=PresetStore(config.state_dir / "presets.json"),
        snapshots=snapshots,
        privacy=privacy,
        motion_config=config.motion,
        stream=output,
        model_version=lambda: relevance.version,
        relevance=relevance.start,
        updates=updates.start,
        update_status=updates.status,
        calibrator=ColourCalibrator(
            camera,
            CalibrationStore(config.state_dir / "colour.json"),
            config.device_id,
            settle_s=0.0 if config.backend == "sim" else 0.5,
        ),
    )
    control.restore_colour()
    api = CommandApi(
        config.mqtt, config.device_id, control, snapshots, encoder=asdict(output.encoder), loop=loop
    )
    appliance = Appliance(
        config,
        pantilt,
        camera,
        light,
        privacy,
        motion,
        output,
        control,
        api,
        uplink=StreamUplink(
            config, lambda: appliance.make_track(), lambda: appliance.make_microphone()
        ),
        uploader=uploader,
        relevance=relevance,
        updates=updates,
        encoder=build_encoder(config, camera, output, lambda: privacy.is_private),
    )
    if config.recorder.enabled:
        appliance.recorder = LocalRecorder(config.state_dir / "recording", config.recorder)
        appliance.encoder.outputs.append(appliance.recorder)
        output.recording = appliance.recorder.figures
    return appliance


def build_encoder(
    config: ApplianceConfig, camera: Camera, output: StreamOutput, private: Callable[[], bool]
) -> VideoEncoder:
    """The Pi 4's hardware H.264 encoder on a Pi, libx264 elsewhere (and on a Pi 5)."""
    card = functools.partial(privacy_frame, locale=config.language)  # in the clinic's language
    if config.backend == "pi":
        from firmware.hardware.pi_encoder import hardware_encoder

        encoder = hardware_encoder(camera, output, private, card)
        if encoder is not None:
            return encoder
        _LOGGER.info("no hardware H.264 encoder: encoding in software")
    return SoftwareVideoEncoder(camera, output, private=private, privacy_card=card)


async def run_appliance(config: ApplianceConfig) -> None:
    """Run until SIGINT/SIGTERM."""
    favour_the_event_loop()
    if config.ice.loopback_only:
        restrict_ice_to_loopback()
    loop = asyncio.get_running_loop()
    appliance = build_appliance(config, loop=loop)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    cam = config.camera
    _LOGGER.info(
        "appliance %s starting (backend %s, %dx%d@%d)",
        config.device_id,
        config.backend,
        cam.width,
        cam.height,
        cam.fps,
    )
    appliance.start()
    sdnotify.ready(
        f"{config.device_id} ({config.backend}): broker {config.mqtt.host}:{config.mqtt.port}, "
        f"streaming to {config.server.url}"
    )
    # Fed from this loop (a stalled loop stops it) while every task meant to run
    # forever still runs; "model" ends by itself once the model is loaded.
    watchdog = sdnotify.start_watchdog(
        healthy=lambda: all(not t.done() for t in appliance.tasks if t.get_name() != "model")
    )
    try:
        await stop.wait()
    finally:
        sdnotify.stopping(f"appliance {config.device_id} stopping")
        sdnotify.stop_watchdog(watchdog)
        _LOGGER.info("appliance %s stopping", config.device_id)
        await appliance.stop()
        _LOGGER.info("appliance %s stopped", config.device_id)

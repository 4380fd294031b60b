"""The appliance program: hardware, MQTT command API and the live stream, wired together."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from clinicam.ice import restrict_ice_to_loopback
from clinicam.protocol import ApplianceState, CommandAck
from firmware.config import ApplianceConfig
from firmware.control.link import DeviceLink
from firmware.control.ptz import PtzCommands
from firmware.control.router import CommandRouter
from firmware.hardware.protocols import Camera, PanTilt
from firmware.media.encoder import H264StreamEncoder
from firmware.media.track import EncodedCameraTrack
from firmware.media.uplink import StreamUplink

_LOGGER = logging.getLogger(__name__)


def build_hardware(config: ApplianceConfig) -> tuple[PanTilt, Camera]:
    """Pick the backend named in the config."""
    if config.backend == "pi":
        from firmware.hardware.pi import build_pi_hardware

        return build_pi_hardware(config)
    from firmware.hardware.sim import build_sim_rig

    rig = build_sim_rig(config)
    return rig.pantilt, rig.camera


async def run_appliance(config: ApplianceConfig) -> None:
    """Run until SIGINT/SIGTERM."""
    if config.ice.loopback_only:
        restrict_ice_to_loopback()
    loop = asyncio.get_running_loop()
    pantilt, camera = build_hardware(config)
    ptz = PtzCommands(pantilt)
    router = CommandRouter(ptz)
    link: DeviceLink

    async def on_command(payload: bytes) -> CommandAck:
        ack = await router.handle(payload)
        if ack.ok:
            link.publish_state(ApplianceState(ptz=ptz.state(), streaming=uplink.connected.is_set()))
        return ack

    link = DeviceLink(config.mqtt, config.device_id, on_command, loop)
    cam = config.camera

    def make_track() -> EncodedCameraTrack:
        keyint = max(1, round(cam.fps * cam.keyframe_interval_s))
        encoder = H264StreamEncoder(cam.width, cam.height, cam.fps, cam.bitrate_kbps, keyint)
        return EncodedCameraTrack(camera, encoder, cam.fps)

    uplink = StreamUplink(config, make_track)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    _LOGGER.info("appliance %s starting (backend %s, %dx%d@%d)", config.device_id,
                 config.backend, cam.width, cam.height, cam.fps)
    link.publish_state(ApplianceState(ptz=ptz.state(), streaming=False))
    link.start()
    uplink_task = asyncio.create_task(uplink.run(), name="uplink")
    try:
        await stop.wait()
    finally:
        _LOGGER.info("appliance %s stopping", config.device_id)
        uplink_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await uplink_task
        link.stop()
        pantilt.release()
        _LOGGER.info("appliance %s stopped", config.device_id)

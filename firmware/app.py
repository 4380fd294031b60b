"""The appliance program: hardware, MQTT command API and the live stream, wired together."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from clinicam.ice import restrict_ice_to_loopback
from firmware.config import ApplianceConfig
from firmware.control.api import build_command_api
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
    cam = config.camera

    def make_track() -> EncodedCameraTrack:
        keyint = max(1, round(cam.fps * cam.keyframe_interval_s))
        encoder = H264StreamEncoder(cam.width, cam.height, cam.fps, cam.bitrate_kbps, keyint)
        return EncodedCameraTrack(camera, encoder, cam.fps)

    uplink = StreamUplink(config, make_track)
    link = build_command_api(
        config.mqtt, config.device_id, pantilt, streaming=uplink.connected.is_set, loop=loop
    )
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    _LOGGER.info(
        "appliance %s starting (backend %s, %dx%d@%d)",
        config.device_id,
        config.backend,
        cam.width,
        cam.height,
        cam.fps,
    )
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

"""The appliance's stream hears the server's receiver in a real loopback call (R17):
REMB estimates and receiver reports reach the rate controller, and a low estimate
sent by the receiver brings the encoder down, bitrate first, then the ladder."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection
from aiortc.rtp import RTCP_PSFB_APP, RtcpPsfbPacket, pack_remb_fci

from firmware.config import ApplianceConfig
from firmware.hardware.sim import build_sim_rig
from firmware.media.adaptation import DOWN_HOLD_S
from firmware.media.encoders import SoftwareVideoEncoder
from firmware.media.output import StreamOutput, StreamSettings
from firmware.media.privacy import privacy_frame
from firmware.media.track import EncodedCameraTrack
from tests.archive.test_tap import h264_only

pytestmark = pytest.mark.usefixtures("loopback_only")


@pytest.fixture
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("aioice.ice.get_host_addresses", lambda use_ipv4, use_ipv6: ["127.0.0.1"])


async def _until(predicate: Any, timeout_s: float, what: str) -> None:
    try:
        async with asyncio.timeout(timeout_s):
            while not predicate():
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


async def test_receiver_feedback_steers_the_encoder() -> None:
    rig = build_sim_rig(ApplianceConfig())
    output = StreamOutput(StreamSettings(1280, 720, 15, 1500, 2.0), "sim", adaptive=True)
    encoder = SoftwareVideoEncoder(
        rig.camera, output, private=lambda: False, privacy_card=privacy_frame
    )
    encoding = asyncio.create_task(encoder.run())
    track = EncodedCameraTrack(encoder, output)
    appliance = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    server = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    incoming: list[Any] = []
    server.on("track", incoming.append)
    try:
        sending = appliance.addTransceiver(track, direction="sendonly")
        sending.setCodecPreferences(h264_only())
        track.follow_link(sending.sender)
        await appliance.setLocalDescription(await appliance.createOffer())
        await server.setRemoteDescription(appliance.localDescription)
        await server.setLocalDescription(await server.createAnswer())
        await appliance.setRemoteDescription(server.localDescription)
        await _until(lambda: bool(incoming), 10, "the track")

        async def drain() -> None:
            while True:
                await incoming[0].recv()

        draining = asyncio.create_task(drain())
        link = output.link
        assert link is not None
        await _until(lambda: link.remb_kbps is not None, 15, "a REMB from the receiver")
        await _until(lambda: link.rtt_ms is not None, 15, "a receiver report with a round trip")
        assert link.rung == 0, "loopback carries the configured stream"

        # The receiver now estimates 300 kbit/s (as on a congested 3G link).
        receiver = server.getTransceivers()[0].receiver
        ssrc = sending.sender._ssrc
        for _ in range(round(DOWN_HOLD_S * 2) + 6):
            fci = pack_remb_fci(300_000, [ssrc])
            await receiver._send_rtcp(
                RtcpPsfbPacket(fmt=RTCP_PSFB_APP, ssrc=1, media_ssrc=0, fci=fci)
            )
            await asyncio.sleep(0.5)
        assert output.target_bitrate_kbps(0) <= 300, link.figures()
        settings, _ = output.effective()
        assert (settings.height, settings.fps) == (360, 15), link.figures()
        assert (encoder.bitrate_kbps or 0) <= 300
        assert encoder.settings.height == 360, "the encoder encodes the lower rung"
        draining.cancel()
    finally:
        encoding.cancel()
        await appliance.close()
        await server.close()

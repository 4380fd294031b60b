"""The appliance → server live path in a real loopback call, with every bound installed.

The appliance's own track (simulated camera, H.264 encoder, stage stamps) sends to an
aiortc peer set up exactly as the server sets up an appliance: marker-bit release,
bounded decode queue, eager socket reads with stale-packet dropping, a frame feed.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection

from clinicam.frametrace import STAGES, is_h264_keyframe
from clinicam.keyframes import forward_keyframe_requests
from firmware.config import ApplianceConfig
from firmware.hardware.sim import build_sim_rig
from firmware.media.encoders import SoftwareVideoEncoder
from firmware.media.output import StreamOutput, StreamSettings
from firmware.media.privacy import privacy_frame
from firmware.media.track import EncodedCameraTrack
from server.media.decoding import bound_decoder
from server.media.live import FrameFeed
from server.media.lowlatency import release_frames_at_marker
from server.media.receiving import drop_stale_media
from tests.archive.test_tap import h264_only

pytestmark = pytest.mark.usefixtures("loopback_only")


@pytest.fixture
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("aioice.ice.get_host_addresses", lambda use_ipv4, use_ipv6: ["127.0.0.1"])


async def _until(predicate: Any, timeout_s: float) -> None:
    async with asyncio.timeout(timeout_s):
        while not predicate():
            await asyncio.sleep(0.02)


async def test_stamps_arrive_with_every_stage_and_a_keyframe_request_reaches_the_encoder() -> None:
    rig = build_sim_rig(ApplianceConfig())
    # One IDR every 30 s: any further keyframe in this test was asked for.
    output = StreamOutput(StreamSettings(640, 360, 15, 600, 30.0), "sim")
    encoder = SoftwareVideoEncoder(
        rig.camera, output, private=lambda: False, privacy_card=privacy_frame
    )
    encoding = asyncio.create_task(encoder.run())
    track = EncodedCameraTrack(encoder, output)
    appliance = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    server = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    incoming: list[Any] = []
    server.on("track", incoming.append)
    feed = FrameFeed("appliance")
    keyframes: list[bool] = []
    try:
        sending = appliance.addTransceiver(track, direction="sendonly")
        sending.setCodecPreferences(h264_only())
        forward_keyframe_requests(sending.sender, track.request_keyframe)
        await appliance.setLocalDescription(await appliance.createOffer())
        await server.setRemoteDescription(appliance.localDescription)
        receiver = server.getTransceivers()[0].receiver
        release_frames_at_marker(receiver)
        decoder = bound_decoder(receiver)
        decoder.add_tap(lambda data, timestamp: keyframes.append(is_h264_keyframe(data)))
        await server.setLocalDescription(await server.createAnswer())
        # Only media older than 2 s counts as stale here: a busy CI machine stalls the loop
        # for a few hundred ms, and what this test asks is that fresh media passes.
        fresh = drop_stale_media(server, 2.0)
        await appliance.setRemoteDescription(server.localDescription)
        feed.attach(incoming[0], decoder=decoder)

        await _until(lambda: feed.trace is not None and feed.frames_received >= 10, 20)
        assert feed.trace is not None
        stamped = [s for s in STAGES if s in feed.trace.stamps]
        assert stamped == [
            "captured",
            "encoded",
            "sent",
            "arrived",
            "received",
            "decoding",
            "decoded",
        ]
        assert all(ms >= -5.0 for ms in feed.trace.steps_ms().values())  # one clock here
        assert keyframes[0] and not any(keyframes[1:]), "only the first frame is an IDR"

        seen = len(keyframes)
        receiver._RTCRtpReceiver__decoder_error.set()  # what a skipping decoder does: PLI
        await _until(lambda: any(keyframes[seen:]), 5)
        assert fresh.received > 0 and fresh.dropped == 0
    finally:
        encoding.cancel()
        feed.detach()
        await appliance.close()
        await server.close()

"""Experts hear the patient (R1): the appliance's microphone reaches every expert's mix,
and privacy mode sends silence."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import numpy as np
from aiortc import RTCPeerConnection, RTCSessionDescription, VideoStreamTrack

from clinicam.ice import keep_loopback_candidates
from firmware.media.microphone import PrivacyGatedAudio, SimMicrophone
from server.state import STATE
from tests.records.api_helpers import PASSWORD, loopback_media_server
from tests.server.test_audio_timing import decode_opus


async def test_privacy_gate_sends_silence_of_the_same_shape() -> None:
    private = False
    gate = PrivacyGatedAudio(SimMicrophone(), lambda: private)
    loud = await gate.recv()
    assert np.abs(loud.to_ndarray()).max() > 1000
    private = True
    quiet = await gate.recv()
    assert quiet.samples == loud.samples and not quiet.to_ndarray().any()
    assert quiet.pts > loud.pts
    gate.stop()


async def test_the_patient_microphone_reaches_every_experts_mix(tmp_path: Path) -> None:
    server, config = await loopback_media_server(tmp_path)
    state = server.app[STATE]
    pc = RTCPeerConnection(config.ice.rtc_configuration())
    try:
        pc.addTransceiver(VideoStreamTrack(), direction="sendonly")
        pc.addTransceiver(SimMicrophone(), direction="sendonly")
        await pc.setLocalDescription(await pc.createOffer())
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                str(server.make_url("/api/appliances/cam-1/stream")),
                json={"sdp": pc.localDescription.sdp, "type": "offer"},
                headers={"Authorization": f"Bearer {PASSWORD}"},
            ) as resp,
        ):
            assert resp.status == 200, await resp.text()
            answer = await resp.json()
        sdp = keep_loopback_candidates(answer["sdp"])
        await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
        room = state.rooms.get(config.consultations[0])
        assert "appliance:cam-1" in room.audio.sources
        source = state.media.patient_audio["cam-1"]
        for _ in range(200):  # connect, then buffer at least a few chunks of the tone
            if source._buffered >= 5 * 960:
                break
            await asyncio.sleep(0.05)
        alice, bob = room.audio.listen("alice"), room.audio.listen("bob")
        for track in (alice, bob):
            samples = decode_opus([await asyncio.wait_for(track.recv(), 2) for _ in range(5)])
            assert np.abs(samples).max() > 500  # the 220 Hz tone, in both mixes
        room.audio.unlisten(alice)
        room.audio.unlisten(bob)
    finally:
        await pc.close()
        await server.close()

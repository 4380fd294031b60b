"""A room page that offers video only (no microphone, no audio receiver) still gets its
composite: the server answers with video and leaves the voices out."""

from __future__ import annotations

from pathlib import Path

from aiortc import RTCPeerConnection

from server.state import STATE
from tests.archive.test_tap import h264_only
from tests.records.api_helpers import loopback_media_server, open_user
from tests.server.test_clinic_station import _offer


async def test_a_video_only_offer_is_answered_with_video_only(tmp_path: Path) -> None:
    server, config = await loopback_media_server(tmp_path)
    cid = config.consultations[0].id
    pc = RTCPeerConnection(config.ice.rtc_configuration())
    pc.addTransceiver("video", direction="recvonly").setCodecPreferences(h264_only())
    alice = await open_user(server, "alice")
    try:
        status, body = await _offer(
            pc,
            alice.http,
            alice.url(f"/api/consultations/{cid}/webrtc"),
            headers={"X-CSRF-Token": alice.csrf},
        )
        assert status == 200, body
        assert "m=video" in body["sdp"] and "m=audio" not in body["sdp"]
        room = server.app[STATE].rooms.get(config.consultations[0])
        assert room.members["alice"].track is not None  # the composite goes out
    finally:
        await alice.http.close()
        await pc.close()
        await server.close()

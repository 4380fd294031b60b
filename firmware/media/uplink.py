"""The appliance dials out to the server over WebRTC and keeps its stream up.

Dialling out works behind a clinic's NAT. Signalling is one authenticated HTTPS
POST (offer → answer); afterwards the appliance checks every few seconds that the
server still knows its session, so a server restart or a dropped path is noticed
quickly and the stream is re-established with backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import aiohttp
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCRtpSender, RTCSessionDescription

from clinicam.aiortc_compat import self_check
from clinicam.ice import keep_loopback_candidates
from clinicam.keyframes import forward_keyframe_requests
from clinicam.opus import send_voice
from firmware.config import ApplianceConfig
from firmware.media.track import EncodedCameraTrack

_LOGGER = logging.getLogger(__name__)

CHECK_INTERVAL_S = 3.0


class UplinkRefused(Exception):
    """The server refused the stream (bad token, unknown device)."""


class StreamUplink:
    """Keeps one WebRTC connection to the server carrying the live video."""

    def __init__(
        self,
        config: ApplianceConfig,
        make_track: Callable[[], EncodedCameraTrack],
        make_audio: Callable[[], MediaStreamTrack | None] = lambda: None,
    ) -> None:
        self_check()  # the aiortc internals the stream relies on are where we expect them
        self._config = config
        self._make_track = make_track
        self._make_audio = make_audio
        self._base = f"{config.server.url}/api/appliances/{config.device_id}/stream"
        self.connected = asyncio.Event()

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._config.server.token.get_secret_value()}"}

    async def run(self) -> None:
        """Connect, watch, reconnect with exponential backoff; runs until cancelled."""
        delay = 0.5
        timeout = aiohttp.ClientTimeout(total=15)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            while True:
                try:
                    await self._session(http)
                    delay = 0.5
                except UplinkRefused as exc:
                    _LOGGER.error("server refused the stream: %s", exc)
                    delay = self._config.server.reconnect_max_s
                except (aiohttp.ClientError, OSError, TimeoutError, ConnectionError) as exc:
                    _LOGGER.warning("stream to server failed: %s", exc or type(exc).__name__)
                self.connected.clear()
                _LOGGER.info("reconnecting stream in %.1f s", delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._config.server.reconnect_max_s)

    async def _session(self, http: aiohttp.ClientSession) -> None:
        pc = RTCPeerConnection(self._config.ice.rtc_configuration())
        ended = asyncio.Event()

        @pc.on("connectionstatechange")
        def _on_state() -> None:
            _LOGGER.info("stream connection %s", pc.connectionState)
            if pc.connectionState in ("failed", "closed"):
                ended.set()

        try:
            track = self._make_track()
            transceiver = pc.addTransceiver(track, direction="sendonly")
            forward_keyframe_requests(transceiver.sender, track.request_keyframe)
            track.follow_link(transceiver.sender)
            h264 = [
                c
                for c in RTCRtpSender.getCapabilities("video").codecs
                if c.mimeType.lower() == "video/h264"
            ]
            transceiver.setCodecPreferences(h264)
            microphone = self._make_audio()
            if microphone is not None:
                voice = pc.addTransceiver(microphone, direction="sendonly")
                send_voice(voice.sender)  # 32 kbit/s with FEC, not aiortc's 96
            await pc.setLocalDescription(await pc.createOffer())
            local = pc.localDescription
            async with http.post(
                self._base, json={"sdp": local.sdp, "type": local.type}, headers=self._headers()
            ) as resp:
                if resp.status in (401, 403, 404):
                    raise UplinkRefused(f"HTTP {resp.status}: {await resp.text()}")
                resp.raise_for_status()
                answer = await resp.json()
            sdp = str(answer["sdp"])
            if self._config.ice.loopback_only:
                sdp = keep_loopback_candidates(sdp)
            await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
            session_url = f"{self._base}/{answer['session']}"
            _LOGGER.info(
                "stream offered to %s (session %s)", self._config.server.url, answer["session"]
            )
            while not ended.is_set():
                if pc.connectionState == "connected":
                    self.connected.set()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(CHECK_INTERVAL_S):
                        await ended.wait()
                    break
                async with http.get(session_url, headers=self._headers()) as resp:
                    if resp.status == 404:
                        _LOGGER.warning("server no longer knows this stream (restarted?)")
                        return
                    resp.raise_for_status()
        finally:
            self.connected.clear()
            await pc.close()

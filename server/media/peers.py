"""WebRTC peer connections on the server: appliances sending, experts receiving."""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass

from aiortc import RTCPeerConnection, RTCSessionDescription

from clinicam.ice import IceConfig, keep_loopback_candidates
from server.config import LiveViewConfig
from server.media.live import LiveFeed, LiveViewTrack

_LOGGER = logging.getLogger(__name__)


@dataclass
class ApplianceSession:
    """The current stream of one appliance."""

    session_id: str
    pc: RTCPeerConnection


class MediaHub:
    """Owns every peer connection and the live feed of every appliance."""

    def __init__(self, ice: IceConfig, live: LiveViewConfig, clinics: dict[str, str]) -> None:
        self._ice = ice
        self._live = live
        self.feeds = {device: LiveFeed(device, clinic) for device, clinic in clinics.items()}
        self._appliances: dict[str, ApplianceSession] = {}
        self._experts: dict[tuple[str, str], RTCPeerConnection] = {}

    def _remote(self, sdp: str, kind: str) -> RTCSessionDescription:
        if self._ice.loopback_only:
            sdp = keep_loopback_candidates(sdp)
        return RTCSessionDescription(sdp=sdp, type=kind)

    async def appliance_offer(self, device_id: str, sdp: str) -> tuple[str, str]:
        """Accept an appliance's stream offer; returns (answer sdp, session id)."""
        old = self._appliances.pop(device_id, None)
        if old is not None:
            await old.pc.close()
        pc = RTCPeerConnection(self._ice.rtc_configuration())
        session = ApplianceSession(secrets.token_urlsafe(12), pc)
        self._appliances[device_id] = session
        feed = self.feeds[device_id]

        @pc.on("track")
        def _on_track(track: object) -> None:
            if getattr(track, "kind", None) == "video":
                feed.attach(track)  # type: ignore[arg-type]

        @pc.on("connectionstatechange")
        async def _on_state() -> None:
            _LOGGER.info("appliance %s stream %s", device_id, pc.connectionState)
            if pc.connectionState in ("failed", "closed"):
                if self._appliances.get(device_id) is session:
                    del self._appliances[device_id]
                await pc.close()

        await pc.setRemoteDescription(self._remote(sdp, "offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        _LOGGER.info("appliance %s stream session %s", device_id, session.session_id)
        return pc.localDescription.sdp, session.session_id

    def appliance_session_alive(self, device_id: str, session_id: str) -> bool:
        session = self._appliances.get(device_id)
        return session is not None and session.session_id == session_id

    def appliance_streaming(self, device_id: str) -> bool:
        session = self._appliances.get(device_id)
        return session is not None and session.pc.connectionState == "connected"

    async def expert_offer(self, cid: str, username: str, device_id: str, sdp: str) -> str:
        """Answer an expert's offer with the consultation's live view."""
        key = (cid, username)
        old = self._experts.pop(key, None)
        if old is not None:
            await old.close()
        pc = RTCPeerConnection(self._ice.rtc_configuration())
        self._experts[key] = pc
        track = LiveViewTrack(self.feeds[device_id], self._live)

        @pc.on("connectionstatechange")
        async def _on_state() -> None:
            state = pc.connectionState
            if state == "connected":
                _LOGGER.info("expert %s joined consultation %s", username, cid)
            elif state in ("failed", "closed"):
                if self._experts.get(key) is pc:
                    del self._experts[key]
                    _LOGGER.info("expert %s left consultation %s (%s)", username, cid, state)
                track.stop()
                await pc.close()

        await pc.setRemoteDescription(self._remote(sdp, "offer"))
        pc.addTrack(track)  # reuses the browser's recvonly video transceiver
        await pc.setLocalDescription(await pc.createAnswer())
        return pc.localDescription.sdp

    async def close(self) -> None:
        pcs = [s.pc for s in self._appliances.values()] + list(self._experts.values())
        self._appliances.clear()
        self._experts.clear()
        for feed in self.feeds.values():
            feed.detach()
        await asyncio.gather(*(pc.close() for pc in pcs), return_exceptions=True)

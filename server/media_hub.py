"""WebRTC peer connections on the server: appliances sending, experts sending and receiving.

Above :mod:`server.media` and :mod:`server.room`: the hub wires rooms, the archive and
the media stages together (one layer up from the stages it connects).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaPlayer

from clinicam.aiortc_compat import self_check
from clinicam.i18n import _
from clinicam.ice import IceConfig, keep_loopback_candidates
from clinicam.keyframes import forward_keyframe_requests
from server.archive.recorder import ArchiveRecorder
from server.media.audio import AudioSource
from server.media.audio_mix import MixTrack
from server.media.capture_time import negotiate_abs_capture_time, send_capture_time
from server.media.composite import CompositeTrack
from server.media.decoding import LatestDecodeQueue, bound_decoder
from server.media.latency import LoopLag
from server.media.layout import LANDSCAPE
from server.media.live import FrameFeed
from server.media.lowlatency import (
    negotiate_playout_delay,
    release_audio_on_arrival,
    release_frames_at_marker,
    send_playout_delay,
)
from server.media.receiving import (
    LIVE_MAX_AGE_S,
    WEBCAM_MAX_AGE_S,
    FreshMediaQueue,
    drop_stale_media,
)
from server.room import ConsultationRoom

_LOGGER = logging.getLogger(__name__)


@dataclass
class ApplianceSession:
    """The current stream of one appliance."""

    session_id: str
    pc: RTCPeerConnection


class NoCommonCodec(Exception):
    """The browser and the server share no usable video codec."""


def _video_codec(sdp: str) -> str | None:
    """Encoding name of the first payload type of the first video m-line."""
    payload = None
    for line in sdp.splitlines():
        if line.startswith("m=video") and payload is None:
            parts = line.split()
            payload = parts[3] if len(parts) > 3 else None
        elif payload and line.startswith(f"a=rtpmap:{payload} "):
            return line.split()[1].split("/")[0]
    return None


class MediaHub:
    """Owns every peer connection and the live feed of every appliance."""

    def __init__(self, ice: IceConfig, devices: list[str], *, low_latency: bool = True) -> None:
        self_check()  # the aiortc internals below are where this aiortc version has them
        self._ice = ice
        self._low_latency = low_latency
        if low_latency:
            negotiate_playout_delay()
        negotiate_abs_capture_time()  # the room's latency readout (server.media.capture_time)
        self.feeds = {device: FrameFeed(f"appliance {device}") for device in devices}
        self.patient_audio = {device: AudioSource(f"patient {device}") for device in devices}
        self._appliances: dict[str, ApplianceSession] = {}
        self._experts: dict[tuple[str, str], RTCPeerConnection] = {}
        # One offer at a time per viewer: a page that retries while its last offer is still
        # being answered must not have the older offer's media attached after the newer.
        self._offering: defaultdict[tuple[str, str], asyncio.Lock] = defaultdict(asyncio.Lock)
        self.archive: ArchiveRecorder | None = None
        self.on_live_again: Callable[[str], None] = lambda device_id: None
        self._replays: dict[str, tuple[MediaPlayer, Path]] = {}
        self.loop_lag = LoopLag()
        self.received: dict[str, FreshMediaQueue] = {}  # receive queues by device / webcam

    def enrolled(self, device_id: str) -> None:
        """An appliance enrolled since the start: give it a live feed (it may stream now)."""
        self.feeds.setdefault(device_id, FrameFeed(f"appliance {device_id}"))
        self.patient_audio.setdefault(device_id, AudioSource(f"patient {device_id}"))

    async def cut_off(self, device_id: str, why: str = "its credentials were withdrawn") -> None:
        """An appliance's credentials ended (revoked or rotated): end its stream session;
        its next offer must come with a token that works. (Or ``why`` it ends.)"""
        session = self._appliances.pop(device_id, None)
        if session is None:
            return
        if self.archive is not None:
            self.archive.detach(device_id)
        await session.pc.close()
        _LOGGER.info("appliance %s stream ended: %s", device_id, why)

    def replay(self, device_id: str, path: Path) -> None:
        """Play an archived MP4 into the appliance's live window until it streams again."""
        self.stop_replay(device_id)
        player = MediaPlayer(str(path))
        if player.video is None:
            raise ValueError("the archived range has no video")
        self._replays[device_id] = (player, path)
        self.feeds[device_id].attach(player.video, latest_wins=False)
        _LOGGER.info("replaying archived video in the live window of %s", device_id)

    def stop_replay(self, device_id: str) -> bool:
        replay = self._replays.pop(device_id, None)
        if replay is None:
            return False
        player, path = replay
        self.feeds[device_id].detach()
        if player.video is not None:
            player.video.stop()
        path.unlink(missing_ok=True)
        return True

    def _remote(self, sdp: str, kind: str) -> RTCSessionDescription:
        if self._ice.loopback_only:
            sdp = keep_loopback_candidates(sdp)
        return RTCSessionDescription(sdp=sdp, type=kind)

    async def appliance_offer(self, device_id: str, sdp: str) -> tuple[str, str]:
        """Accept an appliance's stream offer; returns (answer sdp, session id)."""
        old = self._appliances.pop(device_id, None)
        if old is not None:
            if self.archive is not None:
                self.archive.detach(device_id)
            await old.pc.close()
        pc = RTCPeerConnection(self._ice.rtc_configuration())
        session = ApplianceSession(secrets.token_urlsafe(12), pc)
        self._appliances[device_id] = session
        feed = self.feeds[device_id]

        incoming: dict[str, Any] = {}

        @pc.on("track")
        def _on_track(track: Any) -> None:
            incoming.setdefault(track.kind, track)

        @pc.on("connectionstatechange")
        async def _on_state() -> None:
            _LOGGER.info("appliance %s stream %s", device_id, pc.connectionState)
            if pc.connectionState in ("failed", "closed"):
                if self._appliances.get(device_id) is session:
                    del self._appliances[device_id]
                    if self.archive is not None:
                        self.archive.detach(device_id)
                await pc.close()

        await pc.setRemoteDescription(self._remote(sdp, "offer"))
        decoders = self._tune_receivers(pc)
        if "audio" in incoming:
            self.patient_audio[device_id].attach(incoming["audio"])
        video = incoming.get("video")
        if video is not None:
            if self.stop_replay(device_id):
                self.on_live_again(device_id)
            feed.attach(video, decoder=decoders.get(video))
            receiver = next(t.receiver for t in pc.getTransceivers() if t.receiver.track is video)
            if self.archive is not None:
                self.archive.attach(device_id, receiver)
        await pc.setLocalDescription(await pc.createAnswer())
        self.received[device_id] = drop_stale_media(pc, LIVE_MAX_AGE_S)
        _LOGGER.info("appliance %s stream session %s", device_id, session.session_id)
        return pc.localDescription.sdp, session.session_id

    @staticmethod
    def _tune_receivers(pc: RTCPeerConnection) -> dict[Any, LatestDecodeQueue]:
        """Incoming video frames go to the decoder once complete, not a frame later, and a
        decoder that falls behind skips ahead; voices are decoded as they arrive. Returns
        each video track's decode queue."""
        decoders = {}
        for transceiver in pc.getTransceivers():
            if transceiver.kind == "video":
                release_frames_at_marker(transceiver.receiver)
                decoders[transceiver.receiver.track] = bound_decoder(transceiver.receiver)
            elif transceiver.kind == "audio":
                release_audio_on_arrival(transceiver.receiver)
        return decoders

    def appliance_session_alive(self, device_id: str, session_id: str) -> bool:
        session = self._appliances.get(device_id)
        return session is not None and session.session_id == session_id

    def appliance_pc(self, device_id: str) -> RTCPeerConnection | None:
        session = self._appliances.get(device_id)
        return session.pc if session is not None else None

    def viewer_pc(self, consultation_id: str, name: str) -> RTCPeerConnection | None:
        """An expert's (by username) or the clinic station's (by its name) connection."""
        return self._experts.get((consultation_id, name))

    def appliance_streaming(self, device_id: str) -> bool:
        session = self._appliances.get(device_id)
        return session is not None and session.pc.connectionState == "connected"

    async def expert_offer(
        self,
        room: ConsultationRoom,
        username: str,
        sdp: str,
        locale: str | None = None,
        shape: str = LANDSCAPE,
    ) -> str:
        """Webcam and microphone in; composite (pre-encoded H.264, its texts in the expert's
        ``locale``, else the site's language, laid out for the ``shape`` of their screen)
        and audio mix out."""
        key = (room.consultation.id, username)
        async with self._offering[key]:
            pc, incoming, decoders = await self._viewer_peer(key, sdp)
            webcam = incoming.get("video")
            track, mix = room.attach_media(
                username,
                webcam,
                incoming.get("audio"),
                decoder=decoders.get(webcam),
                locale=locale,
                shape=shape,
            )
            return await self._answer_viewer(
                pc,
                key,
                f"webcam {username}",
                track,
                mix,
                lambda: room.detach_media(username, track),
            )

    async def station_offer(
        self, room: ConsultationRoom, sdp: str, locale: str | None = None
    ) -> str:
        """The clinic station: microphone in; its own composite (its texts in the station's
        ``locale``, else the site's language) and the experts' voices out."""
        station = room.station
        key = (room.consultation.id, station.name)
        async with self._offering[key]:
            pc, incoming, _unused = await self._viewer_peer(key, sdp)
            track, mix = station.attach(incoming.get("audio"), locale)
            return await self._answer_viewer(
                pc, key, station.name, track, mix, lambda: station.detach(track)
            )

    async def _viewer_peer(
        self, key: tuple[str, str], sdp: str
    ) -> tuple[RTCPeerConnection, dict[str, Any], dict[Any, LatestDecodeQueue]]:
        """A new connection for someone who watches a composite (replacing their old one),
        with the offer applied: what they send, and the decoders of their video."""
        old = self._experts.pop(key, None)
        if old is not None:
            await old.close()
        pc = RTCPeerConnection(self._ice.rtc_configuration())
        self._experts[key] = pc
        incoming: dict[str, Any] = {}

        @pc.on("track")
        def _on_track(track: Any) -> None:
            incoming.setdefault(track.kind, track)

        await pc.setRemoteDescription(self._remote(sdp, "offer"))
        return pc, incoming, self._tune_receivers(pc)

    async def _answer_viewer(
        self,
        pc: RTCPeerConnection,
        key: tuple[str, str],
        name: str,
        track: CompositeTrack,
        mix: MixTrack,
        left: Callable[[], None],
    ) -> str:
        """Send ``track`` and ``mix``; answer; ``left()`` once the connection is gone."""

        @pc.on("connectionstatechange")
        async def _on_state() -> None:
            _LOGGER.info("%s media %s (consultation %s)", name, pc.connectionState, key[0])
            if pc.connectionState in ("failed", "closed"):
                if self._experts.get(key) is pc:
                    del self._experts[key]
                left()
                await pc.close()

        composite = pc.addTrack(track)
        forward_keyframe_requests(composite, track.request_keyframe)
        if track.link is not None:
            track.link.follow(composite)  # their link chooses their rung (R17)
        if self._low_latency:
            send_playout_delay(composite)  # the browser shows frames once decoded
        send_capture_time(composite, lambda: track.capture_us)  # when the patient was filmed
        if any(t.kind == "audio" for t in pc.getTransceivers()):  # a video-only offer
            pc.addTrack(mix)  # voice-grade Opus with FEC, encoded by the mixing thread
        await pc.setLocalDescription(await pc.createAnswer())
        self.received[name] = drop_stale_media(pc, WEBCAM_MAX_AGE_S)
        answer = pc.localDescription.sdp
        if _video_codec(answer) != "H264":
            left()
            await pc.close()
            raise NoCommonCodec(
                _(
                    "this browser did not offer H.264 video, which the composite "
                    "needs: use a current Chrome, Edge, Firefox or Safari"
                )
            )
        return answer

    async def close(self) -> None:
        pcs = [s.pc for s in self._appliances.values()] + list(self._experts.values())
        self._appliances.clear()
        self._experts.clear()
        for device_id in list(self._replays):
            self.stop_replay(device_id)
        for feed in self.feeds.values():
            feed.detach()
        for source in self.patient_audio.values():
            source.detach()
        await asyncio.gather(*(pc.close() for pc in pcs), return_exceptions=True)
        if self.archive is not None:
            await self.archive.close()

"""A consultation while it runs: who is here, who steers, what each expert sees.

The room owns the floor control, the experts' webcam feeds, their choice of main
window and the composite mixer. The page talks to it over one WebSocket per
browser (events both ways) and one WebRTC connection (webcam up, composite down).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from clinicam.i18n import N_, _, translate
from server.clinic_station import ClinicStation
from server.config import ConsultationConfig, ServerConfig
from server.db import utcnow
from server.directory.consultations import in_its_time
from server.floor import FloorControl, FloorError
from server.media.audio import AudioSource
from server.media.audio_mix import AudioMixer, MixTrack
from server.media.badges import PRIVACY_RGB, RECORDING_RGB, Badge
from server.media.cards import message_card
from server.media.chart import render_relevance_chart
from server.media.composite import CompositeMixer, CompositeTrack
from server.media.compositor import TileSource
from server.media.decoding import LatestDecodeQueue
from server.media.latency import LoopLag
from server.media.layout import (
    LANDSCAPE,
    LIVE,
    PRESENTATION,
    STATION_PREFIX,
    Layout,
    compute_layout,
    standard_windows,
    station_windows,
)
from server.media.link_health import PartyLink
from server.media.live import FrameFeed
from server.media.localized import PerLocale
from server.media.pressure import MediaPressure, PressureSample, WebcamBudget
from server.relevance.basis import localized
from server.room_messages import AudioOnly, FloorAction, SelectMain
from server.roster import Roster

_LOGGER = logging.getLogger(__name__)
CHART_CAPTION = N_("No relevance computed for this patient yet: ask for it in the room.")


@dataclass
class Member:
    """One invited expert and their connections."""

    username: str
    name: str
    feed: FrameFeed
    main: str = LIVE  # the default main window
    track: CompositeTrack | None = None
    mix: MixTrack | None = None
    audio_only: bool = False  # chosen on the page: stills instead of video (R17)
    shape: str = LANDSCAPE  # their screen's, told with their WebRTC offer (a phone: portrait)
    sockets: set[web.WebSocketResponse] = field(default_factory=set)

    @property
    def online(self) -> bool:
        return bool(self.sockets)


class ConsultationRoom:
    """Runtime state of one consultation."""

    def __init__(
        self,
        consultation: ConsultationConfig,
        config: ServerConfig,
        roster: Roster,
        live_feed: FrameFeed,
        patient_audio: AudioSource | None = None,
    ) -> None:
        self.consultation = consultation
        self._config = config
        self._live_feed = live_feed
        device = roster.device(consultation.appliance)
        self.clinic = device.clinic if device else consultation.appliance
        self.floor = FloorControl(consultation.chair, consultation.experts)
        self.members = {
            u: Member(
                u, (e.display_name if (e := roster.expert(u)) else u), FrameFeed(f"webcam {u}")
            )
            for u in consultation.experts
        }
        live = config.live
        half = (live.width // 2, live.height // 2)
        # Stills with words are drawn per viewer's language, each when first shown.
        self._idle_presentation = PerLocale(
            lambda loc: message_card(*half, _("Presentation"), _("Nothing shared yet"), loc)
        )
        self._presentation = self._idle_presentation
        self.presentation_info: dict[str, Any] | None = None
        self.live_note: str | None = None  # e.g. "archive 10:02–10:05 UTC" during a replay
        self.colour: dict[str, Any] | None = None  # the appliance's colour calibration in use
        self._chart = PerLocale(
            lambda loc: render_relevance_chart(None, *half, caption=CHART_CAPTION, locale=loc)
        )
        names = {u: m.name for u, m in self.members.items()}
        self.relevance: dict[str, Any] | None = None  # the latest stored result shown
        self.recording: Callable[[], bool] = lambda: False  # the live view or the call recorded
        self.call_recording: Callable[[], str] = lambda: "off"  # O4: recording, no_consent…
        self.mixer = CompositeMixer(
            live,
            self.layout_for,
            self.sources,
            watermark=(lambda user: names.get(user, user)) if config.watermark else None,
            live_arrivals=live_feed.listeners,
            badges=self.badges_for,
        )
        self.webcam_budget = WebcamBudget(config.webcam.fps, None)
        self.audio = AudioMixer()
        if patient_audio is not None:  # everyone hears the patient; the patient hears no one
            self.audio.sources[f"appliance:{consultation.appliance}"] = patient_audio
        self.station = ClinicStation(
            consultation.appliance, consultation.experts, self.mixer, self.audio, config.language
        )
        self.links: dict[str, PartyLink] = {}  # link health by party (server.room_links)

    def show_relevance(self, result: dict[str, Any]) -> bool:
        """Draw the chart for ``result`` (labels, values, caption); only when it changed."""
        if self.relevance is not None and all(
            self.relevance.get(k) == result.get(k) for k in ("id", "values", "caption")
        ):
            return False
        live = self._config.live
        values = dict(zip(result["labels"], result["values"], strict=True))
        caption = result["caption"]
        chart = PerLocale(
            lambda loc: render_relevance_chart(
                values, live.width // 2, live.height // 2, caption=caption, locale=loc
            )
        )
        chart(self._config.language)  # the site's language now: a bad result fails here
        self._chart = chart
        self.relevance = result
        return True

    def present(self, frame: Any | None, info: dict[str, Any] | None) -> None:
        """Show ``frame`` (a prepared still, or one per language: a mapping or a
        :class:`PerLocale`) in the presentation window, or nothing (None).

        A new item is the experts' only: the clinic sees it once an expert shares it."""
        self._presentation = PerLocale.of(frame) if frame is not None else self._idle_presentation
        self.presentation_info = {**info, "clinic": False} if frame is not None and info else None
        self.station.pin(None)

    def share_with_clinic(self, shared: bool) -> None:
        """Show the presented item at the clinic station too (large), or stop showing it."""
        if self.presentation_info is None:
            raise ValueError("nothing is presented")
        self.presentation_info["clinic"] = shared
        self.station.pin(PRESENTATION if shared else None)

    def windows(self) -> list[str]:
        return standard_windows(self.consultation.experts)

    def layout_for(self, main: str) -> Layout:
        """An expert's layout with ``main`` large, or the clinic station's ("station:…")."""
        live = self._config.live
        if main.startswith(STATION_PREFIX):
            shared = bool(self.presentation_info and self.presentation_info.get("clinic"))
            windows = station_windows(self.consultation.experts, shared=shared)
            large = main[len(STATION_PREFIX) :]  # unshared a moment ago: the first expert
            return compute_layout(
                windows, large if large in windows else windows[0], live.width, live.height
            )
        return compute_layout(self.windows(), main, live.width, live.height)

    def badges_for(self, main: str) -> list[Badge]:
        """The states the clinic station shows the patient: recording, privacy (R16)."""
        if not main.startswith(STATION_PREFIX):
            return []
        if self.station.private:  # the appliance sends only its privacy card: nothing to record
            return [Badge(_("Privacy on"), PRIVACY_RGB)]
        return [Badge(_("● Recording"), RECORDING_RGB)] if self.recording() else []

    def labels(self) -> dict[str, str]:
        labels = {f"expert:{m.username}": m.name for m in self.members.values()}
        note = self.live_note
        labels.update(
            presentation=_("Presentation"),
            live=_("Patient — {clinic} ({note})", clinic=self.clinic, note=note)
            if note
            else _("Patient — {clinic}", clinic=self.clinic),
            relevance=_("Decision support — not a diagnosis"),
        )
        return labels

    def sources(self) -> Mapping[str, TileSource]:
        labels = self.labels()
        out = {
            f"expert:{m.username}": TileSource(
                m.feed.frame, m.feed.age(), labels[f"expert:{m.username}"]
            )
            for m in self.members.values()
        }
        live = self._live_feed
        out["live"] = TileSource(live.frame, live.age(), labels["live"], live.trace)
        site, shown, chart = self._config.language, self._presentation, self._chart
        out["presentation"] = TileSource(shown(site), 0.0, labels["presentation"], localized=shown)
        out["relevance"] = TileSource(chart(site), 0.0, labels["relevance"], localized=chart)
        return out

    def media_figures(self) -> dict[str, Any]:
        """Where the live view's time goes and where frames were dropped to keep it short."""

        def feed(f: FrameFeed) -> dict[str, Any]:
            decoder = f.decoder.stats() if f.decoder is not None else None
            return {"frames": f.frames_received, "skipped": f.frames_skipped, "decoder": decoder}

        mixer = self.mixer
        return {
            "latency": mixer.latency.summary(),
            "webcam_budget": self.webcam_budget.to_json(),
            "composite_rate_share": mixer.rate_share,
            "live": feed(self._live_feed),
            "webcams": {u: feed(m.feed) for u, m in self.members.items()},
            "composite": {
                "ticks": mixer.ticks,
                "ticks_skipped": mixer.ticks_skipped,
                "network_flushes": {
                    u: m.track.flushes for u, m in self.members.items() if m.track is not None
                },
            },
            "audio": self.audio.figures(),
        }

    def state_for(self, username: str) -> dict[str, Any]:
        member = self.members[username]
        layout = self.mixer.layout(member.main, member.shape)
        locale = member.track.locale if member.track is not None else self._config.language
        return {
            "type": "room",
            "you": username,
            "floor": self.floor.snapshot(),
            "online": sorted(u for u, m in self.members.items() if m.online),
            "main": member.main,
            "size": [layout.width, layout.height],
            "tiles": [[w, r.x, r.y, r.w, r.h] for w, r in layout.tiles],
            "live_size": self._live_size(),  # where the picture sits in its tile (aim)
            "labels": {w: translate(text, locale) for w, text in self.labels().items()},
            "presentation": self.presentation_info,
            "relevance": localized(self.relevance, locale) if self.relevance else None,
            "webcam_budget": self.webcam_budget.to_json(),
            "station": self.station.status(),
            "video": self._video_mode(member),
            "call_recording": self.call_recording(),
            "colour": self.colour,
        }

    def _live_size(self) -> list[int] | None:
        """The live picture's size (the compositor letterboxes it in its tile)."""
        frame = self._live_feed.frame
        return None if frame is None else [frame.width, frame.height]

    def _video_mode(self, member: Member) -> dict[str, Any]:
        """The rung this expert's composite is on, and whether they chose audio only."""
        link = member.track.link if member.track is not None else None
        ladder = link.ladder if link is not None else self.mixer.ladder
        rung = link.rung if link is not None else 0
        size = ladder.rungs[rung]
        return {
            "audio_only": member.audio_only,
            "stills": rung == ladder.still,
            "size": [size.width, size.height],
        }

    async def notify(self, event: dict[str, Any]) -> None:
        """Send one event to every expert's page in the room."""
        for member in self.members.values():
            for ws in list(member.sockets):
                if not ws.closed:
                    await ws.send_json(event)

    async def broadcast(self) -> None:
        for member in self.members.values():
            state = self.state_for(member.username)
            for ws in list(member.sockets):
                if not ws.closed:
                    await ws.send_json(state)

    # media
    def attach_media(
        self,
        username: str,
        webcam: Any | None,
        microphone: Any | None,
        *,
        decoder: LatestDecodeQueue | None = None,
        locale: str | None = None,
        shape: str = LANDSCAPE,
    ) -> tuple[CompositeTrack, MixTrack]:
        """Take an expert's webcam and microphone; return their composite (its texts in
        ``locale``, else the site's language, laid out for their screen's ``shape``) and
        audio mix."""
        member = self.members[username]
        if member.track is not None:
            self.mixer.remove(member.track)
        if member.mix is not None:
            self.audio.unlisten(member.mix)
        if webcam is not None:
            member.feed.attach(webcam, decoder=decoder)
        if microphone is not None:
            self.audio.source(username).attach(microphone)
        member.track = self.mixer.new_track(
            member.main, username, locale=locale or self._config.language, shape=shape
        )
        member.shape = shape
        if member.track.link is not None:
            member.track.link.audio_only = member.audio_only
        member.mix = self.audio.listen(username)
        return member.track, member.mix

    def detach_media(self, username: str, track: CompositeTrack) -> None:
        member = self.members[username]
        if member.track is track:
            self.mixer.remove(track)
            member.track = None
            member.feed.detach()
            if member.mix is not None:
                self.audio.unlisten(member.mix)
                member.mix = None
            self.audio.source(username).detach()

    # events from the page
    async def handle(self, username: str, message: SelectMain | FloorAction | AudioOnly) -> None:
        if isinstance(message, AudioOnly):
            member = self.members[username]
            member.audio_only = message.on
            if member.track is not None and member.track.link is not None:
                member.track.link.audio_only = message.on
            _LOGGER.info("expert %s chose %s", username, "audio only" if message.on else "video")
        elif isinstance(message, SelectMain):
            if message.window not in self.windows():
                raise FloorError(f"window: '{message.window}' is not in this consultation")
            member = self.members[username]
            member.main = message.window
            if member.track is not None:
                self.mixer.choose(member.track, message.window)
            _LOGGER.info("expert %s chose %s as main window", username, message.window)
        else:
            self._floor_action(username, message)
        await self.broadcast()

    def _floor_action(self, username: str, message: FloorAction) -> None:
        floor = self.floor
        if message.action == "request":
            floor.request(username)
        elif message.action == "release":
            floor.release(username)
        elif message.action == "revoke":
            floor.revoke(username)
        elif not message.user:
            raise FloorError("user: required to grant or deny")
        elif message.action == "grant":
            floor.grant(username, message.user)
        else:
            floor.deny(username, message.user)

    async def joined(self, username: str, ws: web.WebSocketResponse) -> None:
        member = self.members[username]
        first = not member.sockets
        member.sockets.add(ws)
        if first:
            _LOGGER.info("expert %s joined consultation %s", username, self.consultation.id)
        await self.broadcast()

    async def left(self, username: str, ws: web.WebSocketResponse) -> None:
        member = self.members[username]
        member.sockets.discard(ws)
        if not member.sockets:
            _LOGGER.info("expert %s left consultation %s", username, self.consultation.id)
            self.floor.left(username)
            await self.broadcast()

    async def close(self) -> None:
        self.station.detach(self.station.track)
        await self.mixer.close()
        await self.audio.close()
        for member in self.members.values():
            member.feed.detach()
            for ws in list(member.sockets):
                await ws.close()


class RoomRegistry:
    """Rooms by consultation id, created on first use."""

    def __init__(
        self,
        config: ServerConfig,
        roster: Roster,
        live_feeds: Mapping[str, FrameFeed],
        patient_audio: Mapping[str, AudioSource] | None = None,
    ) -> None:
        self._config = config
        self._roster = roster
        self._feeds = live_feeds
        self._patient_audio = patient_audio or {}
        self._rooms: dict[str, ConsultationRoom] = {}
        self.on_created: Callable[[ConsultationRoom], None] = lambda room: None
        self.pressure = MediaPressure()

    def get(self, consultation: ConsultationConfig) -> ConsultationRoom:
        room = self._rooms.get(consultation.id)
        if room is None:
            room = ConsultationRoom(
                consultation,
                self._config,
                self._roster,
                self._feeds[consultation.appliance],
                self._patient_audio.get(consultation.appliance),
            )
            room.mixer.rate_share = self.pressure.composite_rate_share
            room.webcam_budget = self.pressure.webcam_budget(self._config.webcam.fps)
            self._rooms[consultation.id] = room
            self.on_created(room)
        return room

    async def retire(self, cid: str, *, ended: bool = True) -> None:
        """It ended (its pages are told), or another media worker took it (``ended=False``)."""
        room = self._rooms.pop(cid, None)
        if room is not None and ended:
            await room.notify({"type": "ended"})
        if room is not None:
            await room.close()

    def serving(self, device_id: str) -> ConsultationConfig | None:
        """The consultation an appliance is serving: one with experts in it, else the first
        bound to it whose time it is (:func:`in_its_time`), else None."""
        bound = [c for c in self._roster.consultations if c.appliance == device_id]
        for consultation in bound:
            room = self._rooms.get(consultation.id)
            if room is not None and any(m.online for m in room.members.values()):
                return consultation
        return next((c for c in bound if in_its_time(c, utcnow())), None)

    def live_rooms(self) -> list[ConsultationRoom]:
        """Rooms with at least one expert online."""
        return [r for r in self._rooms.values() if any(m.online for m in r.members.values())]

    def rooms_for_patient(self, external_id: str) -> list[ConsultationRoom]:
        return [r for r in self._rooms.values() if r.consultation.patient_id == external_id]

    def rooms_of(self, device_id: str) -> list[ConsultationRoom]:
        return [r for r in self._rooms.values() if r.consultation.appliance == device_id]

    def _load_counters(self) -> tuple[int, int, int]:
        dropped = sum(f.decoder.frames_dropped for f in self._feeds.values() if f.decoder)
        ticks = sum(r.mixer.ticks for r in self._rooms.values())
        skipped = sum(r.mixer.ticks_skipped for r in self._rooms.values())
        return dropped, ticks, skipped

    async def watch_load(self, loop_lag: LoopLag, interval_s: float = 1.0) -> None:
        """Once a second, move the load ladder and tell every room when its rung changes."""
        before = self._load_counters()
        while True:
            await asyncio.sleep(interval_s)
            now = self._load_counters()
            dropped, ticks, skipped = (max(0, a - b) for a, b in zip(now, before, strict=True))
            before = now
            rung = self.pressure.rung
            sample = PressureSample(loop_lag.p95_since(interval_s), dropped, ticks, skipped)
            if self.pressure.observe(sample) != rung:
                await self.apply_load_rung()

    async def apply_load_rung(self) -> None:
        budget = self.pressure.webcam_budget(self._config.webcam.fps)
        for room in self._rooms.values():
            room.mixer.rate_share = self.pressure.composite_rate_share
            room.webcam_budget = budget
            await room.broadcast()

    async def close(self) -> None:
        await asyncio.gather(*(room.close() for room in self._rooms.values()))
        self._rooms.clear()

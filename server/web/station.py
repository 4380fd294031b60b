"""The clinic station's HTTP side (R16): its page, its state, its call, its controls.

The station is the appliance's. The kiosk on the appliance sends the device's own bearer
token with every call (the page keeps it in memory, never in a cookie; no CSRF token is
involved); a tablet at the clinic is signed in as the clinic's staff instead (session
cookie and CSRF token), and reaches only its own clinic's stations.

* ``GET  /station/<device>`` the page (no secrets in it; it asks for the token).
* ``GET  /api/appliances/<device>/station`` "waiting" or "live" (a consultation bound
  to this appliance has experts in it), with who is there, the privacy and recording
  states and what the experts show the clinic.
* ``POST /api/appliances/<device>/station/webrtc`` the station's offer → answer; 409
  while there is nothing to join.
* ``POST /api/appliances/<device>/station/controls`` ``{"muted": …, "privacy": …,
  "attention": true}`` (the last asks every expert in the room to look).
"""

from __future__ import annotations

import logging
import secrets
from http import HTTPStatus
from typing import Any, Literal

from aiohttp import web
from pydantic import Field, StrictBool

from clinicam.configfile import StrictModel
from clinicam.i18n import _, message_of
from clinicam.protocol import Privacy
from server.db import iso, utcnow
from server.directory.consultations import next_on
from server.errors import ApiError, read_json
from server.media_hub import NoCommonCodec
from server.mqtt_link import STATION_OPS, ApplianceUnreachable
from server.room import ConsultationRoom
from server.state import STATE, ServerState
from server.web.consultation import MAX_SDP
from server.web.locale import page, reader_locale
from server.web.security import station_caller

_LOGGER = logging.getLogger(__name__)


class StationOffer(StrictModel):
    sdp: str = Field(min_length=1, max_length=MAX_SDP)
    type: Literal["offer"]


class StationControls(StrictModel):
    muted: StrictBool | None = Field(None, description="The station's microphone is muted.")
    privacy: StrictBool | None = Field(None, description="Privacy mode on the appliance.")
    attention: StrictBool | None = Field(None, description="Ask the experts to look (true).")


def live_room(state: ServerState, device_id: str) -> ConsultationRoom | None:
    """The room of the consultation this appliance is in now: one with experts online."""
    consultation = state.rooms.serving(device_id)
    if consultation is None:
        return None
    room = state.rooms.get(consultation)
    return room if any(m.online for m in room.members.values()) else None


class StationPage(web.View):
    async def get(self) -> web.StreamResponse:
        return await page(self.request, "station.html")


class StationStateView(web.View):
    async def get(self) -> web.StreamResponse:
        """What the clinic station shows: waiting, or the consultation that is live."""
        state = self.request.app[STATE]
        device, _actor = station_caller(self.request)
        room = live_room(state, device.device_id)
        appliance = state.appliances.states.get(device.device_id)
        body: dict[str, Any] = {
            "device": device.device_id,
            "clinic": device.clinic,
            "state": "live" if room is not None else "waiting",
            "privacy": bool(appliance and appliance.privacy),
            "recording": state.archive.recording(device.device_id)
            or (room is not None and room.recording()),  # the live view, or the whole call
            "consultation": None,
            "next": None,
        }
        upcoming = next_on(state.directory.consultations, device.device_id, utcnow())
        if upcoming is not None:
            body["next"] = {
                "id": upcoming.id,
                "title": upcoming.title,
                "state": upcoming.state,
                "start": iso(upcoming.scheduled_start),
                "end": iso(upcoming.scheduled_end),
            }
        if room is not None:
            body["consultation"] = {"id": room.consultation.id, "title": room.consultation.title}
            body["experts"] = [{"name": m.name, "online": m.online} for m in room.members.values()]
            body["station"] = room.station.status()
            shown = room.presentation_info
            body["shown"] = shown["caption"] if shown and shown.get("clinic") else None
        return web.json_response(body)


class StationOfferView(web.View):
    async def post(self) -> web.StreamResponse:
        """The clinic station's WebRTC offer → the answer with its composite and the audio."""
        state = self.request.app[STATE]
        device, _actor = station_caller(self.request)
        offer = await read_json(self.request, StationOffer)
        room = live_room(state, device.device_id)
        if room is None:
            raise ApiError(HTTPStatus.CONFLICT, _("no consultation is live for this appliance yet"))
        try:
            locale = await reader_locale(self.request)  # the station's, else the site's
            answer = await state.media.station_offer(room, offer.sdp, locale)
        except NoCommonCodec as exc:
            raise ApiError(HTTPStatus.UNPROCESSABLE_ENTITY, message_of(exc)) from None
        await room.broadcast()  # the experts see the station arrive
        return web.json_response({"sdp": answer, "type": "answer"})


class StationControlsView(web.View):
    async def post(self) -> web.StreamResponse:
        """The clinic station's own controls (volume, privacy); for its appliance's token."""
        state = self.request.app[STATE]
        device, actor = station_caller(self.request)
        controls = await read_json(self.request, StationControls)
        room = live_room(state, device.device_id)
        if controls.privacy is not None:
            command = Privacy(id=f"station-{secrets.token_hex(6)}", enabled=controls.privacy)
            detail = {"op": "privacy", "enabled": controls.privacy, "from": "clinic station"}
            try:
                ack = await state.appliances.send(device.device_id, command, allowed=STATION_OPS)
            except ApplianceUnreachable as exc:
                await state.audit.record(
                    actor, "camera.command", "device", {**detail, "result": str(exc)}
                )
                raise ApiError(HTTPStatus.SERVICE_UNAVAILABLE, message_of(exc)) from None
            result = "ok" if ack.ok else ack.error
            await state.audit.record(
                actor, "camera.command", "device", {**detail, "result": result}
            )
            if not ack.ok:
                raise ApiError(
                    HTTPStatus.UNPROCESSABLE_ENTITY, _("privacy: {reason}", reason=ack.error)
                )
        if controls.muted is not None and room is not None:
            room.station.muted = controls.muted
        if room is not None:
            await room.broadcast()
            if controls.attention:
                await room.notify({"type": "attention", "from": "clinic"})
        return web.json_response({"ok": True})


def add_station_routes(app: web.Application) -> None:
    r = app.router
    r.add_view("/station/{device}", StationPage)
    r.add_view("/api/appliances/{device}/station", StationStateView)
    r.add_view("/api/appliances/{device}/station/webrtc", StationOfferView)
    r.add_view("/api/appliances/{device}/station/controls", StationControlsView)

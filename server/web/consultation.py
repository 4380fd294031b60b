"""HTTP views: login, consultations, WebRTC signalling, camera commands, health."""

from __future__ import annotations

import logging
from http import HTTPStatus
from pathlib import Path
from typing import Annotated, Literal

from aiohttp import WSMsgType, web
from pydantic import Field, TypeAdapter, ValidationError

from clinicam.configfile import StrictModel
from clinicam.i18n import _, message_of, translate
from clinicam.protocol import describe_errors
from server.auth import SESSION_COOKIE, Throttled
from server.camera import (
    CommandNotSent,
    CommandRejected,
    CommandUnconfirmed,
    ControlHeldElsewhere,
    NotACameraCommand,
    camera_command,
)
from server.db import iso
from server.directory.consultations import opens_at
from server.errors import ApiError, read_json, read_json_object
from server.floor import FloorError
from server.login import SecondFactorDue, SignedIn, WrongCredentials
from server.media_hub import NoCommonCodec
from server.room_links import ClockPing, LatencyReport, clock_reply, record_latency
from server.room_messages import AudioOnly, FloorAction, RoomMessage, SelectMain
from server.slow_checks import ChecksBusy
from server.state import STATE
from server.web.consultations import admit, open_consultation
from server.web.locale import page, reader_locale
from server.web.security import (
    authenticated_device,
    busy,
    invited_consultation,
    require_json_body,
    session_of,
)

_LOGGER = logging.getLogger(__name__)
STATIC_DIR = Path(__file__).parent.parent / "static"
MAX_SDP = 64 * 1024
# the room's own messages, and the latency readout's (server.room_links)
_ROOM_MESSAGES: TypeAdapter[SelectMain | FloorAction | AudioOnly | ClockPing | LatencyReport] = (
    TypeAdapter(Annotated[RoomMessage | ClockPing | LatencyReport, Field(discriminator="type")])
)


class LoginBody(StrictModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class SdpBody(StrictModel):
    sdp: str = Field(min_length=1, max_length=MAX_SDP)
    type: Literal["offer"]


class ViewerOfferBody(SdpBody):
    """An expert's offer, with the shape of their screen (a phone held upright: portrait)."""

    shape: Literal["landscape", "portrait"] = "landscape"


class LoginPage(web.View):
    async def get(self) -> web.StreamResponse:
        return await page(self.request, "login.html")


class LoginView(web.View):
    async def post(self) -> web.StreamResponse:
        """Sign in with a user name and password (then a code, for roles with a second factor)."""
        state = self.request.app[STATE]
        require_json_body(self.request)
        body = await read_json(self.request, LoginBody)
        address = self.request.remote or "unknown"
        try:
            signed_in = await state.login.sign_in(body.username, body.password, address)
        except Throttled as exc:
            raise ApiError(
                HTTPStatus.TOO_MANY_REQUESTS,
                _(
                    "too many failed logins; try again in {seconds} s",
                    seconds=f"{exc.retry_after:.0f}",
                ),
                headers={"Retry-After": str(int(exc.retry_after) + 1)},
            ) from None
        except ChecksBusy:
            raise busy() from None
        except WrongCredentials as exc:
            raise ApiError(HTTPStatus.UNAUTHORIZED, message_of(exc)) from None
        if isinstance(signed_in, SecondFactorDue):
            return web.json_response(
                {"user": signed_in.username, "second_factor": signed_in.kind,
                 "pending": signed_in.pending}
            )  # fmt: skip
        return session_response(self.request, signed_in)


def session_response(request: web.Request, signed_in: SignedIn) -> web.Response:
    """The signed-in answer: the CSRF token, and the session cookie."""
    state = request.app[STATE]
    resp = web.json_response({"user": signed_in.username, "csrf": signed_in.session.csrf})
    resp.set_cookie(
        SESSION_COOKIE,
        signed_in.token,
        httponly=True,
        samesite="Strict",
        secure=state.config.http.cookie_secure,
        path="/",
    )
    return resp


class LogoutView(web.View):
    async def post(self) -> web.StreamResponse:
        """Sign out: the session ends."""
        state = self.request.app[STATE]
        state.sessions.drop(self.request.cookies.get(SESSION_COOKIE))
        _LOGGER.info("expert %s logged out", session_of(self.request).username)
        resp = web.json_response({"ok": True})
        resp.del_cookie(SESSION_COOKIE, path="/")
        return resp


class SessionView(web.View):
    async def get(self) -> web.StreamResponse:
        """The signed-in person and the CSRF token their page sends back."""
        state = self.request.app[STATE]
        session = session_of(self.request)
        expert = state.directory.expert(session.username)
        consultations = [
            {"id": c.id, "title": c.title, "patient": c.patient_id, "chair": c.chair}
            for c in state.directory.consultations
            if session.username in c.experts
        ]
        return web.json_response(
            {
                "user": session.username,
                "display_name": expert.display_name if expert else session.username,
                "role": expert.role if expert else "expert",
                "csrf": session.csrf,
                "consultations": consultations,
                "stations": [
                    {"device": d.device_id, "clinic": d.clinic}
                    for d in state.directory.stations_of(session.username)
                ],
            }
        )


class LobbyPage(web.View):
    async def get(self) -> web.StreamResponse:
        return await page(self.request, "lobby.html")


class RecordsPage(web.View):
    async def get(self) -> web.StreamResponse:
        return await page(self.request, "records.html")


class AdminPage(web.View):
    async def get(self) -> web.StreamResponse:
        return await page(self.request, "admin.html")


class RoomPage(web.View):
    async def get(self) -> web.StreamResponse:
        invited_consultation(self.request)
        return await page(self.request, "room.html")


class ConsultationView(web.View):
    async def get(self) -> web.StreamResponse:
        """One consultation as its room sees it: patient, experts, appliance, state."""
        state = self.request.app[STATE]
        c = invited_consultation(self.request)
        device = state.directory.device(c.appliance)
        names = {e.username: e.display_name for e in state.directory.all_accounts}
        known = state.directory.consultation(c.id)
        ended = known is not None and known.state == "ended"
        return web.json_response(
            {
                "id": c.id,
                "title": c.title,
                "patient": c.patient_id,
                "clinic": device.clinic if device else c.appliance,
                "appliance": c.appliance,
                "appliance_online": state.appliances.available.get(c.appliance, False),
                "chair": c.chair,
                "state": known.state if known else "scheduled",
                "start": iso(known.scheduled_start) if known else None,
                "end": iso(known.scheduled_end) if known else None,
                "opens": iso(opens_at(known)) if known else None,
                "control_holder": None if ended else state.rooms.get(c).floor.holder,
                "experts": [{"username": u, "name": names.get(u, u)} for u in c.experts],
                "you": session_of(self.request).username,
                "webcam": state.config.webcam.model_dump(),
            }
        )


class ExpertOfferView(web.View):
    async def post(self) -> web.StreamResponse:
        """An invited expert's WebRTC offer → the answer carrying their composite and audio."""
        state = self.request.app[STATE]
        c = await admit(self.request)
        body = await read_json(self.request, ViewerOfferBody)
        username = session_of(self.request).username
        room = state.rooms.get(c)
        try:
            locale = await reader_locale(self.request)  # the composite speaks it too
            answer = await state.media.expert_offer(
                room, username, body.sdp, locale=locale, shape=body.shape
            )
        except NoCommonCodec as exc:
            raise ApiError(HTTPStatus.BAD_REQUEST, message_of(exc)) from None
        await room.broadcast()  # the tiles of their (perhaps new) shape, for their clicks
        return web.json_response({"sdp": answer, "type": "answer"})


class CameraView(web.View):
    async def post(self) -> web.StreamResponse:
        """The expert holding the floor moves or adjusts the camera (pan, tilt, zoom, focus…)."""
        state = self.request.app[STATE]
        c = open_consultation(self.request)
        username = session_of(self.request).username
        body = await read_json_object(self.request)
        try:
            ack = await camera_command(state, c, username, body)
        except (CommandRejected, NotACameraCommand) as exc:
            raise ApiError(HTTPStatus.BAD_REQUEST, message_of(exc)) from None
        except ControlHeldElsewhere as exc:
            raise ApiError(HTTPStatus.FORBIDDEN, message_of(exc)) from None
        except CommandNotSent as exc:
            raise ApiError(HTTPStatus.SERVICE_UNAVAILABLE, message_of(exc)) from None
        except CommandUnconfirmed as exc:  # the outcome is unknown: say so
            raise ApiError(HTTPStatus.GATEWAY_TIMEOUT, message_of(exc)) from None
        status = HTTPStatus.OK if ack.ok else HTTPStatus.UNPROCESSABLE_ENTITY
        return web.json_response(ack.model_dump(exclude_none=True), status=status)


class RoomSocketView(web.View):
    """Room events both ways: floor control, main-window choice, who is online."""

    async def get(self) -> web.StreamResponse:
        state = self.request.app[STATE]
        c = await admit(self.request)
        origin = self.request.headers.get("Origin")
        if origin is not None and origin != f"{self.request.scheme}://{self.request.host}":
            raise ApiError(HTTPStatus.FORBIDDEN, _("cross-origin WebSocket refused"))
        username = session_of(self.request).username
        locale = await reader_locale(self.request)
        room = state.rooms.get(c)
        ws = web.WebSocketResponse(heartbeat=15.0, max_msg_size=16 * 1024)
        await ws.prepare(self.request)
        member = room.members.get(username)
        first = member is not None and not member.sockets
        await room.joined(username, ws)  # online at once: the station and the others see it
        if first:  # who joined: the report's participants
            await state.audit.record(username, "consultation.joined", f"consultation:{c.id}", {})
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                try:
                    message = _ROOM_MESSAGES.validate_json(msg.data)
                    if isinstance(message, ClockPing):  # the page's clock offset
                        await ws.send_json(clock_reply(message))
                    elif isinstance(message, LatencyReport):  # what its readout shows
                        record_latency(room, username, message)
                    else:
                        await room.handle(username, message)
                except ValidationError as exc:
                    problem = translate(describe_errors(exc), locale)
                    await ws.send_json({"type": "error", "message": problem})
                except FloorError as exc:
                    problem = translate(message_of(exc), locale)
                    await ws.send_json({"type": "error", "message": problem})
        finally:
            await room.left(username, ws)
        return ws


class ApplianceStreamView(web.View):
    async def post(self) -> web.StreamResponse:
        """An appliance offers its camera stream (WebRTC SDP offer → answer)."""
        state = self.request.app[STATE]
        device = authenticated_device(self.request)
        body = await read_json(self.request, SdpBody)
        sdp, session_id = await state.media.appliance_offer(device.device_id, body.sdp)
        return web.json_response({"sdp": sdp, "type": "answer", "session": session_id})


class ApplianceSessionView(web.View):
    async def get(self) -> web.StreamResponse:
        """The state of an appliance's streaming session (for the appliance)."""
        state = self.request.app[STATE]
        device = authenticated_device(self.request)
        if not state.media.appliance_session_alive(
            device.device_id, self.request.match_info["session"]
        ):
            raise ApiError(HTTPStatus.NOT_FOUND, _("no such stream session"))
        return web.json_response({"ok": True})


class LatencyView(web.View):
    """The consultation's live-view figures per pipeline stage (its experts may look)."""

    async def get(self) -> web.StreamResponse:
        state = self.request.app[STATE]
        figures = state.rooms.get(open_consultation(self.request)).media_figures()
        figures["loop_lag"] = state.media.loop_lag.summary()
        figures["receive_queues"] = {k: q.stats() for k, q in state.media.received.items()}
        return web.json_response(figures)


class HealthView(web.View):
    async def get(self) -> web.StreamResponse:
        """Whether the server, its database and its broker link work (for monitors)."""
        state = self.request.app[STATE]
        appliances = {
            d.device_id: {
                "online": state.appliances.available.get(d.device_id, False),
                "streaming": state.media.appliance_streaming(d.device_id),
                "frames": state.media.feeds[d.device_id].frames_received,
            }
            for d in state.directory.devices
        }
        ok = state.appliances.connected
        return web.json_response(
            {"status": "ok" if ok else "degraded", "mqtt": ok, "appliances": appliances},
            status=HTTPStatus.OK if ok else HTTPStatus.SERVICE_UNAVAILABLE,
        )


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_view("/", LobbyPage)
    r.add_view("/login", LoginPage)
    r.add_view("/room/{cid}", RoomPage)
    r.add_view("/records", RecordsPage)
    r.add_view("/admin", AdminPage)
    r.add_view("/healthz", HealthView)
    r.add_view("/api/login", LoginView)
    r.add_view("/api/logout", LogoutView)
    r.add_view("/api/session", SessionView)
    r.add_view("/api/consultations/{cid}", ConsultationView)
    r.add_view("/api/consultations/{cid}/webrtc", ExpertOfferView)
    r.add_view("/api/consultations/{cid}/camera", CameraView)
    r.add_view("/api/consultations/{cid}/latency", LatencyView)
    r.add_view("/api/consultations/{cid}/ws", RoomSocketView)
    r.add_view("/api/appliances/{device}/stream", ApplianceStreamView)
    r.add_view("/api/appliances/{device}/stream/{session}", ApplianceSessionView)
    r.add_static("/static/", STATIC_DIR, append_version=True)

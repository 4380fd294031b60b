"""HTTP views of consultations from request to end (thin: the desk holds the rules).

* ``POST /api/consultations`` clinic staff ask for one → ``{"id": …}``
* ``GET  /api/consultations?scope=mine`` the caller's requests, upcoming, live and past
* ``POST /api/consultations/<cid>/schedule|decline|cancel|end|start-now|seen``
* ``GET  /api/consultations/<cid>/invite.ics`` its calendar file
"""

from __future__ import annotations

from http import HTTPStatus

from aiohttp import web
from pydantic import Field

from clinicam.configfile import StrictModel
from clinicam.i18n import _
from server.config import ConsultationConfig
from server.directory.agenda import ConsultationAgenda
from server.directory.consultations import (
    ConsultationDesk,
    ConsultationRequest,
    ScheduleOrder,
    StartNowOrder,
)
from server.directory.invitations import calendar_of, join_path
from server.directory.models import ENDED
from server.errors import ApiError, read_json
from server.state import STATE
from server.web.security import invited_consultation, require_json_body, session_of

CONSULTATION_DESK = web.AppKey("clinicam_consultation_desk", ConsultationDesk)
AGENDA = web.AppKey("clinicam_agenda", ConsultationAgenda)


class DeclineBody(StrictModel):
    reason: str = Field(min_length=1, max_length=2000)


def _cid(request: web.Request) -> str:
    return request.match_info["cid"]


def _user(request: web.Request) -> str:
    return session_of(request).username


def open_consultation(request: web.Request, cid: str | None = None) -> ConsultationConfig:
    """The invited consultation in the URL (or ``cid``), unless it has ended (409 then):
    what happens in a room (media, camera, presenting, replay, relevance) needs one open."""
    consultation = invited_consultation(request, cid)
    known = request.app[STATE].directory.consultation(consultation.id)
    if known is not None and known.state == ENDED:
        raise ApiError(HTTPStatus.CONFLICT, _("this consultation has ended"))
    return consultation


async def admit(request: web.Request) -> ConsultationConfig:
    """An invited expert joins (the room's socket, their media): refused when ended or too
    early; the first one makes a scheduled consultation live."""
    consultation = open_consultation(request)
    await request.app[CONSULTATION_DESK].admit(_user(request), consultation.id)
    return consultation


class ConsultationsView(web.View):
    async def get(self) -> web.StreamResponse:
        """The caller's consultations: requested, upcoming, live and past."""
        if self.request.query.get("scope", "mine") != "mine":
            raise ApiError(HTTPStatus.BAD_REQUEST, _("scope: only 'mine' is offered"))
        return web.json_response(await self.request.app[AGENDA].mine(_user(self.request)))

    async def post(self) -> web.StreamResponse:
        """Clinic staff ask for a consultation (patient, reason, specialty, urgency, times)."""
        require_json_body(self.request)
        order = await read_json(self.request, ConsultationRequest)
        cid = await self.request.app[CONSULTATION_DESK].request(_user(self.request), order)
        return web.json_response({"id": cid}, status=HTTPStatus.CREATED)


class ScheduleView(web.View):
    async def post(self) -> web.StreamResponse:
        """A chair schedules a requested consultation and invites experts."""
        require_json_body(self.request)
        order = await read_json(self.request, ScheduleOrder)
        desk = self.request.app[CONSULTATION_DESK]
        await desk.schedule(_user(self.request), _cid(self.request), order)
        return web.json_response({"ok": True})


class StartNowView(web.View):
    async def post(self) -> web.StreamResponse:
        """Urgent: a chair starts a consultation at once."""
        require_json_body(self.request)
        order = await read_json(self.request, StartNowOrder)
        desk = self.request.app[CONSULTATION_DESK]
        await desk.start_now(_user(self.request), _cid(self.request), order)
        return web.json_response({"ok": True, "join": join_path(_cid(self.request))})


class DeclineView(web.View):
    async def post(self) -> web.StreamResponse:
        """A chair declines a requested consultation with a reason."""
        require_json_body(self.request)
        body = await read_json(self.request, DeclineBody)
        desk = self.request.app[CONSULTATION_DESK]
        await desk.decline(_user(self.request), _cid(self.request), body.reason)
        return web.json_response({"ok": True})


class CancelView(web.View):
    async def post(self) -> web.StreamResponse:
        """Cancel a requested or scheduled consultation (its asker or a chair)."""
        await self.request.app[CONSULTATION_DESK].cancel(_user(self.request), _cid(self.request))
        return web.json_response({"ok": True})


class EndView(web.View):
    async def post(self) -> web.StreamResponse:
        """The chair ends a live consultation."""
        await self.request.app[CONSULTATION_DESK].end(_user(self.request), _cid(self.request))
        return web.json_response({"ok": True})


class SeenView(web.View):
    async def post(self) -> web.StreamResponse:
        """The caller has seen the consultation's invitation."""
        await self.request.app[AGENDA].seen(_user(self.request), _cid(self.request))
        return web.json_response({"ok": True})


class CalendarView(web.View):
    async def get(self) -> web.StreamResponse:
        """The consultation's invitation as an iCalendar (.ics) file."""
        cid = _cid(self.request)
        booking = await self.request.app[AGENDA].booking(_user(self.request), cid)
        link = f"{self.request.scheme}://{self.request.host}{join_path(cid)}"
        return web.Response(
            body=calendar_of(booking, link),
            content_type="text/calendar",
            charset="utf-8",
            headers={"Content-Disposition": f'attachment; filename="{cid}.ics"'},
        )


def add_consultation_routes(app: web.Application) -> None:
    r = app.router
    r.add_view("/api/consultations", ConsultationsView)
    r.add_view("/api/consultations/{cid}/schedule", ScheduleView)
    r.add_view("/api/consultations/{cid}/start-now", StartNowView)
    r.add_view("/api/consultations/{cid}/decline", DeclineView)
    r.add_view("/api/consultations/{cid}/cancel", CancelView)
    r.add_view("/api/consultations/{cid}/end", EndView)
    r.add_view("/api/consultations/{cid}/seen", SeenView)
    r.add_view("/api/consultations/{cid}/invite.ics", CalendarView)

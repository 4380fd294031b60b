"""HTTP API for enrolling appliances from /admin (issue 19, item 3): thin over the desk.

``GET /api/admin/appliances`` lists them (the fleet's figures with name, room and
enrolment time); ``POST`` enrols one and answers with its one-time ``clinicam.toml``
(as JSON, or as the file itself with ``?download=1``); ``…/<device>/revoke`` and
``…/<device>/rotate`` end or renew its credentials. Admins and technicians only.
"""

from __future__ import annotations

import asyncio
from http import HTTPStatus
from typing import Any

from aiohttp import web
from pydantic import Field

from clinicam.configfile import StrictModel
from server.directory.enrollment import (
    BUNDLE_FILE,
    BrokerOutcome,
    EnrolledAppliance,
    EnrollmentDesk,
    Enrolment,
)
from server.errors import read_json
from server.state import STATE
from server.web.fleet import FLEET_ROLES, appliance_row
from server.web.fleet import AppliancesView as FleetAppliancesView
from server.web.guard import require_role

ENROLLMENT = web.AppKey("clinicam_enrollment", EnrollmentDesk)
NO_STORE = {"Cache-Control": "no-store"}


class EnrolBody(StrictModel):
    name: str = Field(min_length=1, max_length=80)
    clinic: str = Field(min_length=1, max_length=80)
    room: str | None = Field(None, max_length=80)


def _broker(outcome: BrokerOutcome) -> dict[str, Any]:
    return {"state": outcome.state, "problem": outcome.problem}


def _answer(request: web.Request, enrolment: Enrolment, status: HTTPStatus) -> web.Response:
    """The bundle as JSON for the page, or as the file itself (``?download=1``)."""
    if request.query.get("download") == "1":
        return web.Response(
            text=enrolment.bundle,
            status=status,
            content_type="application/toml",
            headers={
                **NO_STORE,
                "Content-Disposition": f'attachment; filename="{BUNDLE_FILE}"',
                "X-Clinicam-Device": enrolment.device_id,
            },
        )
    return web.json_response(
        {
            "device_id": enrolment.device_id,
            "name": enrolment.name,
            "clinic": enrolment.clinic,
            "room": enrolment.room,
            "filename": BUNDLE_FILE,
            "bundle": enrolment.bundle,
            "broker": _broker(enrolment.broker),
        },
        status=status,
        headers=NO_STORE,
    )


def _seen_url(request: web.Request) -> str:
    return str(request.url.origin())


def _enrolled(row: EnrolledAppliance | None) -> dict[str, Any]:
    if row is None:  # from the configuration file, before the directory had them
        return {"name": None, "room": None, "enrolled_at": None, "enrolled_by": None}
    return {
        "name": row.name,
        "room": row.room,
        "enrolled_at": row.enrolled_at.isoformat(),
        "enrolled_by": row.enrolled_by,
    }


class AppliancesView(FleetAppliancesView):
    """The fleet's listing with what enrolment knows; POST enrols a new appliance."""

    async def get(self) -> web.StreamResponse:
        state = self.request.app[STATE]
        require_role(self.request, *FLEET_ROLES)
        desk = self.request.app[ENROLLMENT]
        enrolled = {a.device_id: a for a in await asyncio.to_thread(desk.listing)}
        rows = [
            {**appliance_row(state, d), **_enrolled(enrolled.get(d.device_id))}
            for d in state.directory.devices
        ]
        return web.json_response(
            {
                "appliances": rows,
                "broker": state.appliances.connected,
                "broker_managed": desk.broker_managed,
            }
        )

    async def post(self) -> web.StreamResponse:
        actor = require_role(self.request, *FLEET_ROLES)
        body = await read_json(self.request, EnrolBody)
        enrolment = await self.request.app[ENROLLMENT].enrol(
            actor.username, body.name, body.clinic, body.room, seen_url=_seen_url(self.request)
        )
        return _answer(self.request, enrolment, HTTPStatus.CREATED)


class RevokeView(web.View):
    async def post(self) -> web.StreamResponse:
        """Revoke an appliance's credentials (token and broker account); audited."""
        actor = require_role(self.request, *FLEET_ROLES)
        device_id = self.request.match_info["device"]
        outcome = await self.request.app[ENROLLMENT].revoke(actor.username, device_id)
        return web.json_response(
            {"status": "revoked", "device_id": device_id, "broker": _broker(outcome)}
        )


class RotateView(web.View):
    async def post(self) -> web.StreamResponse:
        """Give an appliance new credentials; `download=1` answers with its provisioning bundle."""
        actor = require_role(self.request, *FLEET_ROLES)
        enrolment = await self.request.app[ENROLLMENT].rotate(
            actor.username, self.request.match_info["device"], seen_url=_seen_url(self.request)
        )
        return _answer(self.request, enrolment, HTTPStatus.OK)


def add_enrollment_routes(app: web.Application) -> None:
    r = app.router
    r.add_view("/api/admin/appliances", AppliancesView)
    r.add_view("/api/admin/appliances/{device}/revoke", RevokeView)
    r.add_view("/api/admin/appliances/{device}/rotate", RotateView)

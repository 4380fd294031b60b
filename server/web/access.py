"""HTTP API for access: requests, break-glass, consent and the admins' grant desk.

Each view parses the request, calls one method of the access desk
(:class:`server.access.desk.AccessDesk`) or the consent register, and renders the
result; the rules, the transaction and the audit entry are theirs.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any, Literal

from aiohttp import web
from pydantic import Field

from clinicam.configfile import StrictModel
from clinicam.i18n import _
from server.access.desk import GrantOverview, PatientAccess
from server.access.grants import Actor, IssuedGrant
from server.access.models import REQUEST_PENDING, AccessGrant, AccessRequest
from server.db import iso, utcnow
from server.errors import ApiError, read_json
from server.records.models import Patient
from server.state import STATE
from server.web.guard import (
    ACCESS_COOKIE,
    ACCESS_DESK,
    CONSENTS,
    actor_of,
    check_access,
    patient_path,
    require_role,
)
from server.web.security import session_of

_LOGGER = logging.getLogger(__name__)


class AccessBody(StrictModel):
    patient: str = Field(min_length=1, max_length=64, description="The patient's identifier.")
    operations: list[Literal["view", "edit"]] = Field(min_length=1, max_length=2)
    minutes: int | None = Field(None, ge=1, le=7 * 24 * 60)
    reason: str = Field("", max_length=2000)


class BreakGlassBody(StrictModel):
    patient: str = Field(min_length=1, max_length=64)
    reason: str = Field(max_length=2000)


class DecisionBody(StrictModel):
    approve: bool


class ConsentBody(StrictModel):
    purpose: Literal["training", "export", "recording"]
    granted: bool
    note: str = Field("", max_length=2000)


def grant_json(grant: AccessGrant, patient: Patient | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "grant_id": grant.id,
        "username": grant.username,
        "patient_id": grant.patient_id,
        "operations": sorted(grant.operation_set),
        "basis": grant.basis,
        "reason": grant.reason,
        "break_glass": grant.break_glass,
        "created_at": iso(grant.created_at),
        "expires_at": iso(grant.expires_at),
        "revoked_at": iso(grant.revoked_at),
        "revoked_by": grant.revoked_by,
        "reviewed_at": iso(grant.reviewed_at),
        "reviewed_by": grant.reviewed_by,
    }
    if patient is not None:
        out["patient"] = {"id": patient.id, "identifier": patient.external_id}
    return out


def _with_token(request: web.Request, issued: IssuedGrant, body: dict[str, Any]) -> web.Response:
    """Answer with the grant and what the new token allows; the token rides in a cookie
    scoped to this patient's records."""
    state = request.app[STATE]
    grant = issued.grant
    answer = {**body, "operations": sorted(issued.operations.split(",")), "token": issued.token}
    resp = web.json_response(answer, status=HTTPStatus.CREATED)
    resp.set_cookie(
        ACCESS_COOKIE,
        issued.token,
        path=patient_path(grant.patient_id),
        httponly=True,
        samesite="Strict",
        secure=state.config.http.cookie_secure,
        max_age=max(1, int((grant.expires_at - utcnow()).total_seconds())),
    )
    return resp


class AccessRequestView(web.View):
    """An expert asks for access; preset rules decide at once, or an admin decides later."""

    async def post(self) -> web.StreamResponse:
        actor = actor_of(self.request)
        body = await read_json(self.request, AccessBody)
        outcome = await self.request.app[ACCESS_DESK].ask(
            actor, body.patient, list(body.operations), body.minutes, body.reason
        )
        if isinstance(outcome, AccessRequest):
            return web.json_response(
                {
                    "status": REQUEST_PENDING,
                    "request_id": outcome.id,
                    "message": "no preset rule covers this request; an admin has to approve it",
                },
                status=HTTPStatus.ACCEPTED,
            )
        return _with_token(
            self.request, outcome, {"status": "granted", **grant_json(outcome.grant)}
        )


class BreakGlassView(web.View):
    async def post(self) -> web.StreamResponse:
        """Emergency access to one patient with a stated reason; short-lived, audited, reviewed."""
        actor = actor_of(self.request)
        body = await read_json(self.request, BreakGlassBody)
        issued = await self.request.app[ACCESS_DESK].break_glass(actor, body.patient, body.reason)
        return _with_token(self.request, issued, {"status": "granted", **grant_json(issued.grant)})


def _patient_json(entry: PatientAccess) -> dict[str, Any]:
    patient, req = entry.patient, entry.request
    return {
        "id": patient.id,
        "identifier": patient.external_id,
        "name": patient.display_name if entry.grants else None,
        "grants": [grant_json(g) for g in entry.grants],
        "request": None
        if req is None
        else {
            "request_id": req.id,
            "status": req.status,
            "operations": req.operations.split(","),
            "created_at": iso(req.created_at),
            "decided_at": iso(req.decided_at),
            "decided_by": req.decided_by,
        },
    }


class MyAccessView(web.View):
    """The patients this user may open now, and their consultations' patients."""

    async def get(self) -> web.StreamResponse:
        entries = await self.request.app[ACCESS_DESK].my_patients(actor_of(self.request))
        return web.json_response({"patients": [_patient_json(e) for e in entries]})


class ConsentView(web.View):
    async def get(self) -> web.StreamResponse:
        """The patient's current consent per purpose, with its history."""
        granted = await check_access(self.request, "view", "consent")
        return web.json_response(await self.request.app[CONSENTS].current(granted.patient.id))

    async def post(self) -> web.StreamResponse:
        """Record a consent decision (given or withdrawn) for one purpose; audited."""
        granted = await check_access(self.request, "edit", "consent")
        body = await read_json(self.request, ConsentBody)
        await self.request.app[CONSENTS].record(
            granted.actor.username, granted.patient, body.purpose, body.granted, body.note
        )
        return web.json_response({"ok": True}, status=HTTPStatus.CREATED)


def _overview_json(admin: Actor, overview: GrantOverview) -> dict[str, Any]:
    patients = overview.patients
    rows = [
        grant_json(g, patients.get(g.patient_id))
        | {"active": g.active(overview.now), "own": g.username == admin.username}
        for g in overview.grants
    ]
    return {
        "grants": rows,
        "break_glass_unreviewed": [
            r for r in rows if r["break_glass"] and r["reviewed_at"] is None
        ],
        "requests": [
            {
                "request_id": r.id,
                "username": r.username,
                "patient": patients[r.patient_id].external_id,
                "operations": r.operations.split(","),
                "minutes": r.minutes,
                "reason": r.reason,
                "created_at": iso(r.created_at),
                "own": r.username == admin.username,  # someone else decides
            }
            for r in overview.pending
        ],
    }


class AdminGrantsView(web.View):
    async def get(self) -> web.StreamResponse:
        """Grants, pending access requests and break-glass uses, for admins."""
        admin = require_role(self.request, "admin")
        overview = await self.request.app[ACCESS_DESK].overview()
        return web.json_response(_overview_json(admin, overview))


def _item_id(request: web.Request) -> int:
    raw = request.match_info["item"]
    if not raw.isdigit() or len(raw) > 12:
        raise ApiError(HTTPStatus.NOT_FOUND, _("not found"))
    return int(raw)


class AdminGrantActionView(web.View):
    async def post(self) -> web.StreamResponse:
        """An admin acts on a grant (`revoke`, or another action named in the path); audited."""
        desk = self.request.app[ACCESS_DESK]
        admin = require_role(self.request, "admin")
        action = self.request.match_info["action"]
        grant_id = _item_id(self.request)
        if action == "revoke":
            grant, patient = await desk.revoke(admin, grant_id)
        elif action == "review":
            grant, patient = await desk.review(admin, grant_id)
        else:
            raise ApiError(HTTPStatus.NOT_FOUND, _("unknown action"))
        return web.json_response(grant_json(grant, patient))


class AdminRequestView(web.View):
    async def post(self) -> web.StreamResponse:
        """An admin decides a pending access request (grant or refuse); audited."""
        admin = require_role(self.request, "admin")
        body = await read_json(self.request, DecisionBody)
        request_id = _item_id(self.request)
        decided = await self.request.app[ACCESS_DESK].decide(admin, request_id, body.approve)
        return web.json_response({"request_id": request_id, "status": decided.status})


class WhoAmIView(web.View):
    async def get(self) -> web.StreamResponse:
        """The signed-in person's grants, pending requests and roles."""
        actor = actor_of(self.request)
        return web.json_response({"user": session_of(self.request).username, "role": actor.role})


def add_access_routes(app: web.Application) -> None:
    r = app.router
    r.add_view("/api/access", AccessRequestView)
    r.add_view("/api/break-glass", BreakGlassView)
    # "/api/patients" (MyAccessView with search and registration): server.web.patients
    r.add_view("/api/patients/{pid}/consent", ConsentView)
    r.add_view("/api/admin/grants", AdminGrantsView)
    r.add_view("/api/admin/grants/{item}/{action}", AdminGrantActionView)
    r.add_view("/api/admin/requests/{item}", AdminRequestView)
    r.add_view("/api/me", WhoAmIView)

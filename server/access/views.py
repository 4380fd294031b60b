"""HTTP API for access: requests, break-glass, consent and the admins' grant desk."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any, Literal

from aiohttp import web
from pydantic import Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from clinicam.configfile import StrictModel
from server.access.consent import current_consents
from server.access.grants import AccessDenied, Actor, IssuedGrant
from server.access.guard import (
    ACCESS_COOKIE,
    actor_of,
    check_access,
    in_session,
    patient_path,
    require_role,
)
from server.access.models import (
    REQUEST_PENDING,
    AccessGrant,
    AccessRequest,
    Consent,
)
from server.errors import ApiError, read_json
from server.records.db import iso, utcnow
from server.records.models import Patient
from server.security import session_of
from server.state import STATE, ServerState

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
    purpose: Literal["training", "export"]
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


def _patient_by_identifier(session: Session, identifier: str) -> Patient:
    patient = session.scalar(select(Patient).where(Patient.external_id == identifier))
    if patient is None:
        raise AccessDenied(HTTPStatus.NOT_FOUND, "no such patient")
    return patient


def _may_access_records(actor: Actor) -> None:
    """Technicians look after devices; clinic staff run the bedside station (R16)."""
    if actor.role in ("technician", "clinic"):
        names = {"technician": "technician", "clinic": "clinic staff"}
        raise ApiError(HTTPStatus.FORBIDDEN, f"{names[actor.role]} accounts cannot access records")


class AccessRequestView(web.View):
    """An expert asks for access; preset rules decide at once, or an admin decides later."""

    async def post(self) -> web.StreamResponse:
        state = self.request.app[STATE]
        actor = actor_of(self.request)
        body = await read_json(self.request, AccessBody)
        _may_access_records(actor)

        def work(session: Session) -> tuple[IssuedGrant | AccessRequest, Patient]:
            patient = _patient_by_identifier(session, body.patient)
            outcome = state.access.request(
                session, actor, patient, body.operations, body.minutes, body.reason
            )
            target = f"patient:{patient.external_id}"
            if isinstance(outcome, AccessRequest):
                detail = {
                    "request": outcome.id,
                    "operations": outcome.operations,
                    "reason": body.reason,
                }
                state.audit.write(session, actor.username, "access.requested", target, detail)
            else:
                grant = outcome.grant
                detail = {
                    "grant": grant.id,
                    "operations": outcome.operations,
                    "basis": grant.basis,
                    "expires_at": iso(grant.expires_at),
                }
                state.audit.write(session, actor.username, "access.granted", target, detail)
            return outcome, patient

        try:
            outcome, _patient = await in_session(state.database, work)
        except AccessDenied as exc:
            raise ApiError(exc.status, exc.message) from None
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
        state = self.request.app[STATE]
        actor = actor_of(self.request)
        body = await read_json(self.request, BreakGlassBody)
        _may_access_records(actor)

        def work(session: Session) -> tuple[IssuedGrant, Patient]:
            patient = _patient_by_identifier(session, body.patient)
            issued = state.access.break_glass(session, actor, patient, body.reason)
            state.audit.write(
                session,
                actor.username,
                "access.break_glass",
                f"patient:{patient.external_id}",
                {
                    "grant": issued.grant.id,
                    "reason": issued.grant.reason,
                    "expires_at": iso(issued.grant.expires_at),
                    "flagged": True,
                },
            )
            return issued, patient

        try:
            issued, _patient = await in_session(state.database, work)
        except ValueError as exc:
            await state.audit.record(
                actor.username, "access.break_glass_refused", f"patient:{body.patient}", {}
            )
            raise ApiError(HTTPStatus.BAD_REQUEST, str(exc)) from None
        except AccessDenied as exc:
            raise ApiError(exc.status, exc.message) from None
        return _with_token(self.request, issued, {"status": "granted", **grant_json(issued.grant)})


class MyAccessView(web.View):
    """The patients this user may open now, and their consultations' patients."""

    async def get(self) -> web.StreamResponse:
        state = self.request.app[STATE]
        actor = actor_of(self.request)
        wanted = {c.patient_id for c in state.config.consultations if actor.username in c.experts}

        def work(session: Session) -> list[dict[str, Any]]:
            grants = state.access.active_grants(session, actor.username, utcnow())
            by_patient: dict[int, list[AccessGrant]] = {}
            for grant in grants:
                by_patient.setdefault(grant.patient_id, []).append(grant)
            latest: dict[int, AccessRequest] = {}
            for row in session.scalars(
                select(AccessRequest)
                .where(AccessRequest.username == actor.username)
                .order_by(AccessRequest.id)
            ):
                latest[row.patient_id] = row
            ids = set(by_patient) | set(latest)
            query = select(Patient).where(Patient.id.in_(ids) | Patient.external_id.in_(wanted))
            out = []
            for patient in session.scalars(query.order_by(Patient.external_id)):
                mine = by_patient.get(patient.id, [])
                req = latest.get(patient.id)
                out.append(
                    {
                        "id": patient.id,
                        "identifier": patient.external_id,
                        "name": patient.display_name if mine else None,
                        "grants": [grant_json(g) for g in mine],
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
                )
            return out

        return web.json_response({"patients": await in_session(state.database, work)})


class ConsentView(web.View):
    async def get(self) -> web.StreamResponse:
        state = self.request.app[STATE]
        granted = await check_access(self.request, "view", "consent")
        pid = granted.patient.id

        def work(session: Session) -> dict[str, Any]:
            return current_consents(session, pid)

        return web.json_response(await in_session(state.database, work))

    async def post(self) -> web.StreamResponse:
        state = self.request.app[STATE]
        granted = await check_access(self.request, "edit", "consent")
        body = await read_json(self.request, ConsentBody)

        def work(session: Session) -> None:
            session.add(
                Consent(
                    patient_id=granted.patient.id,
                    purpose=body.purpose,
                    granted=body.granted,
                    recorded_by=granted.actor.username,
                    note=body.note,
                )
            )
            state.audit.write(
                session,
                granted.actor.username,
                "consent.recorded",
                f"patient:{granted.patient.external_id}",
                {"purpose": body.purpose, "granted": body.granted},
            )

        await in_session(state.database, work)
        return web.json_response({"ok": True}, status=HTTPStatus.CREATED)


class AdminGrantsView(web.View):
    async def get(self) -> web.StreamResponse:
        state = self.request.app[STATE]
        admin = require_role(self.request, "admin")

        def work(session: Session) -> dict[str, Any]:
            now = utcnow()
            grants = session.scalars(select(AccessGrant).order_by(AccessGrant.id.desc()).limit(500))
            pending = session.scalars(
                select(AccessRequest)
                .where(AccessRequest.status == REQUEST_PENDING)
                .order_by(AccessRequest.id)
            )
            patients = {p.id: p for p in session.scalars(select(Patient))}
            rows = [
                grant_json(g, patients.get(g.patient_id))
                | {"active": g.active(now), "own": g.username == admin.username}
                for g in grants
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
                    for r in pending
                ],
            }

        return web.json_response(await in_session(state.database, work))


async def _refused(
    state: ServerState, admin: Actor, exc: AccessDenied, target: str, action: str
) -> None:
    """A refused decision changed nothing; a forbidden one (e.g. on one's own) is audited."""
    if exc.status == HTTPStatus.FORBIDDEN:
        await state.audit.record(
            admin.username,
            "access.decision_refused",
            target,
            {"action": action, "reason": exc.message},
        )


def _item_id(request: web.Request) -> int:
    raw = request.match_info["item"]
    if not raw.isdigit() or len(raw) > 12:
        raise ApiError(HTTPStatus.NOT_FOUND, "not found")
    return int(raw)


class AdminGrantActionView(web.View):
    async def post(self) -> web.StreamResponse:
        state = self.request.app[STATE]
        admin = require_role(self.request, "admin")
        action = self.request.match_info["action"]
        grant_id = _item_id(self.request)
        if action not in ("revoke", "review"):
            raise ApiError(HTTPStatus.NOT_FOUND, "unknown action")

        def work(session: Session) -> dict[str, Any]:
            if action == "revoke":
                grant = state.access.revoke(session, admin.username, grant_id)
            else:
                grant = state.access.review(session, admin.username, grant_id)
            patient = session.get(Patient, grant.patient_id)
            assert patient is not None
            state.audit.write(
                session,
                admin.username,
                "access.revoked" if action == "revoke" else "access.break_glass_reviewed",
                f"patient:{patient.external_id}",
                {"grant": grant_id, "holder": grant.username},
            )
            return grant_json(grant, patient)

        try:
            body = await in_session(state.database, work)
        except AccessDenied as exc:
            await _refused(state, admin, exc, f"grant:{grant_id}", action)
            raise ApiError(exc.status, exc.message) from None
        return web.json_response(body)


class AdminRequestView(web.View):
    async def post(self) -> web.StreamResponse:
        state = self.request.app[STATE]
        admin = require_role(self.request, "admin")
        body = await read_json(self.request, DecisionBody)
        request_id = _item_id(self.request)

        def work(session: Session) -> AccessRequest:
            decided = state.access.decide(session, admin.username, request_id, body.approve)
            patient = session.get(Patient, decided.patient_id)
            assert patient is not None
            session.flush()
            state.audit.write(
                session,
                admin.username,
                "access.request_approved" if body.approve else "access.request_denied",
                f"patient:{patient.external_id}",
                {"request": request_id, "requester": decided.username, "grant": decided.grant_id},
            )
            return decided

        try:
            decided = await in_session(state.database, work)
        except AccessDenied as exc:
            verb = "approve" if body.approve else "deny"
            await _refused(state, admin, exc, f"access-request:{request_id}", verb)
            raise ApiError(exc.status, exc.message) from None
        return web.json_response({"request_id": request_id, "status": decided.status})


class WhoAmIView(web.View):
    async def get(self) -> web.StreamResponse:
        actor = actor_of(self.request)
        return web.json_response({"user": session_of(self.request).username, "role": actor.role})


def add_access_routes(app: web.Application) -> None:
    r = app.router
    r.add_view("/api/access", AccessRequestView)
    r.add_view("/api/break-glass", BreakGlassView)
    r.add_view("/api/patients", MyAccessView)
    r.add_view("/api/patients/{pid}/consent", ConsentView)
    r.add_view("/api/admin/grants", AdminGrantsView)
    r.add_view("/api/admin/grants/{item}/{action}", AdminGrantActionView)
    r.add_view("/api/admin/requests/{item}", AdminRequestView)
    r.add_view("/api/me", WhoAmIView)

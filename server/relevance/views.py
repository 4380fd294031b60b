"""HTTP API for relevance (R7–R9): ask for it, the appliance's side, results, diagnoses.

Asking for relevance in a room sends ``model.relevance`` to the consultation's
appliance with a short-lived token scoped to that one patient; the appliance fetches
the course data through ``/api/appliances/<device>/course`` with it, runs the model
and posts the result back. If the appliance is offline, refuses, or has not answered
within ``models.appliance_timeout_s``, the server computes the result itself.
"""

from __future__ import annotations

import asyncio
import logging
from http import HTTPStatus
from typing import Any, Literal

from aiohttp import web
from pydantic import Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from clinicam.configfile import StrictModel
from clinicam.protocol import RelevanceRequest
from server.access.grants import AccessDenied, Actor
from server.access.guard import ACCESS_HEADER, check_access, in_session, patient_target
from server.config import ConsultationConfig
from server.errors import ApiError, read_json
from server.mqtt_link import RELEVANCE_OPS, ApplianceUnreachable
from server.records.db import utcnow
from server.records.models import Patient
from server.records.store import EMR, RecordStore
from server.relevance.course import course_items
from server.relevance.models import Diagnosis, RelevanceResult
from server.relevance.service import NoModel, StoredRelevance
from server.security import authenticated_device, invited_consultation, session_of
from server.state import STATE, ServerState

_LOGGER = logging.getLogger(__name__)
DEVICE_GRANT_MINUTES = 10
_TASKS: set[asyncio.Task[None]] = set()


class AskBody(StrictModel):
    where: Literal["auto", "appliance", "server"] = "auto"


class DeviceResultBody(StrictModel):
    patient: int = Field(ge=1)
    consultation: str = Field("", max_length=63)
    model_version: str = Field(min_length=1, max_length=64)
    labels: list[str] = Field(min_length=1, max_length=100)
    values: list[float] = Field(min_length=1, max_length=100)
    inputs: list[dict[str, Any]] = Field(default_factory=list, max_length=10_000)
    requested_by: str = Field("", max_length=64)


class DiagnosisBody(StrictModel):
    label: str = Field(min_length=1, max_length=64)
    consultation: str | None = Field(None, max_length=63)
    note: str = Field("", max_length=2000)


def device_actor(device_id: str) -> Actor:
    return Actor(f"device:{device_id}", "device")


def _patient_of(session: Session, consultation: ConsultationConfig) -> Patient:
    return RecordStore.ensure_patient(session, consultation.patient_id, consultation.patient_id)


def publish(state: ServerState, result: StoredRelevance, patient_external: str) -> None:
    """Show a new result in every open room of that patient (their charts redraw)."""
    for room in state.rooms.rooms_for_patient(patient_external):
        if room.show_relevance(result.to_json()):
            task = asyncio.get_running_loop().create_task(room.broadcast())
            _TASKS.add(task)
            task.add_done_callback(_TASKS.discard)


async def _run_on_server(
    state: ServerState, patient_id: int, consultation: ConsultationConfig, who: str
) -> StoredRelevance | None:
    try:
        result = await asyncio.to_thread(
            state.relevance.run_on_server, patient_id, consultation.id, who
        )
    except NoModel as exc:
        raise ApiError(HTTPStatus.SERVICE_UNAVAILABLE, str(exc)) from None
    if result is None:
        raise ApiError(
            HTTPStatus.UNPROCESSABLE_ENTITY,
            "this patient has no records the model can read yet (photos, scans, CT, "
            "voice notes or EMR entries)",
        )
    await state.audit.record(
        "server", "relevance.computed", f"patient:{consultation.patient_id}", {"id": result.id}
    )
    publish(state, result, consultation.patient_id)
    return result


async def _fallback_later(
    state: ServerState, patient_id: int, consultation: ConsultationConfig, who: str, since: Any
) -> None:
    """If the appliance has not delivered in time, compute here."""
    await asyncio.sleep(state.config.models.appliance_timeout_s)

    def newer(session: Session) -> bool:
        row = session.scalar(
            select(RelevanceResult.id).where(
                RelevanceResult.patient_id == patient_id, RelevanceResult.created_at >= since
            )
        )
        return row is not None

    if await in_session(state.database, newer):
        return
    _LOGGER.warning(
        "appliance %s too slow: computing relevance on the server", consultation.appliance
    )
    try:
        await _run_on_server(state, patient_id, consultation, who)
    except ApiError as exc:
        _LOGGER.warning("server-side relevance failed: %s", exc.message)


class AskRelevanceView(web.View):
    """An invited expert asks for the patient's relevance in the room."""

    async def post(self) -> web.StreamResponse:
        state = self.request.app[STATE]
        consultation = invited_consultation(self.request)
        body = await read_json(self.request, AskBody)
        who = session_of(self.request).username
        patient = await in_session(state.database, lambda s: _patient_of(s, consultation))
        await state.audit.record(
            who, "relevance.requested", f"patient:{consultation.patient_id}", {"where": body.where}
        )
        device = consultation.appliance
        online = state.appliances.available.get(device, False)
        if body.where == "server" or (body.where == "auto" and not online):
            result = await _run_on_server(state, patient.id, consultation, who)
            assert result is not None
            return web.json_response({"status": "done", "on": "server", **result.to_json()})
        if not online:
            raise ApiError(HTTPStatus.SERVICE_UNAVAILABLE, f"appliance {device} is offline")

        def grant(session: Session) -> str:
            row = session.get(Patient, patient.id)
            assert row is not None
            issued = state.access.issue_device_grant(
                session,
                device_actor(device).username,
                row,
                DEVICE_GRANT_MINUTES,
                basis=f"relevance for {consultation.id}",
                reason=f"requested by {who}",
            )
            return issued.token

        token = await in_session(state.database, grant)
        since = utcnow()
        command = RelevanceRequest(
            id=f"{who}-rel-{since:%H%M%S%f}",
            patient=patient.id,
            consultation=consultation.id,
            token=token,
            requested_by=who,
        )
        try:
            ack = await state.appliances.send(device, command, allowed=RELEVANCE_OPS)
        except ApplianceUnreachable as exc:
            _LOGGER.warning("relevance on %s not possible (%s): computing here", device, exc)
            ack = None
        if ack is None or not ack.ok:
            if body.where == "appliance":
                reason = ack.error if ack is not None else "unreachable"
                raise ApiError(HTTPStatus.SERVICE_UNAVAILABLE, f"appliance: {reason}")
            result = await _run_on_server(state, patient.id, consultation, who)
            assert result is not None
            return web.json_response({"status": "done", "on": "server", **result.to_json()})
        task = asyncio.create_task(_fallback_later(state, patient.id, consultation, who, since))
        _TASKS.add(task)
        task.add_done_callback(_TASKS.discard)
        return web.json_response(
            {"status": "computing", "on": f"appliance:{device}"}, status=HTTPStatus.ACCEPTED
        )


async def _device_grant(request: web.Request, patient_id: int, what: str) -> tuple[str, Patient]:
    state = request.app[STATE]
    device = authenticated_device(request)
    actor = device_actor(device.device_id)
    token = request.headers.get(ACCESS_HEADER)

    def check(session: Session) -> Patient:
        state.access.check(session, actor, patient_id, token, "view")
        patient = session.get(Patient, patient_id)
        assert patient is not None
        session.expunge(patient)
        return patient

    try:
        patient = await in_session(state.database, check)
    except AccessDenied as exc:
        await state.audit.record(
            actor.username, "access.denied", f"patient-id:{patient_id}", {"what": what}
        )
        raise ApiError(exc.status, exc.message) from None
    return actor.username, patient


def _patient_param(request: web.Request) -> int:
    raw = request.query.get("patient", "")
    if not raw.isdigit() or len(raw) > 12:
        raise ApiError(HTTPStatus.BAD_REQUEST, "patient: give the patient id from the command")
    return int(raw)


class DeviceCourseView(web.View):
    """The list of a patient's record items, for the appliance holding a device grant."""

    async def get(self) -> web.StreamResponse:
        state = self.request.app[STATE]
        actor, patient = await _device_grant(self.request, _patient_param(self.request), "course")

        def work(session: Session) -> list[dict[str, Any]]:
            return [i.ref() for i in course_items(session, state.records, patient.id)]

        items = await in_session(state.database, work)
        await state.audit.record(
            actor, "record.list", patient_target(patient), {"purpose": "relevance"}
        )
        return web.json_response({"patient": patient.id, "items": items})


class DeviceCourseItemView(web.View):
    async def get(self) -> web.StreamResponse:
        state = self.request.app[STATE]
        actor, patient = await _device_grant(self.request, _patient_param(self.request), "item")
        category = self.request.match_info["category"]
        raw = self.request.match_info["rid"]
        if not raw.isdigit() or len(raw) > 12:
            raise ApiError(HTTPStatus.NOT_FOUND, "no such record")

        def work(session: Session) -> Any:
            row = state.records.get(session, patient.id, category, int(raw))
            if row is not None:
                session.expunge(row)
            return row

        row = await in_session(state.database, work)
        if row is None:
            raise ApiError(HTTPStatus.NOT_FOUND, "no such record")
        await state.audit.record(
            actor,
            "record.read",
            patient_target(patient),
            {"category": category, "id": row.id, "purpose": "relevance"},
        )
        if category == EMR:
            return web.json_response({"fields": row.fields})
        return web.FileResponse(
            state.records.blobs.path_of(row.blob_sha256),
            headers={"Content-Type": row.media_type, "Cache-Control": "no-store"},
        )


class DeviceResultView(web.View):
    """The appliance posts the relevance it computed."""

    async def post(self) -> web.StreamResponse:
        state = self.request.app[STATE]
        body = await read_json(self.request, DeviceResultBody)
        actor, patient = await _device_grant(self.request, body.patient, "result")
        if len(body.labels) != len(body.values) or not all(0.0 <= v <= 1.0 for v in body.values):
            raise ApiError(
                HTTPStatus.BAD_REQUEST, "labels and values must pair up, values in [0, 1]"
            )

        def work(session: Session) -> StoredRelevance:
            stored = state.relevance.store(
                session,
                patient_id=patient.id,
                consultation_id=body.consultation or None,
                labels=body.labels,
                values=body.values,
                inputs=body.inputs,
                model_version=body.model_version,
                produced_by=f"appliance:{actor.removeprefix('device:')}",
                requested_by=body.requested_by,
            )
            state.audit.write(
                session, actor, "relevance.computed", patient_target(patient), {"id": stored.id}
            )
            return stored

        stored = await in_session(state.database, work)
        publish(state, stored, patient.external_id)
        return web.json_response(stored.to_json(), status=HTTPStatus.CREATED)


class PatientRelevanceView(web.View):
    async def get(self) -> web.StreamResponse:
        state = self.request.app[STATE]
        granted = await check_access(self.request, "view", "relevance")

        def work(session: Session) -> dict[str, Any]:
            latest = state.relevance.latest(session, granted.patient.id)
            diagnoses = session.scalars(
                select(Diagnosis)
                .where(Diagnosis.patient_id == granted.patient.id)
                .order_by(Diagnosis.id)
            )
            return {
                "latest": latest.to_json() if latest else None,
                "diagnoses": [
                    {
                        "label": d.label,
                        "confirmed_by": d.confirmed_by,
                        "at": d.created_at.isoformat(),
                        "consultation": d.consultation_id,
                    }
                    for d in diagnoses
                ],
            }

        return web.json_response(await in_session(state.database, work))


class DiagnosisView(web.View):
    """An expert confirms a diagnosis: the label for the learning loop (R9)."""

    async def post(self) -> web.StreamResponse:
        state = self.request.app[STATE]
        granted = await check_access(self.request, "edit", "diagnosis")
        body = await read_json(self.request, DiagnosisBody)
        try:
            labels = list(state.relevance.model().labels)
        except NoModel as exc:
            raise ApiError(HTTPStatus.SERVICE_UNAVAILABLE, str(exc)) from None
        if body.label not in labels:
            raise ApiError(HTTPStatus.BAD_REQUEST, f"label: one of the model's categories {labels}")

        def work(session: Session) -> int:
            row = Diagnosis(
                patient_id=granted.patient.id,
                label=body.label,
                confirmed_by=granted.actor.username,
                consultation_id=body.consultation,
                note=body.note,
            )
            session.add(row)
            session.flush()
            state.audit.write(
                session,
                granted.actor.username,
                "diagnosis.confirmed",
                patient_target(granted.patient),
                {"label": body.label, "id": row.id},
            )
            return row.id

        diagnosis_id = await in_session(state.database, work)
        state.learning.wake()
        return web.json_response(
            {"id": diagnosis_id, "label": body.label}, status=HTTPStatus.CREATED
        )


class DeviceModelView(web.View):
    """The model in use on the server, for appliances that follow it (R9)."""

    async def get(self) -> web.StreamResponse:
        state = self.request.app[STATE]
        authenticated_device(self.request)
        try:
            tflite, card = await asyncio.to_thread(state.relevance.files)
        except NoModel as exc:
            raise ApiError(HTTPStatus.SERVICE_UNAVAILABLE, str(exc)) from None
        part = self.request.match_info.get("part", "")
        if part == "file":
            return web.FileResponse(tflite, headers={"Content-Type": "application/octet-stream"})
        if part == "card":
            return web.FileResponse(card, headers={"Content-Type": "application/json"})
        model = state.relevance.model()
        return web.json_response({"version": model.version, "sha256": model.card.sha256})


def add_relevance_routes(app: web.Application) -> None:
    r = app.router
    r.add_view("/api/consultations/{cid}/relevance", AskRelevanceView)
    r.add_view("/api/appliances/{device}/course", DeviceCourseView)
    r.add_view("/api/appliances/{device}/course/{category}/{rid}", DeviceCourseItemView)
    r.add_view("/api/appliances/{device}/relevance", DeviceResultView)
    r.add_view("/api/appliances/{device}/model", DeviceModelView)
    r.add_view("/api/appliances/{device}/model/{part:file|card}", DeviceModelView)
    r.add_view("/api/patients/{pid}/relevance", PatientRelevanceView)
    r.add_view("/api/patients/{pid}/diagnosis", DiagnosisView)

"""HTTP API for relevance (R7–R9): ask for it, the appliance's side, results, diagnoses.

The views parse and render; :class:`server.relevance.desk.RelevanceDesk` decides where
relevance is computed, checks the appliance's grant and stores results and diagnoses
with their audit entries.
"""

from __future__ import annotations

import asyncio
import logging
from http import HTTPStatus
from typing import Any, BinaryIO, Literal

from aiohttp import web
from pydantic import Field

from clinicam.configfile import StrictModel
from clinicam.i18n import _
from server.errors import ApiError, read_json
from server.relevance.desk import RelevanceDesk
from server.state import STATE
from server.web.consultations import open_consultation
from server.web.guard import ACCESS_HEADER, check_access
from server.web.locale import reader_locale
from server.web.model_card import add_model_card_routes
from server.web.security import authenticated_device, session_of

_LOGGER = logging.getLogger(__name__)
CHUNK = 256 * 1024
RELEVANCE_DESK = web.AppKey("clinicam_relevance_desk", RelevanceDesk)


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


class AskRelevanceView(web.View):
    """An invited expert asks for the patient's relevance in the room."""

    async def post(self) -> web.StreamResponse:
        consultation = open_consultation(self.request)
        body = await read_json(self.request, AskBody)
        who = session_of(self.request).username
        asked = await self.request.app[RELEVANCE_DESK].ask(consultation, who, body.where)
        if asked.on != "server":
            return web.json_response(
                {"status": "computing", "on": asked.on}, status=HTTPStatus.ACCEPTED
            )
        if asked.result is None:
            raise ApiError(
                HTTPStatus.UNPROCESSABLE_ENTITY,
                _(
                    "none of this patient's records could be used by the model: there are "
                    "none yet (photos, scans, CT, voice notes or EMR entries), or each was "
                    "unreadable, out of the model's scope or too incomplete"
                ),
            )
        locale = await reader_locale(self.request)
        return web.json_response({"status": "done", "on": "server", **asked.result.to_json(locale)})


def _patient_param(request: web.Request) -> int:
    raw = request.query.get("patient", "")
    if not raw.isdigit() or len(raw) > 12:
        raise ApiError(HTTPStatus.BAD_REQUEST, _("patient: give the patient id from the command"))
    return int(raw)


class DeviceCourseView(web.View):
    """The list of a patient's record items, for the appliance holding a device grant."""

    async def get(self) -> web.StreamResponse:
        patient_id = _patient_param(self.request)
        device = authenticated_device(self.request)
        token = self.request.headers.get(ACCESS_HEADER)
        items = await self.request.app[RELEVANCE_DESK].course(device.device_id, patient_id, token)
        return web.json_response({"patient": patient_id, "items": items})


class DeviceCourseItemView(web.View):
    async def get(self) -> web.StreamResponse:
        """One record item of the patient's course, for the appliance holding a device grant."""
        patient_id = _patient_param(self.request)
        device = authenticated_device(self.request)
        token = self.request.headers.get(ACCESS_HEADER)
        category = self.request.match_info["category"]
        raw = self.request.match_info["rid"]
        if not raw.isdigit() or len(raw) > 12:
            raise ApiError(HTTPStatus.NOT_FOUND, _("no such record"))
        record = await self.request.app[RELEVANCE_DESK].course_record(
            device.device_id, patient_id, token, category, int(raw)
        )
        if record.stream is None:
            return web.json_response({"fields": record.fields})
        return await stream_file(
            self.request,
            record.stream,
            {"Content-Type": record.media_type, "Cache-Control": "no-store"},
            size=record.size,
        )


async def stream_file(
    request: web.Request, stream: BinaryIO, headers: dict[str, str], *, size: int | None
) -> web.StreamResponse:
    """Send ``stream`` (``size`` bytes, if known) to the client in chunks, then close it."""
    try:
        resp = web.StreamResponse(headers=headers)
        resp.content_length = size
        await resp.prepare(request)
        while chunk := await asyncio.to_thread(stream.read, CHUNK):
            await resp.write(chunk)
        await resp.write_eof()
        return resp
    finally:
        stream.close()


class DeviceResultView(web.View):
    """The appliance posts the relevance it computed."""

    async def post(self) -> web.StreamResponse:
        body = await read_json(self.request, DeviceResultBody)
        device = authenticated_device(self.request)
        stored = await self.request.app[RELEVANCE_DESK].store_device_result(
            device.device_id,
            self.request.headers.get(ACCESS_HEADER),
            patient_id=body.patient,
            consultation_id=body.consultation or None,
            labels=body.labels,
            values=body.values,
            inputs=body.inputs,
            model_version=body.model_version,
            requested_by=body.requested_by,
        )
        return web.json_response(stored.to_json(), status=HTTPStatus.CREATED)


class PatientRelevanceView(web.View):
    async def get(self) -> web.StreamResponse:
        """The patient's latest relevance results, with the model that made them."""
        granted = await check_access(self.request, "view", "relevance")
        found = await self.request.app[RELEVANCE_DESK].for_patient(granted.patient.id)
        locale = await reader_locale(self.request)
        return web.json_response(
            {
                "latest": found.latest.to_json(locale) if found.latest else None,
                "diagnoses": [
                    {
                        "label": d.label,
                        "confirmed_by": d.confirmed_by,
                        "at": d.created_at.isoformat(),
                        "consultation": d.consultation_id,
                    }
                    for d in found.diagnoses
                ],
                "trained_models": [
                    {
                        "model_version": t.model_version,
                        "label": t.label,
                        "items": t.items,
                        "consent_checked_at": t.consent_checked_at.isoformat(),
                    }
                    for t in found.trained
                ],
            }
        )


class DiagnosisView(web.View):
    """An expert confirms a diagnosis: the label for the learning loop (R9)."""

    async def post(self) -> web.StreamResponse:
        granted = await check_access(self.request, "edit", "diagnosis")
        body = await read_json(self.request, DiagnosisBody)
        diagnosis_id = await self.request.app[RELEVANCE_DESK].confirm_diagnosis(
            granted.actor.username, granted.patient, body.label, body.consultation, body.note
        )
        return web.json_response(
            {"id": diagnosis_id, "label": body.label}, status=HTTPStatus.CREATED
        )


class DeviceModelView(web.View):
    """The model in use on the server, for appliances that follow it (R9)."""

    async def get(self) -> web.StreamResponse:
        state = self.request.app[STATE]
        authenticated_device(self.request)
        tflite, card = await asyncio.to_thread(state.relevance.files)
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
    add_model_card_routes(app)

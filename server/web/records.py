"""HTTP API for one patient's records: list, upload, read, render, EMR entries.

Every handler first passes :func:`server.web.guard.check_access`, which looks up the
caller's grant for the patient in the path. A view then parses the request, calls one
method of :class:`server.records.service.RecordsService`, and renders what it returns.
Uploads are streamed to a staging file here (the size limit enforced as bytes arrive);
what happens to them then is :mod:`server.records.filing`'s.
"""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
from http import HTTPStatus
from pathlib import Path

from aiohttp import web
from pydantic import AwareDatetime, Field, JsonValue

from clinicam.configfile import StrictModel
from clinicam.i18n import _, message_of
from server.db import iso
from server.errors import ApiError, read_json
from server.records.export import ExportLeak
from server.records.fhir.export_bundle import FHIR_JSON
from server.records.ingest import Category
from server.records.ingest.sandbox import start_sandbox
from server.records.service import RecordsService
from server.records.serving import NO_SNIFF, record_json
from server.records.staging import STAGING_FOLDER, body_chunks
from server.records.store import EMR
from server.state import STATE
from server.web.blob_response import stream_content
from server.web.guard import check_access

__all__ = ["RECORDS", "receive_upload", "record_json", "staging_dir"]

CHUNK = 256 * 1024
MAX_EMR_FIELDS = 200
RECORDS = web.AppKey("clinicam_records", RecordsService)


class EmrBody(StrictModel):
    fields: dict[str, JsonValue] = Field(min_length=1, max_length=MAX_EMR_FIELDS)
    recorded_at: AwareDatetime | None = None


class EmrPatch(StrictModel):
    fields: dict[str, JsonValue] = Field(min_length=1, max_length=MAX_EMR_FIELDS)


def staging_dir(request: web.Request) -> Path:
    folder = request.app[STATE].config.state_dir / STAGING_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    return folder


async def receive_upload(request: web.Request, max_bytes: int) -> Path:
    """Stream the body to a staging file; 413 as soon as it passes ``max_bytes``."""
    limit_mb = max_bytes // (1024 * 1024)
    too_large = ApiError(
        HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
        _("upload larger than the limit of {mb} MB", mb=limit_mb),
    )
    if request.content_length is not None and request.content_length > max_bytes:
        raise too_large
    fd, name = tempfile.mkstemp(dir=staging_dir(request), prefix="upload-")
    path = Path(name)
    size = 0
    try:
        with os.fdopen(fd, "wb") as out:
            async for chunk in body_chunks(request, CHUNK):  # 408 when the client goes silent
                size += len(chunk)
                if size > max_bytes:
                    raise too_large
                out.write(chunk)
    except BaseException:  # cut off, stalled, too large, cancelled: the file goes at once
        path.unlink(missing_ok=True)
        raise
    if size == 0:
        path.unlink(missing_ok=True)
        raise ApiError(HTTPStatus.UNPROCESSABLE_ENTITY, _("the upload is empty"))
    return path


def _declared(request: web.Request) -> Category | None:
    raw = request.query.get("category")
    if not raw:
        return None
    try:
        return Category(raw)
    except ValueError:
        known = ", ".join(c.value for c in Category)
        raise ApiError(
            HTTPStatus.BAD_REQUEST,
            _("unknown category {name}; use one of {known}", name=repr(raw), known=known),
        ) from None


def _flag(request: web.Request, name: str) -> bool:
    return request.query.get(name, "").lower() in ("1", "true", "yes")


def _record_path(request: web.Request) -> tuple[str, str]:
    return request.match_info["category"], request.match_info["rid"]


class RecordsView(web.View):
    """GET: the patient's records by category. POST: upload one file."""

    async def get(self) -> web.StreamResponse:
        granted = await check_access(self.request, "view", "records")
        patient = granted.patient
        overview = await self.request.app[RECORDS].overview(granted.actor.username, patient)
        body = {
            "patient": {
                "id": patient.id,
                "identifier": patient.external_id,
                "name": patient.display_name,
                "group": patient.patient_group,
            },
            "access": {
                "operations": sorted(granted.operations),
                "expires_at": iso(granted.grant.expires_at),
                "break_glass": granted.grant.break_glass,
            },
            **overview,
        }
        return web.json_response(body)

    async def post(self) -> web.StreamResponse:
        state = self.request.app[STATE]
        granted = await check_access(self.request, "edit", "upload")
        declared = _declared(self.request)
        title = self.request.query.get("title")
        confirmed = _flag(self.request, "confirm_identity_mismatch")
        staged = await receive_upload(self.request, state.records.max_bytes)
        try:
            filed = await self.request.app[RECORDS].upload(
                granted.actor.username,
                granted.patient,
                staged,
                declared=declared,
                title=title,
                confirm_identity_mismatch=confirmed,
            )
        finally:
            staged.unlink(missing_ok=True)
        return web.json_response(filed, status=HTTPStatus.CREATED)


class RecordView(web.View):
    async def get(self) -> web.StreamResponse:
        """One record's fields."""
        granted = await check_access(self.request, "view", "metadata")
        body = await self.request.app[RECORDS].metadata(
            granted.actor.username, granted.patient, *_record_path(self.request)
        )
        return web.json_response(body)

    async def patch(self) -> web.StreamResponse:
        """Change fields of an EMR entry (files are immutable: upload a new one instead)."""
        body = await read_json(self.request, EmrPatch)
        granted = await check_access(self.request, "edit", "emr")
        category, rid = _record_path(self.request)
        if category != EMR:
            raise ApiError(HTTPStatus.METHOD_NOT_ALLOWED, _("only EMR entries can be edited"))
        changed = await self.request.app[RECORDS].update_emr(
            granted.actor.username, granted.patient, category, rid, dict(body.fields)
        )
        return web.json_response(changed)


class ContentView(web.View):
    async def get(self) -> web.StreamResponse:
        """A record's file, watermarked for the reader where it is an image."""
        granted = await check_access(self.request, "view", "content")
        content = await self.request.app[RECORDS].content(
            granted.actor.username, granted.patient, *_record_path(self.request)
        )
        shown = "inline" if content.inline else "attachment"
        headers = {
            "Content-Disposition": f'{shown}; filename="{content.filename}"',
            "Content-Security-Policy": "sandbox; default-src 'none'",
            **NO_SNIFF,
        }
        return await stream_content(self.request, content, headers)


class ThumbnailView(web.View):
    async def get(self) -> web.StreamResponse:
        """A small preview image of a record."""
        granted = await check_access(self.request, "view", "thumbnail")
        data = await self.request.app[RECORDS].thumbnail(
            granted.actor.username, granted.patient, *_record_path(self.request)
        )
        return web.Response(body=data, content_type="image/jpeg", headers=NO_SNIFF)


def _float_param(request: web.Request, name: str) -> float | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ApiError(HTTPStatus.BAD_REQUEST, _("{name} must be a number", name=name)) from None
    if not -1e6 < value < 1e6:
        raise ApiError(HTTPStatus.BAD_REQUEST, _("{name} is out of range", name=name))
    return value


class RenderView(web.View):
    """A CT slice as PNG with the requested window centre and width."""

    async def get(self) -> web.StreamResponse:
        granted = await check_access(self.request, "view", "render")
        center = _float_param(self.request, "center")
        width = _float_param(self.request, "width")
        data = await self.request.app[RECORDS].render(
            granted.actor.username,
            granted.patient,
            *_record_path(self.request),
            center=center,
            width=width,
        )
        return web.Response(body=data, content_type="image/png", headers=NO_SNIFF)


class EmrView(web.View):
    async def post(self) -> web.StreamResponse:
        """Add an EMR entry to the patient's record."""
        granted = await check_access(self.request, "edit", "emr")
        body = await read_json(self.request, EmrBody)
        created = await self.request.app[RECORDS].add_emr(
            granted.actor.username, granted.patient, dict(body.fields), body.recorded_at
        )
        return web.json_response(created, status=HTTPStatus.CREATED)


class ExportView(web.View):
    """A de-identified ZIP of the patient's records, only with recorded export consent."""

    async def get(self) -> web.StreamResponse:
        granted = await check_access(self.request, "view", "export")
        try:
            result, data = await self.request.app[RECORDS].export(
                granted.actor.username, granted.patient
            )
        except ExportLeak as exc:  # a fault of the server, not a refusal: a 500 that says so
            raise ApiError(HTTPStatus.INTERNAL_SERVER_ERROR, message_of(exc)) from None
        return web.Response(
            body=data,
            content_type="application/zip",
            headers={
                "Content-Disposition": f'attachment; filename="{result.pseudonym}.zip"',
                "Cache-Control": "private, no-store",
            },
        )


class FhirExportView(web.View):
    """The patient's record as one FHIR R4 Bundle; ``?deidentified=true`` for the
    de-identified one (which needs export consent, as the ZIP does)."""

    async def get(self) -> web.StreamResponse:
        granted = await check_access(self.request, "view", "fhir export")
        deidentified = _flag(self.request, "deidentified")
        try:
            result = await self.request.app[RECORDS].export_fhir(
                granted.actor.username, granted.patient, deidentified=deidentified
            )
        except ExportLeak as exc:  # a fault of the server, not a refusal: a 500 that says so
            raise ApiError(HTTPStatus.INTERNAL_SERVER_ERROR, message_of(exc)) from None
        name = re.sub(r"[^A-Za-z0-9._-]", "_", result.patient)[:80] or "patient"
        return web.Response(
            body=result.data,
            content_type=FHIR_JSON,
            headers={
                "Content-Disposition": f'attachment; filename="{name}.fhir.json"',
                **NO_SNIFF,
            },
        )


class PatientDataView(web.View):
    """Delete everything stored about a patient (admin with an edit grant; audited)."""

    async def delete(self) -> web.StreamResponse:
        granted = await check_access(self.request, "edit", "delete patient")
        removal = await self.request.app[RECORDS].delete_patient(
            granted.actor.username, granted.actor.role, granted.patient
        )
        return web.json_response({"deleted": True, "blobs_removed": removal.blobs_removed})


async def _start_sandbox(app: web.Application) -> None:
    """The parse sandbox is ready before the server listens (no upload waits for it)."""
    await asyncio.to_thread(start_sandbox)


def add_record_routes(app: web.Application) -> None:
    app.on_startup.append(_start_sandbox)
    r = app.router
    base = "/api/patients/{pid}/records"
    r.add_view(base, RecordsView)
    r.add_view("/api/patients/{pid}/data", PatientDataView)
    r.add_view("/api/patients/{pid}/export", ExportView)
    r.add_view("/api/patients/{pid}/fhir", FhirExportView)
    r.add_view("/api/patients/{pid}/emr", EmrView)
    r.add_view(base + "/{category}/{rid}", RecordView)
    r.add_view(base + "/{category}/{rid}/content", ContentView)
    r.add_view(base + "/{category}/{rid}/thumbnail", ThumbnailView)
    r.add_view(base + "/{category}/{rid}/render", RenderView)

"""HTTP API for one patient's records: list, upload, read, render, EMR entries.

Every handler first passes :func:`server.access.guard.check_access`, which looks up the
caller's grant for the patient in the path. Uploads are streamed to a staging file
with the size limit enforced as bytes arrive, inspected (category from content,
metadata stripped), then filed: blob first, row second, audit entry third.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
from collections.abc import Awaitable
from http import HTTPStatus
from pathlib import Path
from typing import Any

from aiohttp import web
from pydantic import AwareDatetime, Field, JsonValue
from sqlalchemy.orm import Session

from clinicam.configfile import StrictModel
from server.access.consent import current_consents, has_consent
from server.access.guard import Granted, check_access, in_session, patient_target
from server.access.models import CONSENT_EXPORT
from server.errors import ApiError, read_json
from server.records.db import iso
from server.records.export import ExportLeak, ExportResult, build_export
from server.records.filing import IdentityMismatch, RecordFiling, RecordRefused, RecordTooLarge
from server.records.ingest import Category, IngestError, IngestLimits, Inspected
from server.records.ingest.sandbox import inspect_sandboxed, start_sandbox
from server.records.models import ClinicalPhoto, CtImage, EmrEntry, RecordScan
from server.records.render import render_dicom, thumbnail
from server.records.serving import INLINE_TYPES, NO_SNIFF, SERVED_TYPES
from server.records.staging import STAGING_FOLDER, body_chunks
from server.records.store import CATEGORIES, EMR, DuplicateRecord, FiledRecord
from server.state import STATE

_LOGGER = logging.getLogger(__name__)

CHUNK = 256 * 1024
MAX_EMR_FIELDS = 200


class EmrBody(StrictModel):
    fields: dict[str, JsonValue] = Field(min_length=1, max_length=MAX_EMR_FIELDS)
    recorded_at: AwareDatetime | None = None


class EmrPatch(StrictModel):
    fields: dict[str, JsonValue] = Field(min_length=1, max_length=MAX_EMR_FIELDS)


def record_json(category: str, row: Any) -> dict[str, Any]:
    """What the page shows about one record (never the blob path)."""
    out: dict[str, Any] = {
        "category": category,
        "id": row.id,
        "created_at": iso(row.created_at),
        "created_by": row.created_by,
    }
    if category == EMR:
        out.update(fields=row.fields, recorded_at=iso(row.recorded_at))
        return out
    out.update(
        media_type=row.media_type, size=row.blob_size, sha256=row.blob_sha256, title=row.title
    )
    if isinstance(row, ClinicalPhoto):
        out.update(
            width=row.width,
            height=row.height,
            taken_at=iso(row.taken_at),
            source=row.source,
            requested_by=row.requested_by,
            consultation=row.consultation_id,
        )
    elif isinstance(row, RecordScan):
        out.update(width=row.width, height=row.height, page_count=row.page_count)
    elif isinstance(row, CtImage):
        out.update(
            study_uid=row.study_uid,
            series_uid=row.series_uid,
            instance_uid=row.instance_uid,
            modality=row.modality,
            slice_position=row.slice_position,
        )
    else:
        out.update(duration_s=row.duration_s, sample_rate=row.sample_rate, codec=row.codec)
    return out


def staging_dir(request: web.Request) -> Path:
    folder = request.app[STATE].config.state_dir / STAGING_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    return folder


async def receive_upload(request: web.Request, max_bytes: int) -> Path:
    """Stream the body to a staging file; 413 as soon as it passes ``max_bytes``."""
    limit_mb = max_bytes // (1024 * 1024)
    too_large = ApiError(
        HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"upload larger than the limit of {limit_mb} MB"
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
        raise ApiError(HTTPStatus.UNPROCESSABLE_ENTITY, "the upload is empty")
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
            HTTPStatus.BAD_REQUEST, f"unknown category {raw!r}; use one of {known}"
        ) from None


def _flag(request: web.Request, name: str) -> bool:
    return request.query.get(name, "").lower() in ("1", "true", "yes")


async def _emr_change(change: Awaitable[dict[str, Any]]) -> dict[str, Any]:
    """An EMR create/update; an entry over the size limit is a 413."""
    try:
        return await change
    except RecordTooLarge as exc:
        raise ApiError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, exc.reason) from None


def _limits(request: web.Request) -> IngestLimits:
    records = request.app[STATE].config.records
    return IngestLimits(max_image_pixels=records.max_image_megapixels * 1_000_000)


class RecordsView(web.View):
    """GET: the patient's records by category. POST: upload one file."""

    async def get(self) -> web.StreamResponse:
        state = self.request.app[STATE]
        granted = await check_access(self.request, "view", "records")

        def work(session: Session) -> dict[str, Any]:
            listing = state.records.listing(session, granted.patient.id)
            return {
                "patient": {
                    "id": granted.patient.id,
                    "identifier": granted.patient.external_id,
                    "name": granted.patient.display_name,
                    "group": granted.patient.patient_group,
                },
                "access": {
                    "operations": sorted(granted.operations),
                    "expires_at": iso(granted.grant.expires_at),
                    "break_glass": granted.grant.break_glass,
                },
                "consent": current_consents(session, granted.patient.id),
                "records": {
                    category: [record_json(category, row) for row in rows]
                    for category, rows in listing.items()
                },
            }

        body = await in_session(state.database, work)
        await state.audit.record(
            granted.actor.username, "record.list", patient_target(granted.patient), {}
        )
        return web.json_response(body)

    async def post(self) -> web.StreamResponse:
        state = self.request.app[STATE]
        granted = await check_access(self.request, "edit", "upload")
        declared = _declared(self.request)
        title = self.request.query.get("title")
        confirmed = _flag(self.request, "confirm_identity_mismatch")
        staged = await receive_upload(self.request, state.records.max_bytes)
        try:
            filed = await self._file(granted, staged, declared, title, confirmed)
        except (IngestError, RecordRefused) as exc:
            await state.audit.record(
                granted.actor.username,
                "record.upload_refused",
                patient_target(granted.patient),
                {"declared": declared.value if declared else None, "reason": exc.reason},
            )
            status = exc.status if isinstance(exc, IngestError) else HTTPStatus.CONFLICT
            code = "identity_mismatch" if isinstance(exc, IdentityMismatch) else None
            raise ApiError(HTTPStatus(status), exc.reason, code=code) from None
        except DuplicateRecord as exc:
            raise ApiError(HTTPStatus.CONFLICT, str(exc)) from None
        finally:
            staged.unlink(missing_ok=True)
        return web.json_response(filed, status=HTTPStatus.CREATED)

    async def _file(
        self,
        granted: Granted,
        staged: Path,
        declared: Category | None,
        title: str | None,
        confirmed: bool,
    ) -> dict[str, Any]:
        state = self.request.app[STATE]
        limits = _limits(self.request)
        inspected: Inspected = await asyncio.to_thread(inspect_sandboxed, staged, declared, limits)
        content = inspected.cleaned or staged
        try:

            def work(session: Session) -> tuple[FiledRecord, dict[str, Any]]:
                patient = session.merge(granted.patient, load=False)
                filed, row = RecordFiling(state.records).file_content(
                    session,
                    patient,
                    inspected,
                    content,
                    actor=granted.actor.username,
                    title=title,
                    via="upload",
                    confirm_identity_mismatch=confirmed,
                )
                return filed, record_json(filed.category, row)

            filed, body = await in_session(state.database, work)
        finally:
            if inspected.cleaned is not None:
                inspected.cleaned.unlink(missing_ok=True)
        _LOGGER.info(
            "%s filed %s %d (%d bytes) for patient %d",
            granted.actor.username,
            filed.category,
            filed.record_id,
            filed.size,
            granted.patient.id,
        )
        return body


async def load_record(request: web.Request, operation: str, what: str) -> tuple[Granted, str, Any]:
    state = request.app[STATE]
    granted = await check_access(request, operation, what)
    category = request.match_info["category"]
    raw = request.match_info["rid"]
    if category not in CATEGORIES or not raw.isdigit() or len(raw) > 12:
        raise ApiError(HTTPStatus.NOT_FOUND, "no such record")
    rid = int(raw)

    def work(session: Session) -> Any:
        row = state.records.get(session, granted.patient.id, category, rid)
        if row is not None:
            session.expunge(row)
        return row

    row = await in_session(state.database, work)
    if row is None:  # includes another patient's record id under this patient's path
        await state.audit.record(
            granted.actor.username,
            "access.denied",
            patient_target(granted.patient),
            {"what": what, "category": category, "id": rid, "status": 404},
        )
        raise ApiError(HTTPStatus.NOT_FOUND, "no such record")
    if operation == "view":  # a change is audited with the change itself
        await state.audit.record(
            granted.actor.username,
            "record.read",
            patient_target(granted.patient),
            {"what": what, "category": category, "id": rid},
        )
    return granted, category, row


class RecordView(web.View):
    async def get(self) -> web.StreamResponse:
        _, category, row = await load_record(self.request, "view", "metadata")
        return web.json_response(record_json(category, row))

    async def patch(self) -> web.StreamResponse:
        """Change fields of an EMR entry (files are immutable: upload a new one instead)."""
        state = self.request.app[STATE]
        body = await read_json(self.request, EmrPatch)
        granted, category, row = await load_record(self.request, "edit", "emr")
        if category != EMR:
            raise ApiError(HTTPStatus.METHOD_NOT_ALLOWED, "only EMR entries can be edited")

        def work(session: Session) -> dict[str, Any]:
            entry = session.get(EmrEntry, row.id)
            assert entry is not None
            patient = session.merge(granted.patient, load=False)
            RecordFiling(state.records).update_emr(
                session, patient, entry, dict(body.fields), actor=granted.actor.username
            )
            return record_json(EMR, entry)

        return web.json_response(await _emr_change(in_session(state.database, work)))


def _blob_path(request: web.Request, row: Any) -> Path:
    return request.app[STATE].records.blobs.path_of(row.blob_sha256)


class ContentView(web.View):
    async def get(self) -> web.StreamResponse:
        _, category, row = await load_record(self.request, "view", "content")
        if category == EMR:
            raise ApiError(HTTPStatus.NOT_FOUND, "EMR entries have no file content")
        extension = {"application/dicom": "dcm"}.get(row.media_type, row.media_type.split("/")[-1])
        media_type = (
            row.media_type if row.media_type in SERVED_TYPES else "application/octet-stream"
        )
        shown = "inline" if media_type in INLINE_TYPES else "attachment"
        return web.FileResponse(
            _blob_path(self.request, row),
            headers={
                "Content-Type": media_type,
                "Content-Disposition": f'{shown}; filename="{category}-{row.id}.{extension}"',
                "Content-Security-Policy": "sandbox; default-src 'none'",
                **NO_SNIFF,
            },
        )


class ThumbnailView(web.View):
    async def get(self) -> web.StreamResponse:
        _, category, row = await load_record(self.request, "view", "thumbnail")
        if category not in (Category.PHOTO.value, Category.SCAN.value) or not str(
            row.media_type
        ).startswith("image/"):
            raise ApiError(HTTPStatus.NOT_FOUND, "this record has no thumbnail")
        data = await asyncio.to_thread(thumbnail, _blob_path(self.request, row))
        return web.Response(body=data, content_type="image/jpeg", headers=NO_SNIFF)


def _float_param(request: web.Request, name: str) -> float | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ApiError(HTTPStatus.BAD_REQUEST, f"{name} must be a number") from None
    if not -1e6 < value < 1e6:
        raise ApiError(HTTPStatus.BAD_REQUEST, f"{name} is out of range")
    return value


class RenderView(web.View):
    """A CT slice as PNG with the requested window centre and width."""

    async def get(self) -> web.StreamResponse:
        _, category, row = await load_record(self.request, "view", "render")
        if category != Category.CT.value:
            raise ApiError(HTTPStatus.NOT_FOUND, "only CT images are rendered")
        center = _float_param(self.request, "center")
        width = _float_param(self.request, "width")
        if width is not None and width <= 0:
            raise ApiError(HTTPStatus.BAD_REQUEST, "width must be positive")
        try:
            data = await asyncio.to_thread(
                render_dicom, _blob_path(self.request, row), center=center, width=width
            )
        except ValueError as exc:
            raise ApiError(HTTPStatus.UNPROCESSABLE_ENTITY, str(exc)) from None
        return web.Response(body=data, content_type="image/png", headers=NO_SNIFF)


class EmrView(web.View):
    async def post(self) -> web.StreamResponse:
        state = self.request.app[STATE]
        granted = await check_access(self.request, "edit", "emr")
        body = await read_json(self.request, EmrBody)

        def work(session: Session) -> dict[str, Any]:
            patient = session.merge(granted.patient, load=False)
            entry = RecordFiling(state.records).add_emr(
                session,
                patient,
                dict(body.fields),
                body.recorded_at,
                actor=granted.actor.username,
                via="api",
            )
            return record_json(EMR, entry)

        created = await _emr_change(in_session(state.database, work))
        return web.json_response(created, status=HTTPStatus.CREATED)


class ExportView(web.View):
    """A de-identified ZIP of the patient's records, only with recorded export consent."""

    async def get(self) -> web.StreamResponse:
        state = self.request.app[STATE]
        granted = await check_access(self.request, "view", "export")
        folder = staging_dir(self.request)

        def work(session: Session) -> ExportResult:
            if not has_consent(session, granted.patient.id, CONSENT_EXPORT):
                raise ApiError(
                    HTTPStatus.CONFLICT, "no export consent is recorded for this patient"
                )
            patient = session.merge(granted.patient, load=False)
            return build_export(session, state.records, patient, folder)

        try:
            result = await in_session(state.database, work)
        except ApiError:
            await state.audit.record(
                granted.actor.username,
                "record.export_refused",
                patient_target(granted.patient),
                {"reason": "no consent"},
            )
            raise
        except ExportLeak as exc:
            raise ApiError(HTTPStatus.INTERNAL_SERVER_ERROR, str(exc)) from None
        await state.audit.record(
            granted.actor.username,
            "record.export",
            patient_target(granted.patient),
            {"pseudonym": result.pseudonym, "files": result.files, "left_out": result.left_out},
        )
        try:
            data = await asyncio.to_thread(result.path.read_bytes)
        finally:
            result.path.unlink(missing_ok=True)
        return web.Response(
            body=data,
            content_type="application/zip",
            headers={
                "Content-Disposition": f'attachment; filename="{result.pseudonym}.zip"',
                "Cache-Control": "private, no-store",
            },
        )


class PatientDataView(web.View):
    """Delete everything stored about a patient (admin with an edit grant; audited)."""

    async def delete(self) -> web.StreamResponse:
        state = self.request.app[STATE]
        granted = await check_access(self.request, "edit", "delete patient")
        if granted.actor.role != "admin":
            raise ApiError(HTTPStatus.FORBIDDEN, "only admin accounts delete a patient's data")

        def work(session: Session) -> tuple[list[str], list[str]]:
            patient = session.merge(granted.patient, load=False)
            found = state.records.delete_patient(session, patient)
            state.audit.write(
                session,
                granted.actor.username,
                "patient.deleted",
                patient_target(granted.patient),
                {"blobs": len(found[0]), "archive_segments": len(found[1])},
            )
            return found

        candidates, segments = await in_session(state.database, work)
        removed = await asyncio.to_thread(state.records.drop_unreferenced, candidates)
        await asyncio.to_thread(state.records.drop_segments, state.archive.root, segments)
        return web.json_response({"deleted": True, "blobs_removed": len(removed)})


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
    r.add_view("/api/patients/{pid}/emr", EmrView)
    r.add_view(base + "/{category}/{rid}", RecordView)
    r.add_view(base + "/{category}/{rid}/content", ContentView)
    r.add_view(base + "/{category}/{rid}/thumbnail", ThumbnailView)
    r.add_view(base + "/{category}/{rid}/render", RenderView)

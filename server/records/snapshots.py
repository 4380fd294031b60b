"""Appliance snapshots filed as clinical photos of the consultation's patient (R13).

The appliance posts each still with its device token and a JSON header saying which
consultation asked for it, who asked and when it was taken. The server files it only
into a consultation bound to that very appliance, so a device can never write into
another clinic's patients. A retried upload of the same still is answered 200 with the
record already filed.
"""

from __future__ import annotations

import asyncio
import json
import logging
from http import HTTPStatus
from pathlib import Path
from typing import Any

from aiohttp import web
from pydantic import AwareDatetime, ConfigDict, Field, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from clinicam.configfile import StrictModel
from server.access.guard import in_session
from server.errors import ApiError
from server.records.ingest import Category, IngestError, IngestLimits
from server.records.ingest.sandbox import inspect_sandboxed
from server.records.models import SOURCE_SNAPSHOT, ClinicalPhoto
from server.records.store import safe_title
from server.records.views import receive_upload, record_json
from server.security import authenticated_device
from server.state import STATE

_LOGGER = logging.getLogger(__name__)
SNAPSHOT_HEADER = "X-Clinicam-Snapshot"
MAX_SNAPSHOT_BYTES = 64 * 1024 * 1024


class SnapshotInfo(StrictModel):
    """The appliance's description of a still (extra fields it sends are ignored)."""

    model_config = ConfigDict(extra="ignore")

    file: str = Field(max_length=120)
    taken_at: AwareDatetime
    command_id: str = Field(max_length=64)
    requested_by: str = Field("", max_length=64)
    consultation: str = Field("", max_length=63)


def _info(request: web.Request) -> SnapshotInfo:
    raw = request.headers.get(SNAPSHOT_HEADER, "")
    try:
        return SnapshotInfo.model_validate(json.loads(raw))
    except (ValueError, ValidationError) as exc:
        raise ApiError(HTTPStatus.BAD_REQUEST, f"bad {SNAPSHOT_HEADER} header: {exc}") from None


class ApplianceSnapshotView(web.View):
    async def post(self) -> web.StreamResponse:
        state = self.request.app[STATE]
        device = authenticated_device(self.request)
        info = _info(self.request)
        bound = [c for c in state.config.consultations if c.appliance == device.device_id]
        chosen = [c for c in bound if c.id == info.consultation] if info.consultation else bound
        if len(chosen) != 1:
            raise ApiError(
                HTTPStatus.UNPROCESSABLE_ENTITY,
                f"snapshot names consultation {info.consultation!r}, which is not one "
                f"consultation bound to {device.device_id}",
            )
        consultation = chosen[0]
        staged = await receive_upload(self.request, MAX_SNAPSHOT_BYTES)
        try:
            limits = IngestLimits(
                max_image_pixels=state.config.records.max_image_megapixels * 1_000_000
            )
            inspected = await asyncio.to_thread(inspect_sandboxed, staged, Category.PHOTO, limits)
        except IngestError as exc:
            staged.unlink(missing_ok=True)
            raise ApiError(HTTPStatus(exc.status), exc.reason) from None
        content: Path = inspected.cleaned or staged

        def work(session: Session) -> tuple[dict[str, Any], bool, str]:
            patient = state.records.ensure_patient(
                session, consultation.patient_id, consultation.patient_id
            )
            with content.open("rb") as stream:
                ref = state.records.blobs.put(stream, max_bytes=MAX_SNAPSHOT_BYTES)
            existing = session.scalar(
                select(ClinicalPhoto).where(
                    ClinicalPhoto.patient_id == patient.id,
                    ClinicalPhoto.blob_sha256 == ref.sha256,
                    ClinicalPhoto.source == SOURCE_SNAPSHOT,
                )
            )
            if existing is not None:
                return record_json("clinical_photo", existing), False, patient.external_id
            row = ClinicalPhoto(
                patient_id=patient.id,
                created_by=f"device:{device.device_id}",
                blob_sha256=ref.sha256,
                blob_size=ref.size,
                media_type=inspected.media_type,
                title=safe_title(f"Snapshot {info.taken_at:%Y-%m-%d %H:%M:%S} UTC"),
                width=int(inspected.metadata["width"]),
                height=int(inspected.metadata["height"]),
                taken_at=info.taken_at,
                source=SOURCE_SNAPSHOT,
                requested_by=info.requested_by or None,
                consultation_id=consultation.id,
            )
            session.add(row)
            session.flush()
            state.audit.write(
                session,
                f"device:{device.device_id}",
                "record.create",
                f"patient:{patient.external_id}",
                {
                    "category": "clinical_photo",
                    "id": row.id,
                    "source": SOURCE_SNAPSHOT,
                    "requested_by": info.requested_by,
                    "consultation": consultation.id,
                    "taken_at": info.taken_at.isoformat(),
                },
            )
            return record_json("clinical_photo", row), True, patient.external_id

        try:
            body, created, _external = await in_session(state.database, work)
        finally:
            staged.unlink(missing_ok=True)
            if inspected.cleaned is not None:
                inspected.cleaned.unlink(missing_ok=True)
        if created:
            _LOGGER.info(
                "snapshot from %s filed for %s (requested by %s)",
                device.device_id,
                consultation.id,
                info.requested_by or "nobody",
            )
        status = HTTPStatus.CREATED if created else HTTPStatus.OK
        return web.json_response(body, status=status)


def add_snapshot_routes(app: web.Application) -> None:
    app.router.add_view("/api/appliances/{device}/snapshots", ApplianceSnapshotView)

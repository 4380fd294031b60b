"""HTTP API for appliance snapshots: the appliance posts each still with its device
token and a JSON header saying which consultation asked for it, who asked and when it
was taken; :class:`server.records.appliance_snapshots.SnapshotService` files it.
A retried upload of the same still is answered 200 with the record already filed.
"""

from __future__ import annotations

import json
from http import HTTPStatus

from aiohttp import web
from pydantic import AwareDatetime, ConfigDict, Field, ValidationError

from clinicam.configfile import StrictModel
from clinicam.i18n import _
from server.errors import ApiError
from server.records.appliance_snapshots import MAX_SNAPSHOT_BYTES, SnapshotService, Still
from server.web.records import receive_upload
from server.web.security import authenticated_device

SNAPSHOT_HEADER = "X-Clinicam-Snapshot"
SNAPSHOTS = web.AppKey("clinicam_snapshots", SnapshotService)


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
        raise ApiError(
            HTTPStatus.BAD_REQUEST,
            _("bad {header} header: {problem}", header=SNAPSHOT_HEADER, problem=str(exc)),
        ) from None


class ApplianceSnapshotView(web.View):
    async def post(self) -> web.StreamResponse:
        """An appliance uploads a still taken in the consultation (filed in the records)."""
        device = authenticated_device(self.request)
        info = _info(self.request)
        still = Still(info.taken_at, info.requested_by, info.consultation)
        snapshots = self.request.app[SNAPSHOTS]
        consultation = snapshots.consultation_for(device.device_id, still)
        staged = await receive_upload(self.request, MAX_SNAPSHOT_BYTES)
        try:
            filed = await snapshots.file(device.device_id, consultation, still, staged)
        finally:
            staged.unlink(missing_ok=True)
        status = HTTPStatus.CREATED if filed.created else HTTPStatus.OK
        return web.json_response(filed.body, status=status)


def add_snapshot_routes(app: web.Application) -> None:
    app.router.add_view("/api/appliances/{device}/snapshots", ApplianceSnapshotView)

"""Back-fill routes (R17): the appliance asks what the archive holds and sends what it
lacks (see :mod:`server.archive.backfill` for the checks and the cut).

* ``GET  /api/appliances/<device>/archive/coverage?start=…&end=…``
* ``POST /api/appliances/<device>/archive/segments?start=…``
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path

from aiohttp import web

from clinicam.i18n import _, message_of
from server.archive.backfill import (
    FUTURE_SLACK,
    MAX_SEGMENT_BYTES,
    BadSegment,
    store_segment,
)
from server.archive.recorder import ArchiveRecorder
from server.archive.service import merged_ranges
from server.errors import ApiError
from server.records.staging import body_chunks
from server.state import STATE
from server.web.archive import _when
from server.web.security import authenticated_device

CHUNK = 256 * 1024


async def _receive(request: web.Request, into: Path) -> None:
    size = 0
    with into.open("wb") as fh:
        async for chunk in body_chunks(request, CHUNK):  # 408 when the appliance goes silent
            size += len(chunk)
            if size > MAX_SEGMENT_BYTES:
                raise ApiError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, _("segment too large"))
            fh.write(chunk)


class CoverageView(web.View):
    async def get(self) -> web.StreamResponse:
        """Which times of a range the server's archive already holds for this appliance."""
        state = self.request.app[STATE]
        device = authenticated_device(self.request)
        start, end = _when(self.request, "start"), _when(self.request, "end")
        spans = await asyncio.to_thread(state.archive.device_spans, device.device_id, start, end)
        return web.json_response({"runs": merged_ranges(spans)})


class BackfillView(web.View):
    async def post(self) -> web.StreamResponse:
        """An appliance uploads a segment it kept while its link was down (backfill)."""
        state = self.request.app[STATE]
        device = authenticated_device(self.request)
        start = _when(self.request, "start")
        if start > datetime.now(UTC) + FUTURE_SLACK:
            raise ApiError(HTTPStatus.UNPROCESSABLE_ENTITY, _("start: in the future"))
        consultation = state.rooms.serving(device.device_id)
        if consultation is None:
            raise ApiError(HTTPStatus.CONFLICT, _("this appliance is in no consultation"))
        archive: ArchiveRecorder = state.archive
        incoming = archive.root / device.device_id / "incoming"
        incoming.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=incoming, suffix=".upload")
        os.close(fd)
        upload = Path(name)
        try:
            await _receive(self.request, upload)
            result = await asyncio.to_thread(
                store_segment, archive, device.device_id, consultation, upload, start
            )
        except BadSegment as exc:
            raise ApiError(HTTPStatus.UNPROCESSABLE_ENTITY, message_of(exc)) from None
        finally:
            upload.unlink(missing_ok=True)
        return web.json_response(result, status=201 if result["stored"] else 200)


def add_backfill_routes(app: web.Application) -> None:
    r = app.router
    r.add_view("/api/appliances/{device}/archive/coverage", CoverageView)
    r.add_view("/api/appliances/{device}/archive/segments", BackfillView)

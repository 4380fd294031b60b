"""HTTP API for the archive (R6): what was recorded for a patient, and a time range as MP4.

Both need a current view grant for the patient, like every other record; a range is
answered by remuxing the overlapping segments (no re-encoding) into one MP4 that is
streamed to the client and deleted afterwards.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
from collections.abc import Callable
from datetime import datetime
from http import HTTPStatus
from pathlib import Path

import av
from aiohttp import web
from pydantic import AwareDatetime, Field

from clinicam.configfile import StrictModel
from clinicam.i18n import _
from server.archive.service import ArchiveReader, merged_ranges
from server.errors import ApiError, read_json
from server.media.watermark import Watermark
from server.state import STATE
from server.web.consultations import open_consultation
from server.web.guard import check_access
from server.web.records import staging_dir
from server.web.security import session_of

_LOGGER = logging.getLogger(__name__)
CHUNK = 256 * 1024
ARCHIVE_READER = web.AppKey("clinicam_archive_reader", ArchiveReader)


def _when(request: web.Request, name: str) -> datetime:
    raw = request.query.get(name, "")
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(
            HTTPStatus.BAD_REQUEST,
            _("{name}: give an ISO 8601 time, e.g. 2026-11-24T10:00:00Z", name=name),
        ) from None
    if value.tzinfo is None:
        raise ApiError(
            HTTPStatus.BAD_REQUEST, _("{name}: include a time zone (Z or +hh:mm)", name=name)
        )
    return value


class ArchiveIndexView(web.View):
    async def get(self) -> web.StreamResponse:
        """The patient's archived live video: the time ranges there are footage for."""
        granted = await check_access(self.request, "view", "archive index")
        spans = await self.request.app[ARCHIVE_READER].index(granted)
        return web.json_response(
            {
                "segments": [
                    {
                        "start": s.start.isoformat(),
                        "end": s.end.isoformat(),
                        "consultation": s.consultation,
                        "device": s.device,
                    }
                    for s in spans
                ],
                "ranges": merged_ranges([(s.start, s.end) for s in spans]),
            }
        )


def _viewer_mark(request: web.Request) -> Callable[[av.VideoFrame], av.VideoFrame]:
    """The viewer's watermark, sized on the first frame."""
    state = request.app[STATE]
    username = session_of(request).username
    account = state.directory.expert(username)
    viewer = account.display_name if account else username
    marks: dict[tuple[int, int], Watermark] = {}

    def mark(frame: av.VideoFrame) -> av.VideoFrame:
        size = (frame.width, frame.height)
        if size not in marks:
            marks[size] = Watermark(viewer, *size)
        return marks[size].apply(frame.reformat(format="yuv420p"))

    return mark


def _staging_file(request: web.Request, prefix: str) -> Path:
    fd, name = tempfile.mkstemp(dir=staging_dir(request), prefix=prefix, suffix=".mp4")
    os.close(fd)
    return Path(name)


class ArchiveVideoView(web.View):
    async def get(self) -> web.StreamResponse:
        """The archived video of a time range (`start`, `end`), watermarked for the viewer."""
        state = self.request.app[STATE]
        granted = await check_access(self.request, "view", "archive video")
        start, end = _when(self.request, "start"), _when(self.request, "end")
        mark = _viewer_mark(self.request) if state.config.watermark else None
        out = _staging_file(self.request, "range-")
        try:
            result = await self.request.app[ARCHIVE_READER].export_range(
                granted, start, end, out, mark
            )
            resp = web.StreamResponse(
                headers={
                    "Content-Type": "video/mp4",
                    "Content-Disposition": 'inline; filename="archive.mp4"',
                    "Cache-Control": "private, no-store",
                    "X-Clinicam-Range-Start": result.start_utc.isoformat(),
                    "X-Clinicam-Range-End": result.end_utc.isoformat(),
                }
            )
            resp.content_length = out.stat().st_size
            await resp.prepare(self.request)
            with out.open("rb") as stream:
                while chunk := await asyncio.to_thread(stream.read, CHUNK):
                    await resp.write(chunk)
            await resp.write_eof()
            return resp
        finally:
            out.unlink(missing_ok=True)


class ReplayBody(StrictModel):
    consultation: str = Field(min_length=1, max_length=63)
    start: AwareDatetime
    end: AwareDatetime


class ArchiveReplayView(web.View):
    """Show an archived range in a consultation's live window while the appliance is offline."""

    async def post(self) -> web.StreamResponse:
        body = await read_json(self.request, ReplayBody)
        consultation = open_consultation(self.request, body.consultation)
        granted = await check_access(self.request, "view", "archive replay")
        if consultation.patient_id != granted.patient.external_id:
            raise ApiError(
                HTTPStatus.UNPROCESSABLE_ENTITY,
                _("only this consultation's patient's archive can be replayed in it"),
            )
        out = _staging_file(self.request, "replay-")
        note = await self.request.app[ARCHIVE_READER].replay(
            granted, consultation, body.start, body.end, out
        )
        return web.json_response({"note": note})


def add_archive_routes(app: web.Application) -> None:
    app.router.add_view("/api/patients/{pid}/archive", ArchiveIndexView)
    app.router.add_view("/api/patients/{pid}/archive/video", ArchiveVideoView)
    app.router.add_view("/api/patients/{pid}/archive/replay", ArchiveReplayView)

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
from datetime import datetime, timedelta
from http import HTTPStatus
from pathlib import Path
from typing import Any

import av
from aiohttp import web
from pydantic import AwareDatetime, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from clinicam.configfile import StrictModel
from server.access.guard import check_access, in_session, patient_target
from server.archive.index import ArchiveSegment
from server.archive.range import NothingArchived, remux_range, watermarked_range
from server.errors import ApiError, read_json
from server.media.watermark import Watermark
from server.records.views import staging_dir
from server.security import invited_consultation, session_of
from server.state import STATE

_LOGGER = logging.getLogger(__name__)
MAX_LISTED = 5000
JOIN_GAP = timedelta(seconds=2)
CHUNK = 256 * 1024


def _when(request: web.Request, name: str) -> datetime:
    raw = request.query.get(name, "")
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(
            HTTPStatus.BAD_REQUEST, f"{name}: give an ISO 8601 time, e.g. 2026-11-24T10:00:00Z"
        ) from None
    if value.tzinfo is None:
        raise ApiError(HTTPStatus.BAD_REQUEST, f"{name}: include a time zone (Z or +hh:mm)")
    return value


def merged_ranges(spans: list[tuple[datetime, datetime]]) -> list[dict[str, str]]:
    """Contiguous recording runs (segments less than two seconds apart are one run)."""
    runs: list[list[datetime]] = []
    for start, end in sorted(spans):
        if runs and start - runs[-1][1] <= JOIN_GAP:
            runs[-1][1] = max(runs[-1][1], end)
        else:
            runs.append([start, end])
    return [{"start": s.isoformat(), "end": e.isoformat()} for s, e in runs]


class ArchiveIndexView(web.View):
    async def get(self) -> web.StreamResponse:
        state = self.request.app[STATE]
        granted = await check_access(self.request, "view", "archive index")

        def work(session: Session) -> list[dict[str, Any]]:
            rows = session.scalars(
                select(ArchiveSegment)
                .where(ArchiveSegment.patient_id == granted.patient.id)
                .order_by(ArchiveSegment.start_utc.desc())
                .limit(MAX_LISTED)
            )
            return [
                {
                    "start": r.start_utc,
                    "end": r.end_utc,
                    "consultation": r.consultation_id,
                    "device": r.device_id,
                }
                for r in rows
            ]

        segments = list(reversed(await in_session(state.database, work)))
        await state.audit.record(
            granted.actor.username, "archive.list", patient_target(granted.patient), {}
        )
        return web.json_response(
            {
                "segments": [
                    {**s, "start": s["start"].isoformat(), "end": s["end"].isoformat()}
                    for s in segments
                ],
                "ranges": merged_ranges([(s["start"], s["end"]) for s in segments]),
            }
        )


def _viewer_mark(request: web.Request) -> Callable[[av.VideoFrame], av.VideoFrame]:
    """The viewer's watermark, sized on the first frame."""
    state = request.app[STATE]
    username = session_of(request).username
    account = state.config.expert(username)
    viewer = account.display_name if account else username
    marks: dict[tuple[int, int], Watermark] = {}

    def mark(frame: av.VideoFrame) -> av.VideoFrame:
        size = (frame.width, frame.height)
        if size not in marks:
            marks[size] = Watermark(viewer, *size)
        return marks[size].apply(frame.reformat(format="yuv420p"))

    return mark


class ArchiveVideoView(web.View):
    async def get(self) -> web.StreamResponse:
        state = self.request.app[STATE]
        granted = await check_access(self.request, "view", "archive video")
        start, end = _when(self.request, "start"), _when(self.request, "end")
        limit = state.config.archive.max_range_minutes
        if end <= start:
            raise ApiError(HTTPStatus.BAD_REQUEST, "end must be after start")
        if end - start > timedelta(minutes=limit):
            raise ApiError(HTTPStatus.BAD_REQUEST, f"ask for at most {limit} minutes at a time")
        segments = await asyncio.to_thread(
            state.archive.segments_for, granted.patient.id, start, end
        )
        fd, name = tempfile.mkstemp(dir=staging_dir(self.request), prefix="range-", suffix=".mp4")
        out = Path(name)
        os.close(fd)
        try:
            try:
                if state.config.watermark:
                    mark = _viewer_mark(self.request)
                    result = await asyncio.to_thread(
                        watermarked_range, segments, start, end, out, mark
                    )
                else:
                    result = await asyncio.to_thread(remux_range, segments, start, end, out)
            except NothingArchived:
                raise ApiError(
                    HTTPStatus.NOT_FOUND, "no recorded video in that time range"
                ) from None
            await state.audit.record(
                granted.actor.username,
                "archive.read",
                patient_target(granted.patient),
                {
                    "start": result.start_utc.isoformat(),
                    "end": result.end_utc.isoformat(),
                    "segments": result.segments_used,
                },
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
        state = self.request.app[STATE]
        body = await read_json(self.request, ReplayBody)
        consultation = invited_consultation(self.request, body.consultation)
        granted = await check_access(self.request, "view", "archive replay")
        if consultation.patient_id != granted.patient.external_id:
            raise ApiError(
                HTTPStatus.UNPROCESSABLE_ENTITY,
                "only this consultation's patient's archive can be replayed in it",
            )
        if state.media.appliance_streaming(consultation.appliance):
            raise ApiError(HTTPStatus.CONFLICT, "the appliance is live: nothing to replay over")
        if not timedelta(0) < body.end - body.start <= timedelta(minutes=30):
            raise ApiError(HTTPStatus.BAD_REQUEST, "replay between 1 s and 30 minutes")
        segments = await asyncio.to_thread(
            state.archive.segments_for, granted.patient.id, body.start, body.end
        )
        fd, name = tempfile.mkstemp(dir=staging_dir(self.request), prefix="replay-", suffix=".mp4")
        os.close(fd)
        out = Path(name)
        try:
            result = await asyncio.to_thread(remux_range, segments, body.start, body.end, out)
            state.media.replay(consultation.appliance, out)
        except NothingArchived:
            out.unlink(missing_ok=True)
            raise ApiError(HTTPStatus.NOT_FOUND, "no recorded video in that time range") from None
        except BaseException:
            out.unlink(missing_ok=True)
            raise
        note = f"archive {result.start_utc:%H:%M:%S}–{result.end_utc:%H:%M:%S} UTC"
        state.rooms.get(consultation)  # the room exists, so the note shows when experts join
        for room in state.rooms.rooms_of(consultation.appliance):
            room.live_note = note
            await room.broadcast()
        await state.audit.record(
            granted.actor.username,
            "archive.replay",
            patient_target(granted.patient),
            {
                "consultation": consultation.id,
                "start": body.start.isoformat(),
                "end": body.end.isoformat(),
            },
        )
        return web.json_response({"note": note})


def add_archive_routes(app: web.Application) -> None:
    app.router.add_view("/api/patients/{pid}/archive", ArchiveIndexView)
    app.router.add_view("/api/patients/{pid}/archive/video", ArchiveVideoView)
    app.router.add_view("/api/patients/{pid}/archive/replay", ArchiveReplayView)

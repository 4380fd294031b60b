"""HTTP API for recorded calls (O4), beside the archive's:

* ``GET /api/patients/<pid>/recordings``: the patient's recorded consultations;
* ``GET /api/patients/<pid>/recordings/<id>/video``: one as MP4 (with the viewer's
  watermark where the site burns it in);
* ``GET /api/patients/<pid>/recordings/<id>/export``: a de-identified copy to download.

Every one needs a current view grant for the patient (none: 404, like every read), and
every one is audited by the service (:mod:`server.archive.call_reader`).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiohttp import web

from server.archive.call_reader import NO_RECORDING, CallRecordings
from server.domain_errors import NotFound
from server.state import STATE
from server.web.archive import CHUNK, _staging_file, _viewer_mark
from server.web.guard import check_access

CALL_RECORDINGS = web.AppKey("clinicam_call_recordings", CallRecordings)


def _recording_id(request: web.Request) -> int:
    raw = request.match_info["rid"]
    if not raw.isdigit() or len(raw) > 12:
        raise NotFound(NO_RECORDING)
    return int(raw)


async def _send_file(
    request: web.Request, out: Path, disposition: str, cache: str = "private, no-store"
) -> web.StreamResponse:
    resp = web.StreamResponse(
        headers={
            "Content-Type": "video/mp4",
            "Content-Disposition": disposition,
            "Cache-Control": cache,
        }
    )
    resp.content_length = out.stat().st_size
    await resp.prepare(request)
    with out.open("rb") as stream:
        while chunk := await asyncio.to_thread(stream.read, CHUNK):
            await resp.write(chunk)
    await resp.write_eof()
    return resp


class RecordingIndexView(web.View):
    async def get(self) -> web.StreamResponse:
        """The patient's call recordings (consultation, start, end, segments)."""
        granted = await check_access(self.request, "view", "call recordings")
        found = await self.request.app[CALL_RECORDINGS].index(granted)
        return web.json_response(
            {
                "recordings": [
                    {
                        "id": r.id,
                        "consultation": r.consultation_id,
                        "start": r.start.isoformat(),
                        "end": r.end.isoformat(),
                        "segments": r.segments,
                        "size": r.size,
                    }
                    for r in found
                ]
            }
        )


class RecordingVideoView(web.View):
    async def get(self) -> web.StreamResponse:
        """One call recording as MP4, watermarked for the viewer where the site says so."""
        granted = await check_access(self.request, "view", "call recording")
        rid = _recording_id(self.request)
        mark = _viewer_mark(self.request) if self.request.app[STATE].config.watermark else None
        out = _staging_file(self.request, "recording-")
        try:
            await self.request.app[CALL_RECORDINGS].replay(granted, rid, out, mark)
            return await _send_file(self.request, out, 'inline; filename="recording.mp4"')
        finally:
            out.unlink(missing_ok=True)


class RecordingExportView(web.View):
    async def get(self) -> web.StreamResponse:
        """One call recording, de-identified (needs export consent)."""
        granted = await check_access(self.request, "view", "call recording export")
        rid = _recording_id(self.request)
        out = _staging_file(self.request, "recording-export-")
        try:
            name = await self.request.app[CALL_RECORDINGS].export_deidentified(granted, rid, out)
            return await _send_file(self.request, out, f'attachment; filename="{name}"')
        finally:
            out.unlink(missing_ok=True)


def add_recording_routes(app: web.Application) -> None:
    app.router.add_view("/api/patients/{pid}/recordings", RecordingIndexView)
    app.router.add_view("/api/patients/{pid}/recordings/{rid}/video", RecordingVideoView)
    app.router.add_view("/api/patients/{pid}/recordings/{rid}/export", RecordingExportView)

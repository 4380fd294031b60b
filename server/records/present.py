"""Sharing a record item into a consultation's presentation view (R10).

Only the consultation's own patient's records can be shared, by an invited expert
who holds a view grant for that patient: the other experts in the room are there to
consult on that patient, so they may see what is shared, and nothing else.
"""

from __future__ import annotations

import asyncio
import io
import logging
from http import HTTPStatus
from pathlib import Path
from typing import Any

import av
from aiohttp import web
from PIL import Image
from pydantic import Field, StrictBool

from clinicam.configfile import StrictModel
from server.config import LiveViewConfig
from server.errors import ApiError, read_json
from server.media.presentation import presentation_frame, text_frame
from server.records.render import render_dicom
from server.records.store import EMR
from server.records.views import load_record
from server.security import invited_consultation, session_of
from server.state import STATE

_LOGGER = logging.getLogger(__name__)


class PresentBody(StrictModel):
    consultation: str = Field(min_length=1, max_length=63)
    center: float | None = Field(None, ge=-1e5, le=1e5)
    width: float | None = Field(None, gt=0, le=1e5)


def _draw(
    category: str,
    row: Any,
    blob: Path | None,
    body: PresentBody,
    caption: str,
    live: LiveViewConfig,
) -> av.VideoFrame:
    size = (live.width, live.height)
    if category == EMR:
        lines = [f"{k}: {v}" for k, v in row.fields.items()]
        return text_frame(lines, caption, *size)
    assert blob is not None
    if category == "ct_image":
        png = render_dicom(blob, center=body.center, width=body.width)
        return presentation_frame(Image.open(io.BytesIO(png)), caption, *size)
    if category == "voice_note":
        lines = [f"Voice note, {row.duration_s:.0f} s ({row.codec})", "Play it from the records."]
        return text_frame(lines, caption, *size)
    if not str(row.media_type).startswith("image/"):
        lines = [f"Document: {row.page_count} page(s)", "Open it from the records."]
        return text_frame(lines, caption, *size)
    with Image.open(blob) as picture:
        picture.draft("RGB", size)
        return presentation_frame(picture, caption, *size)


class PresentView(web.View):
    async def post(self) -> web.StreamResponse:
        state = self.request.app[STATE]
        body = await read_json(self.request, PresentBody)
        consultation = invited_consultation(self.request, body.consultation)
        granted, category, row = await load_record(self.request, "view", "present")
        if consultation.patient_id != granted.patient.external_id:
            raise ApiError(
                HTTPStatus.UNPROCESSABLE_ENTITY,
                "only records of this consultation's patient can be shared in it",
            )
        who = session_of(self.request).username
        title = getattr(row, "title", None) or category.replace("_", " ")
        caption = f"{title} — shared by {who}"
        blob = None if category == EMR else state.records.blobs.path_of(row.blob_sha256)
        try:
            frame = await asyncio.to_thread(
                _draw, category, row, blob, body, caption, state.config.live
            )
        except (OSError, ValueError) as exc:
            raise ApiError(
                HTTPStatus.UNPROCESSABLE_ENTITY, f"cannot show this item: {exc}"
            ) from None
        room = state.rooms.get(consultation)
        info = {"category": category, "id": row.id, "by": who, "caption": caption}
        room.present(frame, info)
        await room.broadcast()
        await state.audit.record(
            who,
            "record.presented",
            f"patient:{granted.patient.external_id}",
            {"category": category, "id": row.id, "consultation": consultation.id},
        )
        return web.json_response(info)


class ClinicShareBody(StrictModel):
    clinic: StrictBool = Field(description="Show the presented item at the clinic station.")


class PresentationView(web.View):
    async def patch(self) -> web.StreamResponse:
        """Share the presented item with the clinic (the bedside screen), or stop (R16)."""
        state = self.request.app[STATE]
        consultation = invited_consultation(self.request)
        body = await read_json(self.request, ClinicShareBody)
        room = state.rooms.get(consultation)
        info = room.presentation_info
        if info is None:
            raise ApiError(HTTPStatus.CONFLICT, "nothing is presented: share a record item first")
        who = session_of(self.request).username
        detail = {"category": info["category"], "id": info["id"], "consultation": consultation.id}
        action = "record.shown_to_clinic" if body.clinic else "record.hidden_from_clinic"
        # The disclosure is logged before it happens: no entry, no showing.
        await state.audit.record(who, action, f"patient:{consultation.patient_id}", detail)
        room.share_with_clinic(body.clinic)
        await room.broadcast()
        return web.json_response(room.presentation_info)

    async def delete(self) -> web.StreamResponse:
        state = self.request.app[STATE]
        consultation = invited_consultation(self.request)
        room = state.rooms.get(consultation)
        room.present(None, None)
        await room.broadcast()
        return web.json_response({"ok": True})


def add_present_routes(app: web.Application) -> None:
    r = app.router
    r.add_view("/api/patients/{pid}/records/{category}/{rid}/present", PresentView)
    r.add_view("/api/consultations/{cid}/presentation", PresentationView)

"""Sharing a record item into a consultation's presentation view (R10, R16).

Only the consultation's own patient's records can be shared, by an invited expert
who holds a view grant for that patient: the other experts in the room are there to
consult on that patient, so they may see what is shared, and nothing else. Showing the
shared item to the clinic (the bedside screen) is a disclosure, logged before it
happens: no entry, no showing.
"""

from __future__ import annotations

import asyncio
import io
import logging
from dataclasses import dataclass
from typing import Any, BinaryIO, Protocol

import av
from PIL import Image, ImageOps

from clinicam.i18n import LOCALES, N_, Text, _, message_of
from server.config import ConsultationConfig, LiveViewConfig
from server.domain_errors import Conflict, Unprocessable
from server.media.presentation import presentation_frame, text_frame
from server.records.blobs import BlobStore
from server.records.filing import Audit
from server.records.models import Patient
from server.records.render import render_dicom
from server.records.service import RecordsService
from server.records.store import EMR

_LOGGER = logging.getLogger(__name__)


class Stage(Protocol):
    """A consultation room as far as presenting goes (:class:`server.room.ConsultationRoom`)."""

    presentation_info: dict[str, Any] | None

    def present(self, frame: Any | None, info: dict[str, Any] | None) -> None: ...

    def share_with_clinic(self, shared: bool) -> None: ...

    async def broadcast(self) -> None: ...


class Stages(Protocol):
    """The rooms, by consultation (:class:`server.room.RoomRegistry`)."""

    def get(self, consultation: ConsultationConfig) -> Stage: ...


@dataclass(frozen=True)
class Window:
    """A CT window asked for with the item (None: the file's own)."""

    center: float | None = None
    width: float | None = None


class NotThisPatient(Unprocessable):
    """A record of another patient than the consultation's."""


class NothingPresented(Conflict):
    """Showing to the clinic with nothing presented."""


# What an item without a title is called in the caption (by its category).
CATEGORY_NAMES = {
    "clinical_photo": N_("clinical photo"),
    "record_scan": N_("record scan"),
    "ct_image": N_("CT image"),
    "voice_note": N_("voice note"),
    EMR: N_("EMR entry"),
}


def _content(
    category: str, row: Any, blob: BinaryIO | None, window: Window, live: LiveViewConfig
) -> Image.Image | list[str]:
    """What the item shows: a picture, or lines of text (marked ones are translated)."""
    if category == EMR:
        return [f"{k}: {v}" for k, v in row.fields.items()]
    assert blob is not None
    if category == "ct_image":
        png = render_dicom(blob, center=window.center, width=window.width)
        return Image.open(io.BytesIO(png))
    if category == "voice_note":
        seconds = f"{row.duration_s:.0f}"
        return [
            _("Voice note, {seconds} s ({codec})", seconds=seconds, codec=row.codec),
            _("Play it from the records."),
        ]
    if not str(row.media_type).startswith("image/"):
        return [
            _("Document: {pages} page(s)", pages=row.page_count),
            _("Open it from the records."),
        ]
    with Image.open(blob) as picture:
        picture.draft("RGB", (live.width, live.height))
        return ImageOps.exif_transpose(picture).convert("RGB")


def _draw(
    category: str,
    row: Any,
    blob: BinaryIO | None,
    window: Window,
    caption: str,
    live: LiveViewConfig,
) -> dict[str, av.VideoFrame]:
    """The item's frame in each language (the caption and marked lines translated)."""
    size = (live.width, live.height)
    content = _content(category, row, blob, window, live)
    if isinstance(content, list):
        return {loc: text_frame(content, caption, *size, loc) for loc in LOCALES}
    return {loc: presentation_frame(content, caption, *size, loc) for loc in LOCALES}


class PresentationService:
    """Puts record items on a consultation's presentation view, audited."""

    def __init__(
        self,
        records: RecordsService,
        blobs: BlobStore,
        stages: Stages,
        audit: Audit,
        live: LiveViewConfig,
    ) -> None:
        self._records = records
        self._blobs = blobs
        self._stages = stages
        self._audit = audit
        self._live = live

    def _frame(
        self, category: str, row: Any, window: Window, caption: str
    ) -> dict[str, av.VideoFrame]:
        if category == EMR:
            return _draw(category, row, None, window, caption, self._live)
        with self._blobs.open(row.blob_sha256) as blob:
            return _draw(category, row, blob, window, caption, self._live)

    async def present(
        self,
        who: str,
        patient: Patient,
        consultation: ConsultationConfig,
        category: str,
        raw_id: str,
        window: Window,
    ) -> dict[str, Any]:
        """Show one record item to everyone in the consultation; returns what is shown."""
        row = await self._records.read(who, patient, category, raw_id, "present")
        if consultation.patient_id != patient.external_id:
            raise NotThisPatient(
                _("only records of this consultation's patient can be shared in it")
            )
        title = getattr(row, "title", None) or Text(
            CATEGORY_NAMES.get(category, category.replace("_", " "))
        )
        caption = _("{title} — shared by {who}", title=title, who=who)
        try:
            frame = await asyncio.to_thread(self._frame, category, row, window, caption)
        except (OSError, ValueError) as exc:
            raise Unprocessable(
                _("cannot show this item: {problem}", problem=message_of(exc))
            ) from None
        room = self._stages.get(consultation)
        info = {"category": category, "id": row.id, "by": who, "caption": caption}
        # A disclosure to the room: logged before it happens (no entry, no showing).
        await self._audit.record(
            who,
            "record.presented",
            f"patient:{patient.external_id}",
            {"category": category, "id": row.id, "consultation": consultation.id},
        )
        room.present(frame, info)
        await room.broadcast()
        return info

    async def show_to_clinic(
        self, who: str, consultation: ConsultationConfig, shown: bool
    ) -> dict[str, Any] | None:
        """Share the presented item with the clinic, or stop; the entry comes first."""
        room = self._stages.get(consultation)
        info = room.presentation_info
        if info is None:
            raise NothingPresented(_("nothing is presented: share a record item first"))
        detail = {"category": info["category"], "id": info["id"], "consultation": consultation.id}
        action = "record.shown_to_clinic" if shown else "record.hidden_from_clinic"
        await self._audit.record(who, action, f"patient:{consultation.patient_id}", detail)
        room.share_with_clinic(shown)
        await room.broadcast()
        return room.presentation_info

    async def stop(self, consultation: ConsultationConfig) -> None:
        """Take the presented item down."""
        room = self._stages.get(consultation)
        room.present(None, None)
        await room.broadcast()

"""Reading the archive (R6): what was recorded for a patient, a range as MP4, a replay.

Every read is audited; the views only parse the request, hand over a staging file and
stream what comes back. Refusals are domain errors (:mod:`server.domain_errors`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

import av
from sqlalchemy import select
from sqlalchemy.orm import Session

from clinicam.i18n import _
from server.access.desk import Granted, in_transaction, patient_target
from server.archive.index import ArchiveSegment
from server.archive.range import NothingArchived, RangeResult, remux_range, watermarked_range
from server.archive.recorder import ArchiveRecorder
from server.audit.trail import AuditTrail
from server.config import ArchiveConfig, ConsultationConfig
from server.db import Database
from server.domain_errors import Conflict, Invalid, NotFound

MAX_LISTED = 5000
JOIN_GAP = timedelta(seconds=2)
MAX_REPLAY = timedelta(minutes=30)
NOTHING_RECORDED = _("no recorded video in that time range")
Mark = Callable[[av.VideoFrame], av.VideoFrame]


class LiveMedia(Protocol):
    """What the archive needs of the media hub: is it live, and play a file instead."""

    def appliance_streaming(self, device_id: str) -> bool: ...

    def replay(self, device_id: str, path: Path) -> None: ...


ShowNote = Callable[[ConsultationConfig, str], Awaitable[None]]


@dataclass(frozen=True)
class Span:
    """One recorded segment of a patient: when, in which consultation, from which device."""

    start: datetime
    end: datetime
    consultation: str | None
    device: str


def merged_ranges(spans: list[tuple[datetime, datetime]]) -> list[dict[str, str]]:
    """Contiguous recording runs (segments less than two seconds apart are one run)."""
    runs: list[list[datetime]] = []
    for start, end in sorted(spans):
        if runs and start - runs[-1][1] <= JOIN_GAP:
            runs[-1][1] = max(runs[-1][1], end)
        else:
            runs.append([start, end])
    return [{"start": s.isoformat(), "end": e.isoformat()} for s, e in runs]


class ArchiveReader:
    """The archive as people see it: listings, exported ranges and replays, all audited."""

    def __init__(
        self,
        config: ArchiveConfig,
        database: Database,
        audit: AuditTrail,
        recorder: ArchiveRecorder,
        media: LiveMedia,
        show_note: ShowNote,
    ) -> None:
        self._config = config
        self._database = database
        self._audit = audit
        self._recorder = recorder
        self._media = media
        self._show_note = show_note

    async def index(self, granted: Granted) -> list[Span]:
        """The patient's segments (the newest ``MAX_LISTED``), oldest first."""

        def work(session: Session) -> list[Span]:
            rows = session.scalars(
                select(ArchiveSegment)
                .where(ArchiveSegment.patient_id == granted.patient.id)
                .order_by(ArchiveSegment.start_utc.desc())
                .limit(MAX_LISTED)
            )
            return [Span(r.start_utc, r.end_utc, r.consultation_id, r.device_id) for r in rows]

        spans = list(reversed(await in_transaction(self._database, work)))
        await self._audit.record(
            granted.actor.username, "archive.list", patient_target(granted.patient), {}
        )
        return spans

    async def export_range(
        self, granted: Granted, start: datetime, end: datetime, out: Path, mark: Mark | None
    ) -> RangeResult:
        """Write ``[start, end)`` into ``out`` as one MP4 (watermarked with ``mark``)."""
        limit = self._config.max_range_minutes
        if end <= start:
            raise Invalid(_("end must be after start"))
        if end - start > timedelta(minutes=limit):
            raise Invalid(_("ask for at most {limit} minutes at a time", limit=limit))
        segments = await asyncio.to_thread(
            self._recorder.segments_for, granted.patient.id, start, end
        )
        try:
            if mark is not None:
                result = await asyncio.to_thread(watermarked_range, segments, start, end, out, mark)
            else:
                result = await asyncio.to_thread(remux_range, segments, start, end, out)
        except NothingArchived:
            raise NotFound(NOTHING_RECORDED) from None
        await self._audit.record(
            granted.actor.username,
            "archive.read",
            patient_target(granted.patient),
            {
                "start": result.start_utc.isoformat(),
                "end": result.end_utc.isoformat(),
                "segments": result.segments_used,
            },
        )
        return result

    async def replay(
        self,
        granted: Granted,
        consultation: ConsultationConfig,
        start: datetime,
        end: datetime,
        out: Path,
    ) -> str:
        """Play ``[start, end)`` in the consultation's live window; the note shown there.

        ``out`` becomes the media hub's to play (and remove); on a refusal it is removed.
        """
        try:
            if self._media.appliance_streaming(consultation.appliance):
                raise Conflict(_("the appliance is live: nothing to replay over"))
            if not timedelta(0) < end - start <= MAX_REPLAY:
                raise Invalid(_("replay between 1 s and 30 minutes"))
            segments = await asyncio.to_thread(
                self._recorder.segments_for, granted.patient.id, start, end
            )
            result = await asyncio.to_thread(remux_range, segments, start, end, out)
            self._media.replay(consultation.appliance, out)
        except NothingArchived:
            out.unlink(missing_ok=True)
            raise NotFound(NOTHING_RECORDED) from None
        except BaseException:
            out.unlink(missing_ok=True)
            raise
        note = _(
            "archive {start}–{end} UTC",
            start=f"{result.start_utc:%H:%M:%S}",
            end=f"{result.end_utc:%H:%M:%S}",
        )
        await self._show_note(consultation, note)
        await self._audit.record(
            granted.actor.username,
            "archive.replay",
            patient_target(granted.patient),
            {"consultation": consultation.id, "start": start.isoformat(), "end": end.isoformat()},
        )
        return note

"""Archiving each appliance's live stream as it arrives, and indexing the segments.

The server taps the H.264 frames aiortc reassembles for the appliance's video (the
same frames it decodes for the composite) and writes them into segments without
re-encoding. Each closed segment is indexed under the consultation the appliance is
serving: the one with experts in the room, else the first consultation bound to the
appliance. An appliance bound to no consultation is not archived (there is no patient
to file the footage under).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from clinicam.segments import SegmentInfo, SegmentWriter, remove_partial_segments
from server.archive.index import ArchiveSegment
from server.archive.segment_store import SegmentBlobs
from server.archive.tap import tap_encoded_video
from server.audit.trail import AuditTrail
from server.config import ArchiveConfig, ConsultationConfig
from server.db import Database, utcnow
from server.records.store import RecordStore

_LOGGER = logging.getLogger(__name__)

ConsultationChooser = Callable[[str], ConsultationConfig | None]


class ArchiveRecorder:
    """One :class:`SegmentWriter` per streaming appliance; segments go into the index."""

    def __init__(
        self,
        config: ArchiveConfig,
        database: Database,
        root: Path,
        choose: ConsultationChooser,
        *,
        audit: AuditTrail | None = None,
        blobs: SegmentBlobs | None = None,
    ) -> None:
        self._config = config
        self.blobs = blobs  # None: the segment files are the only copy
        self._database = database
        self.root = root
        self._choose = choose
        self._writers: dict[str, SegmentWriter] = {}
        self._pending: set[asyncio.Task[None]] = set()
        self.audit = audit  # back-filled segments are audited
        root.mkdir(parents=True, exist_ok=True)
        for folder in root.iterdir():
            if folder.is_dir():
                for leftover in remove_partial_segments(folder):
                    _LOGGER.info("removed unfinished archive segment %s", leftover.name)

    def attach(self, device_id: str, receiver: Any) -> None:
        """Archive the video ``receiver`` will receive (call from the "track" event)."""
        if not self._config.enabled or self._choose(device_id) is None:
            return
        self.detach(device_id)
        writer = SegmentWriter(
            self.root / device_id,
            segment_seconds=self._config.segment_seconds,
            on_segment=lambda info: self._segment_closed(device_id, info),
        )
        try:
            tap_encoded_video(receiver, writer.feed)
        except RuntimeError:
            _LOGGER.exception(
                "cannot archive %s: the live view works, the archive does not", device_id
            )
            return
        self._writers[device_id] = writer
        _LOGGER.info("archiving the stream of %s", device_id)

    def recording(self, device_id: str) -> bool:
        """Whether the live view of ``device_id`` is being archived now."""
        return device_id in self._writers

    def detach(self, device_id: str) -> None:
        """The stream ended: finish its open segment."""
        writer = self._writers.pop(device_id, None)
        if writer is not None:
            writer.close()

    def _segment_closed(self, device_id: str, info: SegmentInfo) -> None:
        task = asyncio.get_running_loop().create_task(self.index_segment(device_id, info))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def index_segment(self, device_id: str, info: SegmentInfo) -> None:
        """File a closed segment under the consultation the appliance serves (into the
        object store first, if the site keeps its blobs there)."""
        consultation = self._choose(device_id)
        if consultation is None:
            info.path.unlink(missing_ok=True)
            return

        def work() -> None:
            sha = self.blobs.offload(info.path) if self.blobs else None
            with self._database.session() as session, session.begin():
                self._add_row(session, device_id, consultation, info, sha)
            if sha is not None:
                info.path.unlink(missing_ok=True)

        try:
            await asyncio.to_thread(work)
        except Exception:
            _LOGGER.exception("archive segment %s could not be indexed", info.path.name)

    async def close(self) -> None:
        for device_id in list(self._writers):
            self.detach(device_id)
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)

    def apply_retention(self) -> int:
        """Delete segments (rows, then files and blobs) older than the retention period."""
        if self._config.retention_days == 0:
            return 0
        cutoff = utcnow() - timedelta(days=self._config.retention_days)
        with self._database.session() as session, session.begin():
            old = list(
                session.execute(
                    select(ArchiveSegment.path, ArchiveSegment.blob_sha256).where(
                        ArchiveSegment.end_utc < cutoff
                    )
                )
            )
            session.execute(delete(ArchiveSegment).where(ArchiveSegment.end_utc < cutoff))
        RecordStore.drop_segments(self.root, [path for path, _sha in old])
        stored = sorted({sha for _path, sha in old if sha})
        if stored and self.blobs is not None:
            self.blobs.drop(stored)  # a blob the store keeps for now: the collector's later
        removed = len(old)
        if removed:
            _LOGGER.info("retention: deleted %d archive segments older than %s", removed, cutoff)
        return removed

    def tidy_store(self) -> None:
        """Hourly: segments kept on disk while the store was away go into it, and copies
        fetched back for reading and unused for an hour are deleted."""
        if self.blobs is None:
            return
        self.blobs.offload_pending(self._database)
        with self._database.session() as session:
            rows = list(
                session.execute(
                    select(ArchiveSegment.path, ArchiveSegment.blob_sha256).where(
                        ArchiveSegment.blob_sha256.is_not(None)
                    )
                )
            )
        self.blobs.drop_fetched((path, sha) for path, sha in rows)

    def device_spans(
        self, device_id: str, start: datetime, end: datetime
    ) -> list[tuple[datetime, datetime]]:
        """What the archive holds of ``device_id``'s video within ``[start, end)``."""
        with self._database.session() as session:
            return self._spans(session, device_id, start, end)

    @staticmethod
    def _spans(
        session: Session, device_id: str, start: datetime, end: datetime
    ) -> list[tuple[datetime, datetime]]:
        rows = session.execute(
            select(ArchiveSegment.start_utc, ArchiveSegment.end_utc).where(
                ArchiveSegment.device_id == device_id,
                ArchiveSegment.start_utc < end,
                ArchiveSegment.end_utc > start,
            )
        )
        return [(a, b) for a, b in rows]

    def _add_row(
        self,
        session: Session,
        device_id: str,
        consultation: ConsultationConfig,
        info: SegmentInfo,
        blob_sha256: str | None,
    ) -> None:
        """The index row of one segment, filed under the consultation's patient."""
        patient = RecordStore.ensure_patient(
            session, consultation.patient_id, consultation.patient_id
        )
        session.add(
            ArchiveSegment(
                patient_id=patient.id,
                consultation_id=consultation.id,
                device_id=device_id,
                start_utc=info.start_utc,
                end_utc=info.end_utc,
                path=str(info.path.relative_to(self.root)),
                size=info.size,
                frames=info.frames,
                blob_sha256=blob_sha256,
            )
        )

    def index_backfill(
        self, device_id: str, consultation: ConsultationConfig, info: SegmentInfo
    ) -> bool:
        """Index a back-filled segment with its audit entry, unless the archive meanwhile
        covers it (a repeated upload): then nothing is written and False is returned."""
        sha = self.blobs.offload(info.path) if self.blobs else None  # unused: collected
        with self._database.session() as session, session.begin():
            covered = self._spans(session, device_id, info.start_utc, info.end_utc)
            if any(a <= info.start_utc and b >= info.end_utc for a, b in covered):
                return False
            self._add_row(session, device_id, consultation, info, sha)
            if self.audit is not None:
                self.audit.write(
                    session,
                    device_id,
                    "archive.backfilled",
                    f"patient:{consultation.patient_id}",
                    {
                        "consultation": consultation.id,
                        "start": info.start_utc.isoformat(),
                        "end": info.end_utc.isoformat(),
                        "frames": info.frames,
                    },
                )
        if sha is not None:
            info.path.unlink(missing_ok=True)
        return True

    def segments_for(self, patient_id: int, start: datetime, end: datetime) -> list[SegmentInfo]:
        """The patient's indexed segments overlapping ``[start, end)``, oldest first."""
        with self._database.session() as session:
            rows = session.scalars(
                select(ArchiveSegment)
                .where(
                    ArchiveSegment.patient_id == patient_id,
                    ArchiveSegment.start_utc < end,
                    ArchiveSegment.end_utc > start,
                )
                .order_by(ArchiveSegment.start_utc)
            )
            found = [
                (r.path, r.blob_sha256, r.start_utc, r.end_utc, r.frames, r.size) for r in rows
            ]
        return [
            SegmentInfo(
                path=self._local(path, sha),
                start_utc=start_utc,
                end_utc=end_utc,
                frames=frames,
                keyframes=0,
                size=size,
            )
            for path, sha, start_utc, end_utc, frames, size in found
        ]

    def _local(self, rel: str, sha256: str | None) -> Path:
        """A segment's file, fetched back from the object store if it is only there."""
        if sha256 is None or self.blobs is None:
            return self.root / rel
        return self.blobs.fetch(rel, sha256)

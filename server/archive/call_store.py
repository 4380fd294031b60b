"""Filing recorded calls (O4): closed segments into the blob store and the index, kept
for the site's retention period, joined into one MP4 for a replay or an export.

A closed segment is put into the records' :class:`~server.records.blobs.BlobStore`
(atomic, content-addressed) first and its :class:`CallSegment` row committed after, so
a row never points at a missing blob; a crash in between leaves an orphan blob that
the orphan collector removes (this module tells it which blobs are referenced).

Joining is a stream copy (no re-encoding): each segment's packets are shifted by the
segment's start within the recording, so gaps (nobody in the call) stay real gaps.
With ``mark`` (the viewer's watermark) the video is decoded, marked and encoded again;
the audio is always copied.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from server.archive.call_writer import ClosedSegment
from server.archive.calls import CallSegment
from server.db import Database, utcnow
from server.records.blobs import BlobStore
from server.records.store import RecordStore

_LOGGER = logging.getLogger(__name__)
MAX_SEGMENT_BYTES = 1 << 30
Mark = Callable[[av.VideoFrame], av.VideoFrame]


@dataclass(frozen=True)
class Recording:
    """One recorded call: its first segment's id names it."""

    id: int
    consultation_id: str
    start: datetime
    end: datetime
    segments: int
    size: int


def recordings_of(session: Session, patient_id: int) -> list[Recording]:
    """The patient's recordings, oldest first."""
    rows = session.scalars(
        select(CallSegment)
        .where(CallSegment.patient_id == patient_id)
        .order_by(CallSegment.started_utc, CallSegment.seq)
    )
    found: dict[tuple[str, datetime], list[CallSegment]] = {}
    for row in rows:
        found.setdefault((row.consultation_id, row.started_utc), []).append(row)
    return [
        Recording(
            parts[0].id,
            parts[0].consultation_id,
            parts[0].start_utc,
            parts[-1].end_utc,
            len(parts),
            sum(p.size for p in parts),
        )
        for parts in found.values()
    ]


def segments_of(session: Session, patient_id: int, recording_id: int) -> list[CallSegment]:
    """The segments of one recording of this patient (none if it is another's)."""
    first = session.get(CallSegment, recording_id)
    if first is None or first.patient_id != patient_id:
        return []
    return list(
        session.scalars(
            select(CallSegment)
            .where(
                CallSegment.consultation_id == first.consultation_id,
                CallSegment.started_utc == first.started_utc,
            )
            .order_by(CallSegment.seq)
        )
    )


def referenced_recording_blobs(session: Session) -> set[str]:
    """The blobs the recordings hold (the orphan collector must keep them)."""
    return set(session.scalars(select(CallSegment.blob_sha256).distinct()))


class CallStore:
    """Where recorded segments go and how long they stay."""

    def __init__(self, database: Database, records: RecordStore, retention_days: int) -> None:
        self._database = database
        self._records = records
        self.blobs: BlobStore = records.blobs
        self._retention_days = retention_days

    def file_segment(
        self, patient_external_id: str, consultation_id: str, started: datetime, seg: ClosedSegment
    ) -> int:
        """Store ``seg`` (blob, then row) and remove its file; returns the row's id."""
        with seg.path.open("rb") as stream:
            ref = self.blobs.put(stream, max_bytes=MAX_SEGMENT_BYTES)
        with self._database.session() as session, session.begin():
            patient = RecordStore.ensure_patient(session, patient_external_id, patient_external_id)
            row = CallSegment(
                patient_id=patient.id,
                consultation_id=consultation_id,
                started_utc=started,
                seq=seg.seq,
                start_utc=seg.start_utc,
                end_utc=seg.end_utc,
                blob_sha256=ref.sha256,
                size=ref.size,
                frames=seg.frames,
            )
            session.add(row)
            session.flush()
            row_id = row.id
        seg.path.unlink(missing_ok=True)
        return row_id

    def apply_retention(self, now: datetime | None = None) -> int:
        """Delete segments (rows, then blobs) that ended before the retention period."""
        if self._retention_days == 0:
            return 0
        cutoff = (now or utcnow()) - timedelta(days=self._retention_days)
        with self._database.session() as session, session.begin():
            old = set(
                session.scalars(select(CallSegment.blob_sha256).where(CallSegment.end_utc < cutoff))
            )
            session.execute(delete(CallSegment).where(CallSegment.end_utc < cutoff))
            still = referenced_recording_blobs(session)
        removed = [sha for sha in old - still if sha in self._records.drop_unreferenced([sha])]
        if removed:
            _LOGGER.info("retention: deleted %d recorded segments before %s", len(removed), cutoff)
        return len(removed)

    def join(self, segments: Sequence[CallSegment], out: Path, mark: Mark | None = None) -> int:
        """Write ``segments`` as one MP4 into ``out``; returns the video frames written."""
        if not segments:
            raise ValueError("no segments")
        origin = segments[0].start_utc
        with av.open(
            str(out), "w", format="mp4", container_options={"movflags": "+faststart"}
        ) as o:
            joiner = _Joiner(o, mark)
            for segment in segments:
                with self.blobs.open(segment.blob_sha256) as stream, av.open(stream) as source:
                    joiner.copy(source, (segment.start_utc - origin).total_seconds())
            joiner.finish()
        return joiner.frames


class _Joiner:
    """Copies the packets of successive segments into one output, time-shifted."""

    def __init__(self, output: Any, mark: Mark | None) -> None:
        self.output = output
        self.mark = mark
        self.streams: dict[str, Any] = {}
        self.last_dts: dict[str, int] = {}
        self.frames = 0
        self._encoder: Any = None

    def _stream(self, template: Any) -> Any:
        kind = template.type
        if kind not in self.streams:
            if kind == "video" and self.mark is not None:
                stream = self.output.add_stream("libx264", rate=template.average_rate or 10)
                stream.width, stream.height = template.width, template.height
                stream.pix_fmt = "yuv420p"
                stream.time_base = Fraction(1, 90_000)
                stream.codec_context.options = {"preset": "veryfast"}
                self._encoder = stream
            else:
                stream = self.output.add_stream_from_template(template)
            self.streams[kind] = stream
        return self.streams[kind]

    def copy(self, source: Any, offset_s: float) -> None:
        wanted = [s for s in source.streams if s.type in ("video", "audio")]
        for stream in wanted:
            self._stream(stream)
        for packet in source.demux(wanted):
            if packet.dts is None or packet.pts is None or not packet.size:
                continue
            kind = packet.stream.type
            base: Fraction = packet.time_base
            shift = round(offset_s / base)
            if kind == "video" and self._encoder is not None:
                for frame in packet.decode():
                    self._encode(frame, offset_s)
                continue
            dts, pts = packet.dts + shift, packet.pts + shift
            last = self.last_dts.get(kind)
            if last is not None and dts <= last:  # an encoder's priming overlaps the last one
                pts, dts = max(pts, last + 1), last + 1
            self.last_dts[kind] = dts
            packet.dts, packet.pts = dts, pts
            packet.stream = self.streams[kind]
            self.output.mux(packet)
            self.frames += kind == "video"

    def _encode(self, frame: Any, offset_s: float) -> None:
        assert self.mark is not None
        seconds = float(frame.pts * frame.time_base) + offset_s
        pts = round(seconds * 90_000)
        last = self.last_dts.get("video")
        if last is not None and pts <= last:
            return
        self.last_dts["video"] = pts
        marked = self.mark(frame)
        marked.pts, marked.time_base = pts, Fraction(1, 90_000)
        self.output.mux(self._encoder.encode(marked))
        self.frames += 1

    def finish(self) -> None:
        if self._encoder is not None:
            self.output.mux(self._encoder.encode(None))

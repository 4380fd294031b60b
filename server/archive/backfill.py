"""Back-fill (R17): the appliance sends what its local recording holds and the archive
lacks, so an outage leaves no hole in the archive (R6).

* ``GET  /api/appliances/<device>/archive/coverage?start=…&end=…`` the runs of time the
  archive holds for this device (segments less than two seconds apart are one run).
* ``POST /api/appliances/<device>/archive/segments?start=…`` one MPEG-TS segment of the
  appliance's own recording whose first frame is at ``start``.

The upload is checked before anything is stored: one H.264 video stream and nothing
else, starting with a keyframe, within the size limit, not from the future. Only the
part the archive lacks is kept: the segment is cut (without re-encoding) from the last
keyframe at or before the first uncovered instant to the end of the last uncovered run,
and a segment the archive already covers is answered "already archived" and dropped,
so a back-fill repeated after a crash never duplicates footage. The index row and its
audit entry commit together, after the file is in place.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import av

from clinicam.files import fsync_directory, fsync_file
from clinicam.i18n import _
from clinicam.segments import TIME_BASE, SegmentInfo, segment_name
from server.archive.recorder import ArchiveRecorder
from server.config import ConsultationConfig

_LOGGER = logging.getLogger(__name__)
MAX_SEGMENT_BYTES = 64 * 1024 * 1024
FUTURE_SLACK = timedelta(seconds=60)
MIN_NEW = timedelta(milliseconds=500)  # less than this uncovered: already archived


class BadSegment(Exception):
    """The upload is not a segment of the appliance's recording."""


@dataclass(frozen=True)
class _Packet:
    utc: datetime
    keyframe: bool
    data: bytes
    pts: int


def _packets(path: Path, start: datetime) -> list[_Packet]:
    try:
        with av.open(str(path), format="mpegts") as source:
            if len(source.streams) != 1 or not source.streams.video:
                raise BadSegment(_("a segment holds exactly one video stream"))
            stream = source.streams.video[0]
            if stream.codec_context.name != "h264":
                raise BadSegment(_("a segment holds H.264 video"))
            base = stream.time_base
            out: list[_Packet] = []
            first: int | None = None
            for packet in source.demux(stream):
                if packet.pts is None or not packet.size:
                    continue
                first = packet.pts if first is None else first
                offset = timedelta(seconds=float((packet.pts - first) * base)) if base else None
                if offset is None:
                    raise BadSegment(_("the video has no time base"))
                out.append(_Packet(start + offset, packet.is_keyframe, bytes(packet), packet.pts))
    except av.FFmpegError as exc:
        raise BadSegment(_("not an MPEG-TS segment: {problem}", problem=str(exc))) from None
    if not out:
        raise BadSegment(_("the segment holds no frames"))
    if not out[0].keyframe:
        raise BadSegment(_("a segment starts with a keyframe"))
    return out


def _frame_time(packets: list[_Packet]) -> timedelta:
    """How long the last frame is shown (the spacing of the last two)."""
    return packets[-1].utc - packets[-2].utc if len(packets) > 1 else timedelta(seconds=1 / 15)


def _uncovered(
    start: datetime, end: datetime, covered: list[tuple[datetime, datetime]]
) -> list[tuple[datetime, datetime]]:
    """The parts of ``[start, end)`` outside every ``covered`` span."""
    gaps, at = [], start
    for c_start, c_end in sorted(covered):
        if c_start > at:
            gaps.append((at, min(c_start, end)))
        at = max(at, c_end)
        if at >= end:
            break
    if at < end:
        gaps.append((at, end))
    return [(a, b) for a, b in gaps if b - a > timedelta(0)]


def _cut(packets: list[_Packet], gaps: list[tuple[datetime, datetime]], out: Path) -> SegmentInfo:
    """Packets from the last keyframe at or before the first gap to the end of the last."""
    first, last = gaps[0][0], gaps[-1][1]
    begin = max(i for i, p in enumerate(packets) if p.keyframe and (p.utc <= first or i == 0))
    kept = [p for p in packets[begin:] if p.utc < last]
    frame = _frame_time(packets)
    with av.open(str(out), "w", format="mpegts") as container:
        stream = container.add_mux_stream("h264", time_base=TIME_BASE)
        for p in kept:
            packet = av.Packet(p.data)
            packet.stream = stream
            packet.pts = packet.dts = round((p.utc - kept[0].utc).total_seconds() / TIME_BASE)
            packet.is_keyframe = p.keyframe
            container.mux(packet)
    return SegmentInfo(
        path=out,
        start_utc=kept[0].utc,
        end_utc=kept[-1].utc + frame,
        frames=len(kept),
        keyframes=sum(p.keyframe for p in kept),
        size=out.stat().st_size,
    )


def store_segment(
    archive: ArchiveRecorder,
    device_id: str,
    consultation: ConsultationConfig,
    upload: Path,
    start: datetime,
) -> dict[str, object]:
    packets = _packets(upload, start)
    end = packets[-1].utc + _frame_time(packets)
    covered = archive.device_spans(device_id, start - timedelta(seconds=1), end)
    gaps = _uncovered(packets[0].utc, end, covered)
    if sum((b - a for a, b in gaps), timedelta(0)) < MIN_NEW:
        return {"stored": False, "reason": "already archived"}
    folder = archive.root / device_id
    partial = upload.with_suffix(".cut")
    try:
        info = _cut(packets, gaps, partial)
        fsync_file(partial)
        final = folder / segment_name(info.start_utc).replace(".ts", "-backfill.ts")
        os.replace(partial, final)
        fsync_directory(folder)
    finally:
        partial.unlink(missing_ok=True)
    info = SegmentInfo(final, info.start_utc, info.end_utc, info.frames, info.keyframes, info.size)
    if not archive.index_backfill(device_id, consultation, info):
        final.unlink(missing_ok=True)
        return {"stored": False, "reason": "already archived"}
    return {
        "stored": True,
        "start": info.start_utc.isoformat(),
        "end": info.end_utc.isoformat(),
        "frames": info.frames,
    }

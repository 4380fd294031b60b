"""How stored records are shown and served: the page's view of a row, and the content
types a file is served as (only what ingestion recognised, never sniffed)."""

from __future__ import annotations

from typing import Any

from server.db import iso
from server.records.models import ClinicalPhoto, ConsultationReport, CtImage, RecordScan
from server.records.store import EMR

NO_SNIFF = {"X-Content-Type-Options": "nosniff", "Cache-Control": "private, no-store"}
INLINE_TYPES = frozenset({"image/jpeg", "image/png", "image/webp", "application/pdf"})
SERVED_TYPES = INLINE_TYPES | {
    "image/tiff",
    "application/dicom",
    "audio/wav",
    "audio/ogg",
    "audio/webm",
    "audio/x-matroska",
    "audio/mpeg",
    "audio/flac",
    "audio/mp4",
}


def record_json(category: str, row: Any) -> dict[str, Any]:
    """What the page shows about one record (never where its content is stored)."""
    out: dict[str, Any] = {
        "category": category,
        "id": row.id,
        "created_at": iso(row.created_at),
        "created_by": row.created_by,
    }
    if category == EMR:
        out.update(fields=row.fields, recorded_at=iso(row.recorded_at))
        return out
    out.update(
        media_type=row.media_type, size=row.blob_size, sha256=row.blob_sha256, title=row.title
    )
    if isinstance(row, ClinicalPhoto):
        out.update(
            width=row.width,
            height=row.height,
            taken_at=iso(row.taken_at),
            source=row.source,
            requested_by=row.requested_by,
            consultation=row.consultation_id,
        )
    elif isinstance(row, RecordScan):
        out.update(width=row.width, height=row.height, page_count=row.page_count)
    elif isinstance(row, ConsultationReport):
        out.update(
            consultation=row.consultation_id,
            version=row.version,
            signed_by=row.signed_by,
            signed_at=iso(row.signed_at),
            key_id=row.key_id,
            supersedes=row.supersedes,
        )
    elif isinstance(row, CtImage):
        out.update(
            study_uid=row.study_uid,
            series_uid=row.series_uid,
            instance_uid=row.instance_uid,
            modality=row.modality,
            slice_position=row.slice_position,
        )
    else:
        out.update(duration_s=row.duration_s, sample_rate=row.sample_rate, codec=row.codec)
    return out

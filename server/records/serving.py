"""How stored record files are served: only as what ingestion recognised, never sniffed."""

from __future__ import annotations

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

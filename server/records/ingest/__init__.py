"""Deciding what an uploaded medical file is, refusing what it must not be, and cleaning it.

Uploads arrive already streamed to a temporary file (the size limit is enforced while
streaming, elsewhere). Everything the browser says about the file — its name, its media
type, even the category the user picked — is only a claim. The category is decided here
from the content (magic bytes, the image header, a strict DICOM parse, the audio
header); a declared category that contradicts the content is refused with a sentence
naming both (HTTP 422), so a PNG dropped into the CT viewer, or a PDF filed as a wound
photo, never becomes a record under the wrong heading.

Hostile or broken content is refused before it becomes expensive. An image's pixel
count is read from its header by this module and checked before Pillow decodes
anything: a 30000 × 30000 PNG is a few kilobytes on disk and gigabytes in memory.
DICOM is parsed without ``force`` and without its pixel data. Audio is measured from
its headers: WAV is parsed here, other containers by FFmpeg's demuxer through PyAV,
forced to the demuxer the magic bytes named (so FFmpeg never probes a playlist format
that could open other files) and never decoding a frame.

Photos carry more than pixels: EXIF GPS coordinates, the owner's name, serial numbers,
XMP and IPTC blocks, comments, and embedded EXIF thumbnails that may show an uncropped
original. Images are cleaned by rewriting their container — JPEG segments, PNG chunks,
WebP RIFF chunks — so the stored pixels are bit for bit the uploaded ones; TIFF scans
are re-saved page by page, losslessly, without their tags. The harmless EXIF fields
(Orientation, DateTimeOriginal, Make, Model, exposure settings) stay, because the
viewer needs the orientation and the record needs the time. PDFs are stored as
uploaded: their Info dictionary may still name an author.

This module never sees the client's file name, and callers must never use a client
file name as (part of) a filesystem path.
"""

from __future__ import annotations

from server.records.ingest.formats import (
    CLEANED_PREFIX,
    DEFAULT_LIMITS,
    Category,
    IngestError,
    IngestLimits,
    Inspected,
)
from server.records.ingest.inspection import inspect_upload

__all__ = [
    "CLEANED_PREFIX",
    "DEFAULT_LIMITS",
    "Category",
    "IngestError",
    "IngestLimits",
    "Inspected",
    "inspect_upload",
]

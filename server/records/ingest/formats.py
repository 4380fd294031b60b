"""The formats an upload may be, recognised from its first bytes; the shared types."""

from __future__ import annotations

import logging
import mmap
import struct
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from PIL import Image

from clinicam.i18n import _

_LOGGER = logging.getLogger(__name__)


# Matches the blob store's temporary-file prefix, so its orphan collector removes a
# cleaned copy that a crash left behind in the store's folder.
CLEANED_PREFIX = ".incoming-cleaned-"

_SNIFF_BYTES = 4096
_COPY_BYTES = 1 << 20


class Category(StrEnum):
    """The record categories an upload can become (one table each in ``models``)."""

    PHOTO = "clinical_photo"
    SCAN = "record_scan"
    CT = "ct_image"
    VOICE = "voice_note"


class IngestError(Exception):
    """Refused upload.

    ``status`` is an HTTP status (415 unsupported type, 422 invalid or contradicting
    content), ``reason`` a clear sentence for the user.
    """

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status}: {reason}")
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class IngestLimits:
    """What an upload may cost to inspect and keep."""

    max_image_pixels: int = 50_000_000  # decompression-bomb limit (width*height)
    max_total_pixels: int = 200_000_000  # all pages of a multi-page scan together
    max_audio_seconds: float = 3600.0
    max_dicom_pixels: int = 100_000_000
    # The parse sandbox (:mod:`server.records.ingest.sandbox`): wall clock, CPU, memory.
    max_parse_seconds: float = 20.0
    max_parse_cpu_seconds: int = 15
    max_parse_memory_mb: int = 1024


DEFAULT_LIMITS = IngestLimits()


@dataclass(frozen=True)
class Inspected:
    """What the upload turned out to be.

    ``metadata`` by category (all JSON-serialisable):

    - clinical_photo: ``width``, ``height`` (as displayed, after the EXIF orientation),
      ``taken_at`` (ISO 8601 from EXIF DateTimeOriginal, with its offset when the camera
      recorded OffsetTimeOriginal and naive camera-local time otherwise; or None).
    - record_scan: ``width``, ``height`` (None for a PDF), ``page_count`` (None for a PDF
      whose page objects are hidden, e.g. encrypted).
    - ct_image: ``study_uid``, ``series_uid``, ``instance_uid``, ``modality``,
      ``slice_position`` (mm or None), ``rows``, ``columns``, ``number_of_frames``.
    - voice_note: ``duration_s``, ``sample_rate``, ``codec`` (FFmpeg's name), ``channels``.

    ``cleaned`` is a new file next to the upload (photos and scan images, always) that
    the caller stores instead of the upload and then deletes; None when the uploaded
    bytes are to be stored as they are (PDF, DICOM, audio).
    """

    category: Category
    media_type: str
    metadata: dict[str, Any]
    cleaned: Path | None


class _Family(StrEnum):
    IMAGE = "image"
    PDF = "pdf"
    DICOM = "dicom"
    WAV = "wav"
    AUDIO = "audio"


@dataclass(frozen=True)
class _Format:
    """A content type this module accepts, as recognised from its first bytes."""

    label: str  # as a user would name it, after "the content is"
    media_type: str
    family: _Family
    categories: tuple[Category, ...]  # those it may be filed as; the first is the default
    decoder: str = ""  # Pillow's format name, or FFmpeg's demuxer name


def _the(fmt: _Format) -> str:
    """``the JPEG image`` for ``a JPEG image``: the format named in a sentence."""
    return _THE[fmt.label]


_PHOTO_OR_SCAN = (Category.PHOTO, Category.SCAN)
_JPEG = _Format(_("a JPEG image"), "image/jpeg", _Family.IMAGE, _PHOTO_OR_SCAN, "JPEG")
_PNG = _Format(_("a PNG image"), "image/png", _Family.IMAGE, _PHOTO_OR_SCAN, "PNG")
_WEBP = _Format(_("a WebP image"), "image/webp", _Family.IMAGE, _PHOTO_OR_SCAN, "WEBP")
_TIFF = _Format(_("a TIFF image"), "image/tiff", _Family.IMAGE, (Category.SCAN,), "TIFF")
_PDF = _Format(_("a PDF document"), "application/pdf", _Family.PDF, (Category.SCAN,))
_DICOM = _Format(_("a DICOM file"), "application/dicom", _Family.DICOM, (Category.CT,))
_VOICE = (Category.VOICE,)
_WAV = _Format(_("a WAV recording"), "audio/wav", _Family.WAV, _VOICE)
_OGG = _Format(_("an Ogg recording"), "audio/ogg", _Family.AUDIO, _VOICE, "ogg")
_WEBM = _Format(_("a WebM recording"), "audio/webm", _Family.AUDIO, _VOICE, "webm")
_MATROSKA = _Format(_("a Matroska file"), "audio/x-matroska", _Family.AUDIO, _VOICE, "matroska")
_MP3 = _Format(_("an MP3 recording"), "audio/mpeg", _Family.AUDIO, _VOICE, "mp3")
_FLAC = _Format(_("a FLAC recording"), "audio/flac", _Family.AUDIO, _VOICE, "flac")
_MP4 = _Format(_("an MP4/M4A file"), "audio/mp4", _Family.AUDIO, _VOICE, "mp4")

_THE: dict[str, str] = {
    _JPEG.label: _("the JPEG image"),
    _PNG.label: _("the PNG image"),
    _WEBP.label: _("the WebP image"),
    _TIFF.label: _("the TIFF image"),
    _PDF.label: _("the PDF document"),
    _DICOM.label: _("the DICOM file"),
    _WAV.label: _("the WAV recording"),
    _OGG.label: _("the Ogg recording"),
    _WEBM.label: _("the WebM recording"),
    _MATROSKA.label: _("the Matroska file"),
    _MP3.label: _("the MP3 recording"),
    _FLAC.label: _("the FLAC recording"),
    _MP4.label: _("the MP4/M4A file"),
}

_EXPECTED = {
    Category.PHOTO: _("a photo (JPEG, PNG or WebP)"),
    Category.SCAN: _("a scan (PDF, TIFF, JPEG, PNG or WebP)"),
    Category.CT: _("DICOM"),
    Category.VOICE: _("a voice recording (WAV, Ogg, WebM, MP3, FLAC or M4A)"),
}

# ISO base media brands that are still images, not recordings.
_HEIF_BRANDS = frozenset(
    {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1", b"avif", b"avis"}
)

# Formats people upload that we recognise but do not take: refused with 415.
_KNOWN_UNSUPPORTED: tuple[tuple[bytes, str], ...] = (
    (b"GIF8", _("a GIF image")),
    (b"BM", _("a BMP image")),
    (b"PK\x03\x04", _("a ZIP archive (or an Office document)")),
    (b"\x1f\x8b", _("a gzip archive")),
    (b"7z\xbc\xaf", _("a 7-Zip archive")),
    (b"Rar!", _("a RAR archive")),
    (b"MZ", _("a Windows program")),
    (b"\x7fELF", _("a Linux program")),
    (b"{\\rtf", _("an RTF document")),
    (b"\xd0\xcf\x11\xe0", _("an old Microsoft Office document")),
)


# --- recognising the content -------------------------------------------------------------


def _sniff(head: bytes) -> _Format | None:
    """The accepted format the first bytes announce, or None."""
    riff_kind = head[8:12] if head.startswith(b"RIFF") else b""
    checks: tuple[tuple[bool, _Format], ...] = (
        # First: a DICOM preamble is free-form and often holds a TIFF header.
        (head[128:132] == b"DICM", _DICOM),
        (head.startswith(b"\xff\xd8\xff"), _JPEG),
        (head.startswith(b"\x89PNG\r\n\x1a\n"), _PNG),
        (riff_kind == b"WEBP", _WEBP),
        (riff_kind == b"WAVE", _WAV),
        (head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"), _TIFF),
        (head.startswith(b"%PDF-"), _PDF),
        (head.startswith(b"OggS"), _OGG),
        (head.startswith(b"fLaC"), _FLAC),
        (head[4:8] == b"ftyp" and head[8:12] not in _HEIF_BRANDS, _MP4),
        (head.startswith(b"ID3") or _is_mpeg_audio_frame(head), _MP3),
    )
    for matches, fmt in checks:
        if matches:
            return fmt
    if head.startswith(b"\x1a\x45\xdf\xa3"):  # EBML: WebM or Matroska, told by the DocType
        return _WEBM if b"webm" in head[:64] else _MATROSKA
    return None


def _is_mpeg_audio_frame(head: bytes) -> bool:
    """An MPEG audio frame header (MP3 without an ID3 tag): sync, version, layer, rates."""
    if len(head) < 4 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0:
        return False
    version, layer = (head[1] >> 3) & 3, (head[1] >> 1) & 3
    bitrate, rate = head[2] >> 4, (head[2] >> 2) & 3
    return version != 1 and layer != 0 and bitrate != 0xF and rate != 3


def _describe_unknown(head: bytes) -> str:
    """A short description of unrecognised content, for the user's error message."""
    for prefix, label in _KNOWN_UNSUPPORTED:
        if head.startswith(prefix):
            return label
    if head[4:8] == b"ftyp":
        return _("a HEIF/AVIF image (save or export it as JPEG)")
    if head[:2] in (b"\x02\x00", b"\x08\x00") and len(head) > 3 and head[3] == 0:
        return _("DICOM data without the 128-byte preamble and DICM prefix")
    sample = head[:32]
    if all(32 <= b < 127 or b in b"\t\r\n" for b in sample):
        return _("text beginning {sample}", sample=repr(sample.decode("ascii")))
    return _("binary data beginning {sample}", sample=head[:8].hex(" "))


def _unrecognised(head: bytes, declared: Category | None) -> IngestError:
    looks_like = _describe_unknown(head)
    known = any(head.startswith(prefix) for prefix, _label in _KNOWN_UNSUPPORTED)
    if known or head[4:8] == b"ftyp" or declared is None:
        return IngestError(
            415,
            _(
                "unsupported file type: the content is {looks_like}, not a photo, scan, "
                "DICOM image or voice recording",
                looks_like=looks_like,
            ),
        )
    if declared is Category.CT:
        return IngestError(
            422,
            _(
                "declared {declared}, but the content is not DICOM (no DICM preamble); "
                "it looks like {looks_like}",
                declared=str(declared),
                looks_like=looks_like,
            ),
        )
    return IngestError(
        422,
        _(
            "declared {declared}, but the content is not {expected}; it looks like {looks_like}",
            declared=str(declared),
            expected=_EXPECTED[declared],
            looks_like=looks_like,
        ),
    )


def _category_for(fmt: _Format, declared: Category | None) -> Category:
    if declared is None:
        return fmt.categories[0]
    if declared in fmt.categories:
        return declared
    raise IngestError(
        422,
        _(
            "declared {declared}, but the content is {label}, not {expected}; "
            "it can be uploaded as {category}",
            declared=str(declared),
            label=fmt.label,
            expected=_EXPECTED[declared],
            category=str(fmt.categories[0]),
        ),
    )


@contextmanager
def _mapped(path: Path) -> Iterator[mmap.mmap]:
    """The file's bytes, read-only and paged in on demand (not read whole into memory)."""
    with path.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
        yield data


_PILLOW_FAILURES = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    IndexError,
    KeyError,
    TypeError,
    struct.error,
    zlib.error,
    Image.DecompressionBombError,
)

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

import logging
import math
import mmap
import os
import re
import struct
import tempfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import IO, Any, Literal

import av
import pydicom
from av.audio.stream import AudioStream
from av.container import InputContainer
from PIL import ExifTags, Image, TiffImagePlugin
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

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
    max_audio_seconds: float = 3600.0
    max_dicom_pixels: int = 100_000_000


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
    return "the " + fmt.label.split(" ", 1)[1]


_PHOTO_OR_SCAN = (Category.PHOTO, Category.SCAN)
_JPEG = _Format("a JPEG image", "image/jpeg", _Family.IMAGE, _PHOTO_OR_SCAN, "JPEG")
_PNG = _Format("a PNG image", "image/png", _Family.IMAGE, _PHOTO_OR_SCAN, "PNG")
_WEBP = _Format("a WebP image", "image/webp", _Family.IMAGE, _PHOTO_OR_SCAN, "WEBP")
_TIFF = _Format("a TIFF image", "image/tiff", _Family.IMAGE, (Category.SCAN,), "TIFF")
_PDF = _Format("a PDF document", "application/pdf", _Family.PDF, (Category.SCAN,))
_DICOM = _Format("a DICOM file", "application/dicom", _Family.DICOM, (Category.CT,))
_VOICE = (Category.VOICE,)
_WAV = _Format("a WAV recording", "audio/wav", _Family.WAV, _VOICE)
_OGG = _Format("an Ogg recording", "audio/ogg", _Family.AUDIO, _VOICE, "ogg")
_WEBM = _Format("a WebM recording", "audio/webm", _Family.AUDIO, _VOICE, "webm")
_MATROSKA = _Format("a Matroska file", "audio/x-matroska", _Family.AUDIO, _VOICE, "matroska")
_MP3 = _Format("an MP3 recording", "audio/mpeg", _Family.AUDIO, _VOICE, "mp3")
_FLAC = _Format("a FLAC recording", "audio/flac", _Family.AUDIO, _VOICE, "flac")
_MP4 = _Format("an MP4/M4A file", "audio/mp4", _Family.AUDIO, _VOICE, "mp4")

_EXPECTED = {
    Category.PHOTO: "a photo (JPEG, PNG or WebP)",
    Category.SCAN: "a scan (PDF, TIFF, JPEG, PNG or WebP)",
    Category.CT: "DICOM",
    Category.VOICE: "a voice recording (WAV, Ogg, WebM, MP3, FLAC or M4A)",
}

# ISO base media brands that are still images, not recordings.
_HEIF_BRANDS = frozenset(
    {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1", b"avif", b"avis"}
)

# Formats people upload that we recognise but do not take: refused with 415.
_KNOWN_UNSUPPORTED: tuple[tuple[bytes, str], ...] = (
    (b"GIF8", "a GIF image"),
    (b"BM", "a BMP image"),
    (b"PK\x03\x04", "a ZIP archive (or an Office document)"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"7z\xbc\xaf", "a 7-Zip archive"),
    (b"Rar!", "a RAR archive"),
    (b"MZ", "a Windows program"),
    (b"\x7fELF", "a Linux program"),
    (b"{\\rtf", "an RTF document"),
    (b"\xd0\xcf\x11\xe0", "an old Microsoft Office document"),
)


def inspect_upload(
    path: Path, declared: Category | None, limits: IngestLimits = DEFAULT_LIMITS
) -> Inspected:
    """Recognise, validate and clean the upload at ``path``; :class:`IngestError` if refused.

    ``declared`` is the category the user chose, or None to let the content decide.
    """
    if path.stat().st_size == 0:
        raise IngestError(422, "the file is empty")
    with path.open("rb") as fh:
        head = fh.read(_SNIFF_BYTES)
    fmt = _sniff(head)
    if fmt is None:
        raise _unrecognised(head, declared)
    category = _category_for(fmt, declared)
    inspected = _INSPECTORS[fmt.family](path, fmt, category, limits)
    _LOGGER.info("upload recognised as %s (%s) filed as %s", fmt.label, fmt.media_type, category)
    return inspected


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
        return "a HEIF/AVIF image (save or export it as JPEG)"
    if head[:2] in (b"\x02\x00", b"\x08\x00") and len(head) > 3 and head[3] == 0:
        return "DICOM data without the 128-byte preamble and DICM prefix"
    sample = head[:32]
    if all(32 <= b < 127 or b in b"\t\r\n" for b in sample):
        return f"text beginning {sample.decode('ascii')!r}"
    return f"binary data beginning {head[:8].hex(' ')}"


def _unrecognised(head: bytes, declared: Category | None) -> IngestError:
    looks_like = _describe_unknown(head)
    known = any(head.startswith(prefix) for prefix, _ in _KNOWN_UNSUPPORTED)
    if known or head[4:8] == b"ftyp" or declared is None:
        return IngestError(
            415,
            f"unsupported file type: the content is {looks_like}, not a photo, scan, "
            "DICOM image or voice recording",
        )
    if declared is Category.CT:
        return IngestError(
            422,
            f"declared {declared}, but the content is not DICOM (no DICM preamble); "
            f"it looks like {looks_like}",
        )
    return IngestError(
        422,
        f"declared {declared}, but the content is not {_EXPECTED[declared]}; "
        f"it looks like {looks_like}",
    )


def _category_for(fmt: _Format, declared: Category | None) -> Category:
    if declared is None:
        return fmt.categories[0]
    if declared in fmt.categories:
        return declared
    raise IngestError(
        422,
        f"declared {declared}, but the content is {fmt.label}, not {_EXPECTED[declared]}; "
        f"it can be uploaded as {fmt.categories[0]}",
    )


@contextmanager
def _mapped(path: Path) -> Iterator[mmap.mmap]:
    """The file's bytes, read-only and paged in on demand (not read whole into memory)."""
    with path.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
        yield data


# --- images: size from the header, full decode check, metadata surgery -------------------


def _inspect_image(path: Path, fmt: _Format, category: Category, limits: IngestLimits) -> Inspected:
    with _mapped(path) as data:
        header_size = _HEADER_SIZES[fmt.decoder](data)
    if header_size is not None:
        _check_image_pixels(*header_size, limits)
    width, height, pages, taken_at = _verify_image(path, fmt, limits)
    cleaned = _write_cleaned(path, fmt)
    metadata: dict[str, Any] = {"width": width, "height": height}
    if category is Category.PHOTO:
        metadata["taken_at"] = taken_at
    else:
        metadata["page_count"] = pages
    return Inspected(category, fmt.media_type, metadata, cleaned)


def _image_pixel_limit(limits: IngestLimits) -> int:
    """Our limit, or Pillow's warning threshold if that is lower (its warning is an error)."""
    pillow_limit = Image.MAX_IMAGE_PIXELS
    if pillow_limit is None:
        return limits.max_image_pixels
    return min(limits.max_image_pixels, int(pillow_limit))


def _check_image_pixels(width: int, height: int, limits: IngestLimits) -> None:
    if width <= 0 or height <= 0:
        raise IngestError(422, f"the image header gives an empty size ({width} × {height})")
    limit = _image_pixel_limit(limits)
    if width * height > limit:
        raise IngestError(
            422,
            f"the image is {width} × {height} pixels, which is larger than the limit "
            f"of {limit:,} pixels",
        )


_MAX_SCAN_PAGES = 1000
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


def _verify_image(
    path: Path, fmt: _Format, limits: IngestLimits
) -> tuple[int, int, int, str | None]:
    """Fully decode every page (truncated or corrupt data fails here); size, pages, time."""
    try:
        img = Image.open(path, formats=[fmt.decoder])
    except _PILLOW_FAILURES as exc:
        raise IngestError(422, f"{_the(fmt)} cannot be opened: its header is invalid") from exc
    with img:
        _check_image_pixels(*img.size, limits)
        taken_at = _taken_at(img)
        width, height = _displayed_size(img)
        pages = _page_count(img, fmt)
        for page in range(pages):
            _decode_page(img, page, fmt, limits)
    return width, height, pages, taken_at


def _page_count(img: Image.Image, fmt: _Format) -> int:
    """Pages of a TIFF (each IFD is read, no pixels); 1 for the other formats."""
    if fmt is not _TIFF:
        return 1
    try:
        pages = int(getattr(img, "n_frames", 1))
    except _PILLOW_FAILURES as exc:
        raise IngestError(422, f"the TIFF image has a damaged page directory: {exc}") from exc
    if pages > _MAX_SCAN_PAGES:
        raise IngestError(422, f"the TIFF image has {pages} pages, more than {_MAX_SCAN_PAGES}")
    return pages


def _decode_page(img: Image.Image, page: int, fmt: _Format, limits: IngestLimits) -> None:
    try:
        if page:
            img.seek(page)
            _check_image_pixels(*img.size, limits)
        img.load()
    except _PILLOW_FAILURES as exc:
        raise IngestError(422, f"{_the(fmt)} is damaged or truncated: {exc}") from exc


def _displayed_size(img: Image.Image) -> tuple[int, int]:
    """The size as shown: EXIF orientations 5–8 turn the picture a quarter."""
    try:
        orientation = img.getexif().get(ExifTags.Base.Orientation)
    except _PILLOW_FAILURES:
        orientation = None
    width, height = img.size
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def _taken_at(img: Image.Image) -> str | None:
    """EXIF DateTimeOriginal as ISO 8601 (with OffsetTimeOriginal when present), or None."""
    try:
        exif_ifd = img.getexif().get_ifd(ExifTags.IFD.Exif)
    except _PILLOW_FAILURES:
        return None
    return _exif_time(
        exif_ifd.get(ExifTags.Base.DateTimeOriginal),
        exif_ifd.get(ExifTags.Base.OffsetTimeOriginal),
    )


def _exif_time(stamp: object, offset: object) -> str | None:
    if not isinstance(stamp, str):
        return None
    try:
        when = datetime.strptime(stamp.strip("\x00 ")[:19], "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None
    if isinstance(offset, str):
        try:
            zone = datetime.strptime(offset.strip("\x00 "), "%z").tzinfo
        except ValueError:
            zone = None
        when = when.replace(tzinfo=zone)
    return when.isoformat()


def _jpeg_size(data: mmap.mmap) -> tuple[int, int] | None:
    """Width and height from the first SOFn segment (None if not found before the scan)."""
    pos = 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:
            pos += 2
            continue
        if marker == 0xDA:
            return None
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        if marker in _JPEG_SOF_MARKERS and pos + 9 <= len(data):
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return width, height
        pos += 2 + length
    return None


_JPEG_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _png_size(data: mmap.mmap) -> tuple[int, int] | None:
    if len(data) < 24 or data[12:16] != b"IHDR":
        raise IngestError(422, "not a valid PNG image: the first chunk is not IHDR")
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def _webp_size(data: mmap.mmap) -> tuple[int, int] | None:
    kind, body = data[12:16], data[20:30]
    if len(body) < 10:
        return None
    if kind == b"VP8X":
        return 1 + int.from_bytes(body[4:7], "little"), 1 + int.from_bytes(body[7:10], "little")
    if kind == b"VP8L" and body[0] == 0x2F:
        bits = int.from_bytes(body[1:5], "little")
        return 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
    if kind == b"VP8 " and body[3:6] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", body[6:10])
        return width & 0x3FFF, height & 0x3FFF
    return None


def _tiff_size(data: mmap.mmap) -> tuple[int, int] | None:
    """ImageWidth and ImageLength of a classic TIFF's first page (None for BigTIFF)."""
    order: Literal["little", "big"] = "little" if data[:2] == b"II" else "big"
    if int.from_bytes(data[2:4], order) != 42:
        return None
    ifd = int.from_bytes(data[4:8], order)
    count = int.from_bytes(data[ifd : ifd + 2], order)
    found: dict[int, int] = {}
    for index in range(min(count, 1024)):
        entry = data[ifd + 2 + 12 * index : ifd + 14 + 12 * index]
        if len(entry) < 12:
            break
        tag, kind = int.from_bytes(entry[0:2], order), int.from_bytes(entry[2:4], order)
        if tag in (256, 257) and kind in (3, 4):
            found[tag] = int.from_bytes(entry[8:10] if kind == 3 else entry[8:12], order)
    if 256 in found and 257 in found:
        return found[256], found[257]
    return None


_HEADER_SIZES: dict[str, Callable[[mmap.mmap], tuple[int, int] | None]] = {
    "JPEG": _jpeg_size,
    "PNG": _png_size,
    "WEBP": _webp_size,
    "TIFF": _tiff_size,
}


# EXIF tags that can name a person or a device, or carry free text or foreign metadata
# blocks; removed wherever they occur (IFD0 or the Exif IFD). The GPS IFD goes as well.
_IDENTITY_TAGS = frozenset(
    {
        0x010E,  # ImageDescription
        0x013B,  # Artist
        0x013C,  # HostComputer
        0x8298,  # Copyright
        0x02BC,  # XMLPacket (XMP inside EXIF)
        0x83BB,  # IPTC-NAA
        0x8649,  # Photoshop image resources
        0x9286,  # UserComment
        0x927C,  # MakerNote: vendor block with serial numbers, sometimes owner and place
        0x9C9B,  # XPTitle
        0x9C9C,  # XPComment
        0x9C9D,  # XPAuthor
        0x9C9E,  # XPKeywords
        0x9C9F,  # XPSubject
        0xA420,  # ImageUniqueID
        0xA430,  # CameraOwnerName
        0xA431,  # BodySerialNumber
        0xA435,  # LensSerialNumber
        0xC62F,  # CameraSerialNumber (DNG)
        ExifTags.IFD.GPSInfo,
    }
)


def _clean_exif(raw: bytes) -> bytes | None:
    """The EXIF block (TIFF bytes, no ``Exif\\0\\0``) without identity and GPS data.

    Pillow writes IFD0, the Exif, Interop and GPS IFDs but not IFD1, so the embedded
    thumbnail (which can show an uncropped original) is dropped too. None when nothing
    is left, or when the block cannot be read (it is then dropped whole).
    """
    exif = Image.Exif()
    try:
        exif.load(raw)
        for tag in _IDENTITY_TAGS & set(exif):
            del exif[tag]
        if ExifTags.IFD.Exif in exif:
            exif_ifd = exif.get_ifd(ExifTags.IFD.Exif)
            for tag in _IDENTITY_TAGS & set(exif_ifd):
                del exif_ifd[tag]
        if not len(exif):
            return None
        return exif.tobytes().removeprefix(b"Exif\x00\x00")
    except Exception as exc:  # hostile EXIF makes Pillow raise all sorts of errors
        _LOGGER.warning("dropping an EXIF block that cannot be read: %s", exc)
        return None


def _write_cleaned(path: Path, fmt: _Format) -> Path:
    """Write the metadata-free copy next to ``path``; removed again if anything fails."""
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=CLEANED_PREFIX)
    cleaned = Path(name)
    try:
        with os.fdopen(fd, "w+b") as out:
            if fmt is _TIFF:
                _resave_tiff(path, out)
            else:
                with _mapped(path) as data:
                    _SURGEONS[fmt.decoder](data, out)
    except IngestError:
        cleaned.unlink(missing_ok=True)
        raise
    except _PILLOW_FAILURES as exc:
        cleaned.unlink(missing_ok=True)
        raise IngestError(422, f"{_the(fmt)} is damaged: {exc}") from exc
    except BaseException:
        cleaned.unlink(missing_ok=True)
        raise
    _LOGGER.debug("wrote the metadata-free copy %s", cleaned.name)
    return cleaned


def _copy_range(data: mmap.mmap, out: IO[bytes], start: int, end: int) -> None:
    for offset in range(start, end, _COPY_BYTES):
        out.write(data[offset : min(offset + _COPY_BYTES, end)])


_JPEG_MARKER_IN_SCAN = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
_APP0, _APP1, _APP2, _APP14, _APP15 = 0xE0, 0xE1, 0xE2, 0xEE, 0xEF
_COM, _SOS, _EOI = 0xFE, 0xDA, 0xD9
_JPEG_KEPT_APPS = {
    _APP0: (b"JFIF\x00",),  # not JFXX: its thumbnail may show an uncropped original
    _APP2: (b"ICC_PROFILE\x00",),
    _APP14: (b"Adobe",),  # colour transform: needed to decode CMYK/YCCK correctly
}
_JPEG_MAX_PAYLOAD = 65533


def _clean_jpeg(data: mmap.mmap, out: IO[bytes]) -> None:
    """Copy the JPEG segment by segment: entropy-coded data and tables untouched, the
    Exif segment cleaned, other application segments (XMP, IPTC, MPF...) and comments
    dropped, and nothing after the end-of-image marker (trailers, MPF extra images)."""
    out.write(b"\xff\xd8")
    pos, exif_seen = 2, False
    while True:
        marker, pos = _next_jpeg_marker(data, pos)
        if marker == _EOI:
            out.write(b"\xff\xd9")
            _LOGGER.debug("dropped %d bytes after the JPEG end marker", len(data) - pos)
            return
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:
            out.write(bytes((0xFF, marker)))
            continue
        length = int.from_bytes(data[pos : pos + 2], "big")
        end = pos + length
        if length < 2 or end > len(data):
            raise IngestError(422, "the JPEG image is truncated inside a segment")
        if marker == _SOS:
            end = _end_of_scan(data, end)
            out.write(bytes((0xFF, marker)))
            _copy_range(data, out, pos, end)
        elif marker == _APP1 and data[pos + 2 : pos + 8] == b"Exif\x00\x00":
            if not exif_seen:
                _write_jpeg_exif(out, data[pos + 2 : end])
            exif_seen = True
        elif _keeps_jpeg_segment(marker, data[pos + 2 : pos + 14]):
            out.write(bytes((0xFF, marker)))
            out.write(data[pos:end])
        pos = end


def _next_jpeg_marker(data: mmap.mmap, pos: int) -> tuple[int, int]:
    """The marker at ``pos`` (after any fill bytes) and the position after it."""
    if pos >= len(data):
        raise IngestError(422, "the JPEG image is truncated (no end-of-image marker)")
    if data[pos] != 0xFF:
        raise IngestError(422, f"not a valid JPEG image: no segment marker at byte {pos}")
    while pos < len(data) and data[pos] == 0xFF:
        pos += 1
    if pos >= len(data):
        raise IngestError(422, "the JPEG image is truncated (no end-of-image marker)")
    return data[pos], pos + 1


def _end_of_scan(data: mmap.mmap, pos: int) -> int:
    """Where the entropy-coded data starting at ``pos`` ends (the next real marker)."""
    found = _JPEG_MARKER_IN_SCAN.search(data, pos)
    if found is None:
        raise IngestError(422, "the JPEG image is truncated (no end-of-image marker)")
    return found.start()


def _keeps_jpeg_segment(marker: int, payload_start: bytes) -> bool:
    if marker == _COM:
        return False
    if _APP0 <= marker <= _APP15:
        return payload_start.startswith(_JPEG_KEPT_APPS.get(marker, ()))
    return True  # tables, frame and scan headers, restart intervals...


def _write_jpeg_exif(out: IO[bytes], payload: bytes) -> None:
    cleaned = _clean_exif(payload)
    if cleaned is None:
        return
    segment = b"Exif\x00\x00" + cleaned
    if len(segment) > _JPEG_MAX_PAYLOAD:
        _LOGGER.warning("dropping a cleaned EXIF block of %d bytes: too big", len(segment))
        return
    out.write(struct.pack(">BBH", 0xFF, _APP1, len(segment) + 2))
    out.write(segment)


# Chunks that describe pixels, colour or animation; text, time, EXIF and private ones go.
_PNG_KEPT = frozenset(
    {
        b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"cHRM", b"gAMA", b"iCCP", b"sBIT",
        b"sRGB", b"cICP", b"mDCV", b"cLLI", b"bKGD", b"hIST", b"pHYs", b"sPLT", b"acTL",
        b"fcTL", b"fdAT",
    }
)  # fmt: skip


def _clean_png(data: mmap.mmap, out: IO[bytes]) -> None:
    """Copy the PNG chunk by chunk: kept chunks verbatim (their CRCs still hold), eXIf
    rewritten cleaned with a new CRC, text/time/private chunks and trailing bytes dropped.
    Unknown critical chunks are kept: dropping one could change how the image decodes."""
    out.write(data[:8])
    pos = 8
    while True:
        if pos + 12 > len(data):
            raise IngestError(422, "the PNG image is truncated (no IEND chunk)")
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        end = pos + 12 + length
        if length > 0x7FFFFFFF or end > len(data) or not kind.isalpha():
            raise IngestError(422, f"not a valid PNG image: a broken chunk at byte {pos}")
        if kind == b"eXIf":
            cleaned = _clean_exif(data[pos + 8 : pos + 8 + length])
            if cleaned is not None:
                out.write(struct.pack(">I", len(cleaned)) + b"eXIf" + cleaned)
                out.write(struct.pack(">I", zlib.crc32(b"eXIf" + cleaned)))
        elif kind in _PNG_KEPT or (kind[0] & 0x20) == 0:  # 0x20 clear: critical chunk
            _copy_range(data, out, pos, end)
        else:
            _LOGGER.debug("dropping PNG chunk %r (%d bytes)", kind, length)
        pos = end
        if kind == b"IEND":
            return


_WEBP_KEPT = frozenset({b"VP8X", b"VP8 ", b"VP8L", b"ALPH", b"ANIM", b"ANMF", b"ICCP"})
_VP8X_EXIF, _VP8X_XMP = 0x08, 0x04


@dataclass(frozen=True)
class _RiffChunk:
    fourcc: bytes
    start: int  # of the payload in the upload
    size: int
    replacement: bytes | None = None  # new payload, instead of the upload's bytes


def _clean_webp(data: mmap.mmap, out: IO[bytes]) -> None:
    """Rebuild the RIFF container: image chunks verbatim, EXIF cleaned, XMP and unknown
    chunks dropped, the VP8X flags and the RIFF size made to match."""
    chunks = [c for c in _riff_chunks(data) if c.fourcc in _WEBP_KEPT or c.fourcc == b"EXIF"]
    kept: list[_RiffChunk] = []
    for chunk in chunks:
        if chunk.fourcc == b"EXIF":
            cleaned = _clean_exif(data[chunk.start : chunk.start + chunk.size])
            if cleaned is not None:
                kept.append(_RiffChunk(b"EXIF", chunk.start, len(cleaned), cleaned))
        else:
            kept.append(chunk)
    has_exif = any(c.fourcc == b"EXIF" for c in kept)
    kept = [_with_vp8x_flags(data, c, has_exif) if c.fourcc == b"VP8X" else c for c in kept]
    riff_size = 4 + sum(8 + c.size + (c.size & 1) for c in kept)
    out.write(b"RIFF" + struct.pack("<I", riff_size) + b"WEBP")
    for chunk in kept:
        out.write(chunk.fourcc + struct.pack("<I", chunk.size))
        if chunk.replacement is not None:
            out.write(chunk.replacement)
        else:
            _copy_range(data, out, chunk.start, chunk.start + chunk.size)
        if chunk.size & 1:
            out.write(b"\x00")


def _riff_chunks(data: mmap.mmap) -> Iterator[_RiffChunk]:
    end = min(8 + int.from_bytes(data[4:8], "little"), len(data))
    pos = 12
    while pos + 8 <= end:
        size = int.from_bytes(data[pos + 4 : pos + 8], "little")
        if pos + 8 + size > len(data):
            raise IngestError(422, "the WebP image is truncated inside a chunk")
        yield _RiffChunk(data[pos : pos + 4], pos + 8, size)
        pos += 8 + size + (size & 1)


def _with_vp8x_flags(data: mmap.mmap, chunk: _RiffChunk, has_exif: bool) -> _RiffChunk:
    if chunk.size < 10:
        raise IngestError(422, "not a valid WebP image: its VP8X chunk is too short")
    payload = bytearray(data[chunk.start : chunk.start + chunk.size])
    payload[0] &= ~(_VP8X_XMP | _VP8X_EXIF) & 0xFF
    if has_exif:
        payload[0] |= _VP8X_EXIF
    return _RiffChunk(chunk.fourcc, chunk.start, chunk.size, bytes(payload))


_SURGEONS: dict[str, Callable[[mmap.mmap, IO[bytes]], None]] = {
    "JPEG": _clean_jpeg,
    "PNG": _clean_png,
    "WEBP": _clean_webp,
}


def _resave_tiff(path: Path, out: IO[bytes]) -> None:
    """Re-save every page losslessly with only the tags that describe the pixels.

    TIFF keeps metadata in the same tag directories as the image structure, so the
    pages are re-encoded (bilevel pages with CCITT G4, others with Deflate) from bare
    copies; Pillow would otherwise carry the XMP, IPTC and Photoshop tags over.
    """
    with Image.open(path, formats=["TIFF"]) as img:
        orientation = img.getexif().get(ExifTags.Base.Orientation)
        with TiffImagePlugin.AppendingTiffWriter(out) as writer:
            for index in range(int(getattr(img, "n_frames", 1))):
                img.seek(index)
                _save_bare_page(img, writer, orientation)
                writer.newFrame()


def _save_bare_page(img: Image.Image, writer: IO[bytes], orientation: object) -> None:
    page = img.copy()
    page.info = {}
    options: dict[str, Any] = {
        "compression": "group4" if page.mode == "1" else "tiff_adobe_deflate",
        "tiffinfo": {ExifTags.Base.Orientation: orientation} if orientation else {},
    }
    if "dpi" in img.info:
        options["dpi"] = img.info["dpi"]
    if "icc_profile" in img.info:
        options["icc_profile"] = img.info["icc_profile"]
    page.save(writer, format="TIFF", **options)


# --- PDF ---------------------------------------------------------------------------------

_PDF_PAGE = re.compile(rb"/Type\s*/Page(?![^\s/<>\[\]()%{}])")
_PDF_OBJECT_STREAM = re.compile(rb"/Type\s*/ObjStm(?![^\s/<>\[\]()%{}])")
_MAX_PDF_PAGES_COUNTED = 10_000
_MAX_OBJECT_STREAM_BYTES = 4 << 20
_MAX_INFLATED_BYTES = 32 << 20


def _inspect_pdf(path: Path, fmt: _Format, category: Category, limits: IngestLimits) -> Inspected:
    with _mapped(path) as data:
        if b"%%EOF" not in data[-1024:]:
            raise IngestError(422, "the PDF document is truncated (no %%EOF marker at its end)")
        pages = _count_pdf_pages(data)
    metadata = {"width": None, "height": None, "page_count": pages}
    return Inspected(category, fmt.media_type, metadata, None)


def _count_pdf_pages(data: mmap.mmap) -> int | None:
    """Page objects (``/Type /Page``, not ``/Pages``) in the file, up to a cap.

    PDF 1.5 files may keep their page objects in compressed object streams; those are
    inflated (with a budget) when the plain scan finds none. None if still none.
    """
    count = _count_matches(_PDF_PAGE, data)
    if count == 0:
        count = _count_pages_in_object_streams(data)
    return count or None


def _count_matches(pattern: re.Pattern[bytes], data: mmap.mmap | bytes) -> int:
    count = 0
    for _ in pattern.finditer(data):
        count += 1
        if count >= _MAX_PDF_PAGES_COUNTED:
            break
    return count


def _count_pages_in_object_streams(data: mmap.mmap) -> int:
    count, budget = 0, _MAX_INFLATED_BYTES
    for found in _PDF_OBJECT_STREAM.finditer(data):
        keyword = data.find(b"stream", found.end(), found.end() + 4096)
        if keyword < 0 or budget <= 0:
            continue
        start = keyword + 6 + (2 if data[keyword + 6 : keyword + 8] == b"\r\n" else 1)
        try:
            inflated = zlib.decompressobj().decompress(
                data[start : start + _MAX_OBJECT_STREAM_BYTES], min(budget, 8 << 20)
            )
        except zlib.error:
            continue
        budget -= len(inflated)
        count += _count_matches(_PDF_PAGE, inflated)
    return min(count, _MAX_PDF_PAGES_COUNTED)


# --- DICOM -------------------------------------------------------------------------------

_UID = re.compile(r"[0-9]+(\.[0-9]+)*")


def _inspect_dicom(path: Path, fmt: _Format, category: Category, limits: IngestLimits) -> Inspected:
    try:
        dataset = pydicom.dcmread(path, stop_before_pixels=True, force=False)
        metadata = _dicom_metadata(dataset, limits)
    except IngestError:
        raise
    except InvalidDicomError as exc:
        raise IngestError(422, f"not a valid DICOM file: {exc}") from exc
    except Exception as exc:  # a hostile header makes pydicom raise all sorts of errors
        raise IngestError(
            422, f"not a valid DICOM file: its header cannot be read ({exc})"
        ) from exc
    return Inspected(category, fmt.media_type, metadata, None)


def _dicom_metadata(dataset: Dataset, limits: IngestLimits) -> dict[str, Any]:
    rows, columns = _dicom_int(dataset, "Rows"), _dicom_int(dataset, "Columns")
    if rows is None or columns is None or rows <= 0 or columns <= 0:
        raise IngestError(422, "the DICOM file holds no image (Rows or Columns is missing)")
    frames = _dicom_int(dataset, "NumberOfFrames") or 1
    if frames < 1 or rows * columns * frames > limits.max_dicom_pixels:
        raise IngestError(
            422,
            f"the DICOM image is {columns} × {rows} pixels × {frames} frames, more than "
            f"the limit of {limits.max_dicom_pixels:,} pixels",
        )
    return {
        "study_uid": _dicom_uid(dataset, "StudyInstanceUID"),
        "series_uid": _dicom_uid(dataset, "SeriesInstanceUID"),
        "instance_uid": _dicom_uid(dataset, "SOPInstanceUID"),
        "modality": str(dataset.get("Modality") or "").strip(),
        "slice_position": _slice_position(dataset),
        "rows": rows,
        "columns": columns,
        "number_of_frames": frames,
    }


def _dicom_uid(dataset: Dataset, keyword: str) -> str:
    value = str(dataset.get(keyword) or "").strip().rstrip("\x00")
    if not value:
        raise IngestError(422, f"the DICOM file has no {keyword}")
    if len(value) > 64 or not _UID.fullmatch(value):
        raise IngestError(422, f"the DICOM {keyword} {value[:70]!r} is not a valid UID")
    return value


def _dicom_int(dataset: Dataset, keyword: str) -> int | None:
    value = dataset.get(keyword)
    return None if value is None or value == "" else int(value)


def _slice_position(dataset: Dataset) -> float | None:
    """z of ImagePositionPatient, else SliceLocation, else None (mm)."""
    position = dataset.get("ImagePositionPatient")
    candidates: list[Any] = []
    if isinstance(position, Sequence) and len(position) == 3:
        candidates.append(position[2])
    candidates.append(dataset.get("SliceLocation"))
    for candidate in candidates:
        try:
            value = float(candidate)
        except (TypeError, ValueError):
            continue
        if math.isfinite(value):
            return value
    return None


# --- audio -------------------------------------------------------------------------------

_WAV_CODECS = {
    (1, 8): "pcm_u8",
    (1, 16): "pcm_s16le",
    (1, 24): "pcm_s24le",
    (1, 32): "pcm_s32le",
    (3, 32): "pcm_f32le",
    (3, 64): "pcm_f64le",
    (6, 8): "pcm_alaw",
    (7, 8): "pcm_mulaw",
}
_WAVE_FORMAT_EXTENSIBLE = 0xFFFE
_WAV_MAX_CHUNKS = 1000
_MIN_SAMPLE_RATE, _MAX_SAMPLE_RATE = 1000, 384_000
_MAX_CHANNELS = 32


@dataclass(frozen=True)
class _WavFormat:
    codec: str
    channels: int
    sample_rate: int
    block_align: int


def _wav_invalid(detail: str) -> IngestError:
    return IngestError(422, f"not a valid WAV file: {detail}")


def _inspect_wav(path: Path, fmt: _Format, category: Category, limits: IngestLimits) -> Inspected:
    wav_format, data_size = _read_wav_chunks(path)
    duration = data_size / (wav_format.block_align * wav_format.sample_rate)
    _check_duration(duration, limits)
    metadata = {
        "duration_s": duration,
        "sample_rate": wav_format.sample_rate,
        "codec": wav_format.codec,
        "channels": wav_format.channels,
    }
    return Inspected(category, fmt.media_type, metadata, None)


def _read_wav_chunks(path: Path) -> tuple[_WavFormat, int]:
    """The fmt chunk and the data chunk's size, reading only chunk headers and fmt."""
    file_size = path.stat().st_size
    wav_format: _WavFormat | None = None
    data_size: int | None = None
    with path.open("rb") as fh:
        pos = 12
        for _ in range(_WAV_MAX_CHUNKS):
            fh.seek(pos)
            header = fh.read(8)
            if len(header) < 8 or (wav_format is not None and data_size is not None):
                break
            chunk_id, size = header[:4], int.from_bytes(header[4:], "little")
            if not all(32 <= b < 127 for b in chunk_id):
                raise _wav_invalid(f"garbage where a chunk should start (byte {pos})")
            if pos + 8 + size > file_size:
                raise _wav_invalid(
                    f"the {chunk_id.decode()!r} chunk claims {size} bytes, more than the "
                    f"{file_size - pos - 8} left in the file"
                )
            if chunk_id == b"fmt ":
                wav_format = _parse_wav_fmt(fh.read(min(size, 64)))
            elif chunk_id == b"data":
                data_size = size
            pos += 8 + size + (size & 1)
    if wav_format is None:
        raise _wav_invalid("it has no fmt chunk")
    if data_size is None:
        raise _wav_invalid("it has no data chunk")
    return wav_format, data_size


def _parse_wav_fmt(body: bytes) -> _WavFormat:
    if len(body) < 16:
        raise _wav_invalid("the fmt chunk is too short")
    tag, channels, rate, byte_rate, align, bits = struct.unpack_from("<HHIIHH", body)
    if tag == _WAVE_FORMAT_EXTENSIBLE:
        if len(body) < 26:
            raise _wav_invalid("the extensible fmt chunk is too short")
        (tag,) = struct.unpack_from("<H", body, 24)
    if not 1 <= channels <= _MAX_CHANNELS:
        raise _wav_invalid(f"{channels} channels")
    if not _MIN_SAMPLE_RATE <= rate <= _MAX_SAMPLE_RATE:
        raise _wav_invalid(f"a sample rate of {rate} Hz")
    if bits == 0 or align != channels * ((bits + 7) // 8) or byte_rate != rate * align:
        raise _wav_invalid(
            f"inconsistent sizes ({bits} bits, block align {align}, {byte_rate} bytes/s "
            f"for {channels} channels at {rate} Hz)"
        )
    codec = _WAV_CODECS.get((tag, bits))
    if codec is None:
        raise IngestError(
            415, f"unsupported WAV encoding (format {tag:#06x}, {bits} bits); use PCM"
        )
    return _WavFormat(codec, channels, rate, align)


def _check_duration(duration: float, limits: IngestLimits) -> None:
    if duration <= 0:
        raise IngestError(422, "the recording is empty (it lasts 0 seconds)")
    if duration > limits.max_audio_seconds:
        raise IngestError(
            422,
            f"the recording lasts {duration:.0f} s, longer than the limit of "
            f"{limits.max_audio_seconds:.0f} s",
        )


# Only the local file itself may be opened; MP4 external data references stay off.
_FFMPEG_OPTIONS = {"protocol_whitelist": "file", "enable_drefs": "0"}


def _inspect_container_audio(
    path: Path, fmt: _Format, category: Category, limits: IngestLimits
) -> Inspected:
    try:
        container = av.open(
            str(path), format=fmt.decoder, options=_FFMPEG_OPTIONS, metadata_errors="ignore"
        )
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise IngestError(422, f"{_the(fmt)} cannot be read: {_ffmpeg_reason(exc)}") from exc
    with container:
        try:
            metadata = _audio_metadata(container, fmt, limits)
        except (av.FFmpegError, OSError, ValueError) as exc:
            raise IngestError(422, f"{_the(fmt)} cannot be read: {_ffmpeg_reason(exc)}") from exc
    return Inspected(category, fmt.media_type, metadata, None)


def _ffmpeg_reason(exc: Exception) -> str:
    """FFmpeg's sentence without the file name (a server path the user must not see)."""
    return str(getattr(exc, "strerror", None) or type(exc).__name__)


def _audio_metadata(
    container: InputContainer, fmt: _Format, limits: IngestLimits
) -> dict[str, Any]:
    if container.streams.video:
        raise IngestError(422, f"{_the(fmt)} contains a video stream: a video is not a voice note")
    if not container.streams.audio:
        raise IngestError(422, f"{_the(fmt)} contains no audio stream")
    stream = container.streams.audio[0]
    context = stream.codec_context  # None when FFmpeg knows no codec for the stream
    if context is None or not context.sample_rate or not context.channels:
        raise IngestError(422, f"{_the(fmt)} gives no sample rate or channel count")
    duration = _audio_duration(container, stream, limits)
    _check_duration(duration, limits)
    return {
        "duration_s": duration,
        "sample_rate": int(context.sample_rate),
        "codec": context.codec.canonical_name,
        "channels": int(context.channels),
    }


def _audio_duration(container: InputContainer, stream: AudioStream, limits: IngestLimits) -> float:
    """From the container header, else the stream header, else the last packet's end.

    Browsers' MediaRecorder writes WebM without a duration; then the packets are
    demuxed (read, not decoded) until their end or until they pass the limit.
    """
    if container.duration is not None and container.duration > 0:
        return container.duration / av.time_base
    if stream.duration and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    start, end = stream.start_time or 0, 0.0
    for packet in container.demux(stream):
        if packet.pts is None or packet.time_base is None:
            continue
        end = max(end, float((packet.pts - start + (packet.duration or 0)) * packet.time_base))
        if end > limits.max_audio_seconds:
            break
    return end


_INSPECTORS: dict[_Family, Callable[[Path, _Format, Category, IngestLimits], Inspected]] = {
    _Family.IMAGE: _inspect_image,
    _Family.PDF: _inspect_pdf,
    _Family.DICOM: _inspect_dicom,
    _Family.WAV: _inspect_wav,
    _Family.AUDIO: _inspect_container_audio,
}

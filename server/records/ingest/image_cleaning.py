"""Image metadata surgery: EXIF, XMP, IPTC and comments out, pixels untouched."""

from __future__ import annotations

import logging
import mmap
import os
import re
import struct
import tempfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from PIL import ExifTags, Image, TiffImagePlugin

from clinicam.i18n import _
from server.records.ingest.formats import (
    _COPY_BYTES,
    _PILLOW_FAILURES,
    _TIFF,
    CLEANED_PREFIX,
    IngestError,
    _Format,
    _mapped,
    _the,
)

_LOGGER = logging.getLogger(__name__)


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
        raise IngestError(
            422, _("{the_format} is damaged: {problem}", the_format=_the(fmt), problem=str(exc))
        ) from exc
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
            raise IngestError(422, _("the JPEG image is truncated inside a segment"))
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
        raise IngestError(422, _("the JPEG image is truncated (no end-of-image marker)"))
    if data[pos] != 0xFF:
        raise IngestError(
            422, _("not a valid JPEG image: no segment marker at byte {pos}", pos=pos)
        )
    while pos < len(data) and data[pos] == 0xFF:
        pos += 1
    if pos >= len(data):
        raise IngestError(422, _("the JPEG image is truncated (no end-of-image marker)"))
    return data[pos], pos + 1


def _end_of_scan(data: mmap.mmap, pos: int) -> int:
    """Where the entropy-coded data starting at ``pos`` ends (the next real marker)."""
    found = _JPEG_MARKER_IN_SCAN.search(data, pos)
    if found is None:
        raise IngestError(422, _("the JPEG image is truncated (no end-of-image marker)"))
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
            raise IngestError(422, _("the PNG image is truncated (no IEND chunk)"))
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        end = pos + 12 + length
        if length > 0x7FFFFFFF or end > len(data) or not kind.isalpha():
            raise IngestError(
                422, _("not a valid PNG image: a broken chunk at byte {pos}", pos=pos)
            )
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
            raise IngestError(422, _("the WebP image is truncated inside a chunk"))
        yield _RiffChunk(data[pos : pos + 4], pos + 8, size)
        pos += 8 + size + (size & 1)


def _with_vp8x_flags(data: mmap.mmap, chunk: _RiffChunk, has_exif: bool) -> _RiffChunk:
    if chunk.size < 10:
        raise IngestError(422, _("not a valid WebP image: its VP8X chunk is too short"))
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

"""Photos and scan images: size from the header, a full decode of every page."""

from __future__ import annotations

import logging
import mmap
import struct
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from PIL import ExifTags, Image

from clinicam.i18n import _
from server.records.ingest.formats import (
    _PILLOW_FAILURES,
    _TIFF,
    Category,
    IngestError,
    IngestLimits,
    Inspected,
    _Format,
    _mapped,
    _the,
)
from server.records.ingest.image_cleaning import _write_cleaned

_LOGGER = logging.getLogger(__name__)


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
        raise IngestError(
            422,
            _(
                "the image header gives an empty size ({width} × {height})",
                width=width,
                height=height,
            ),
        )
    limit = _image_pixel_limit(limits)
    if width * height > limit:
        raise IngestError(
            422,
            _(
                "the image is {width} × {height} pixels, which is larger than the limit "
                "of {limit} pixels",
                width=width,
                height=height,
                limit=f"{limit:,}",
            ),
        )


_MAX_SCAN_PAGES = 1000


def _verify_image(
    path: Path, fmt: _Format, limits: IngestLimits
) -> tuple[int, int, int, str | None]:
    """Fully decode every page (truncated or corrupt data fails here); size, pages, time."""
    try:
        img = Image.open(path, formats=[fmt.decoder])
    except _PILLOW_FAILURES as exc:
        raise IngestError(
            422, _("{the_format} cannot be opened: its header is invalid", the_format=_the(fmt))
        ) from exc
    with img:
        _check_image_pixels(*img.size, limits)
        taken_at = _taken_at(img)
        width, height = _displayed_size(img)
        pages = _page_count(img, fmt)
        total = 0
        for page in range(pages):
            total += _decode_page(img, page, fmt, limits, total)
    return width, height, pages, taken_at


def _page_count(img: Image.Image, fmt: _Format) -> int:
    """Pages of a TIFF (each IFD is read, no pixels); 1 for the other formats."""
    if fmt is not _TIFF:
        return 1
    try:
        pages = int(getattr(img, "n_frames", 1))
    except _PILLOW_FAILURES as exc:
        raise IngestError(
            422, _("the TIFF image has a damaged page directory: {problem}", problem=str(exc))
        ) from exc
    if pages > _MAX_SCAN_PAGES:
        raise IngestError(
            422,
            _(
                "the TIFF image has {pages} pages, more than {limit}",
                pages=pages,
                limit=_MAX_SCAN_PAGES,
            ),
        )
    return pages


def _decode_page(
    img: Image.Image, page: int, fmt: _Format, limits: IngestLimits, before: int
) -> int:
    """Decode one page (after checking its size and the pages' total); its pixel count."""
    try:
        if page:
            img.seek(page)
            _check_image_pixels(*img.size, limits)
        pixels = img.size[0] * img.size[1]
        if before + pixels > limits.max_total_pixels:
            raise IngestError(
                422,
                _(
                    "{the_format} holds more than {limit} pixels over its first {pages} pages, "
                    "more than a scan may have; split it into smaller files",
                    the_format=_the(fmt),
                    limit=f"{limits.max_total_pixels:,}",
                    pages=page + 1,
                ),
            )
        img.load()
    except _PILLOW_FAILURES as exc:
        raise IngestError(
            422,
            _(
                "{the_format} is damaged or truncated: {problem}",
                the_format=_the(fmt),
                problem=str(exc),
            ),
        ) from exc
    return pixels


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
        raise IngestError(422, _("not a valid PNG image: the first chunk is not IHDR"))
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

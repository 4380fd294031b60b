"""Photographs re-encoded from their pixels alone."""

from __future__ import annotations

import io
import logging
from typing import Final

from PIL import Image, ImageOps, UnidentifiedImageError

_LOGGER = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------
# Photographs
# --------------------------------------------------------------------------------------

MAX_IMAGE_PIXELS: Final = 50_000_000
_JPEG_FORMATS: Final = frozenset({"JPEG", "MPO"})
_PNG_MODES: Final = frozenset({"1", "L", "LA", "I;16", "RGB", "RGBA"})


def _open_image(data: bytes) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise ValueError(f"image too large: {exc}") from exc
    except (UnidentifiedImageError, OSError) as exc:
        raise ValueError(f"not a readable image: {exc}") from exc
    width, height = image.size
    if width * height > MAX_IMAGE_PIXELS:
        raise ValueError(
            f"image of {width}x{height} pixels exceeds {MAX_IMAGE_PIXELS} pixels; refusing"
        )
    return image


def _to_srgb(image: Image.Image) -> Image.Image:
    """Convert pixels from an embedded ICC profile to sRGB, so dropping it keeps colours."""
    icc = image.info.get("icc_profile")
    if not icc or image.mode not in ("RGB", "RGBA"):
        return image
    try:
        from PIL import ImageCms

        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        converted = ImageCms.profileToProfile(
            image, source, ImageCms.createProfile("sRGB"), outputMode=image.mode
        )
    except (ImportError, OSError, ValueError) as exc:
        _LOGGER.warning("could not apply the image's ICC profile, dropping it: %s", exc)
        return image
    return converted if converted is not None else image


def _output_mode(image: Image.Image, as_jpeg: bool) -> str:
    if as_jpeg:
        return "L" if image.mode in ("1", "L", "I;16", "I", "F") else "RGB"
    if image.mode in _PNG_MODES:
        return image.mode
    if image.mode in ("I", "F"):
        return "I;16"
    has_alpha = "A" in image.getbands() or "transparency" in image.info
    return "RGBA" if has_alpha else "RGB"


def _pixels_only(image: Image.Image, mode: str) -> Image.Image:
    """A new image holding only the pixels: no info dict, no EXIF, no palette, no profile."""
    converted = image if image.mode == mode else image.convert(mode)
    return Image.frombytes(mode, converted.size, converted.tobytes())


def strip_image_metadata(data: bytes) -> tuple[bytes, str]:
    """Re-encode an image from its pixels alone; returns (bytes, media type).

    JPEG (and phone MPO) input comes back as JPEG quality 95, anything else as PNG
    (lossless). EXIF orientation is applied to the pixels first, since the tag that
    carried it is dropped. Only the first frame of an animated or multi-page image is
    kept. Images over 50 megapixels are refused before any pixel is decoded.
    """
    image = _open_image(data)
    as_jpeg = image.format in _JPEG_FORMATS
    try:
        image.load()
        oriented = ImageOps.exif_transpose(image)
        oriented = _to_srgb(oriented)
        clean = _pixels_only(oriented, _output_mode(oriented, as_jpeg))
    except (OSError, SyntaxError) as exc:
        raise ValueError(f"image could not be decoded: {exc}") from exc
    out = io.BytesIO()
    if as_jpeg:
        clean.save(out, format="JPEG", quality=95)
        return out.getvalue(), "image/jpeg"
    clean.save(out, format="PNG")
    return out.getvalue(), "image/png"

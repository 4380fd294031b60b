"""Pictures for the web page: photo and scan thumbnails, and CT slices as PNG.

Browsers cannot show DICOM, and a 12-megapixel photo is too heavy for a patient's
record list, so the server renders what the page shows. Thumbnails honour the EXIF
orientation (a phone photo taken upright is stored sideways) and decode big JPEGs at
a reduced scale (``Image.draft``), so a thumbnail costs a fraction of a full decode;
they carry no metadata of their own (no EXIF, no comment).

A CT slice's stored values are not grey levels: RescaleSlope and RescaleIntercept turn
them into Hounsfield units, and a window (center and width, as radiologists say
"window/level") chooses which range of units fills the 256 grey levels: a lung window
and a bone window of the same slice look entirely different. The linear window follows
DICOM PS3.3 C.11.2.1.2.1; MONOCHROME1 (white is low) is inverted; colour images pass
through scaled to 8 bits. Only the requested frame of a multi-frame file is decoded.

Inputs are files this server already accepted (see ``ingest``), but any unreadable
input raises ``ValueError`` with a sentence saying why, never a library's own error.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import numbers
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt
import pydicom
from PIL import Image, ImageOps
from pydicom.dataset import Dataset
from pydicom.pixels.processing import apply_color_lut
from pydicom.pixels.utils import pixel_array

from clinicam.i18n import _

_LOGGER = logging.getLogger(__name__)

THUMBNAIL_QUALITY = 85
_IMAGE_FORMATS = ["JPEG", "PNG", "WEBP", "TIFF"]
_PILLOW_FAILURES = (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)


# --- thumbnails ----------------------------------------------------------------------------


@contextlib.contextmanager
def _reading(source: Path | BinaryIO) -> Iterator[BinaryIO]:
    """``source`` as an open binary stream: a path is opened (and closed) here, a stream
    (e.g. from :meth:`server.records.blobs.BlobStore.open`) is used as it is."""
    if isinstance(source, Path):
        with source.open("rb") as fh:
            yield fh
    else:
        yield source


def _name(source: Path | BinaryIO) -> str:
    return source.name if isinstance(source, Path) else str(getattr(source, "name", "stream"))


def thumbnail(source: Path | BinaryIO, max_side: int = 256) -> bytes:
    """A JPEG, at most ``max_side`` pixels on its longer side, upright as the photo was
    taken (EXIF orientation applied); transparent areas become white."""
    if max_side < 1:
        raise ValueError(f"max_side must be at least 1, not {max_side}")
    try:
        with _reading(source) as fh, Image.open(fh, formats=_IMAGE_FORMATS) as img:
            # Decode a JPEG at 1/2, 1/4 or 1/8 scale, still at least max_side each way.
            img.draft(None, (max_side, max_side))
            img.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
            upright = ImageOps.exif_transpose(img)
        picture = _displayable(upright)
        picture.info = {}  # no comment, EXIF or profile copied from the original
        out = io.BytesIO()
        picture.save(out, "JPEG", quality=THUMBNAIL_QUALITY, optimize=True)
    except _PILLOW_FAILURES as exc:
        raise ValueError(
            _("cannot make a thumbnail: not a readable image ({problem})", problem=str(exc))
        ) from exc
    _LOGGER.debug("thumbnail %dx%d of %s", picture.width, picture.height, _name(source))
    return out.getvalue()


def _displayable(img: Image.Image) -> Image.Image:
    """The picture in a mode JPEG can hold: grey ("L") or "RGB"."""
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        flat = Image.new("RGB", rgba.size, "white")
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    if img.mode in ("I", "F") or img.mode.startswith("I;16"):
        return Image.fromarray(_stretched(np.asarray(img, dtype=np.float64)))
    if img.mode in ("L", "RGB"):
        return img
    return img.convert("RGB")


def _stretched(values: npt.NDArray[np.float64]) -> npt.NDArray[np.uint8]:
    """High-bit-depth grey (a 16-bit scan) spread over 0–255."""
    low, high = float(values.min()), float(values.max())
    scale = 255.0 / (high - low) if high > low else 0.0
    return np.rint((values - low) * scale).astype(np.uint8)


# --- DICOM ---------------------------------------------------------------------------------


def dicom_window_defaults(path: Path) -> tuple[float, float]:
    """(center, width) from WindowCenter/WindowWidth (first value when several), else
    spanning the first frame's range of rescaled values."""
    with path.open("rb") as fh:
        dataset = _read_header(fh)
        window = _header_window(dataset)
        if window is not None:
            return window
        return _range_window(_rescaled(dataset, _decode_frame(fh, dataset, 0)))


def render_dicom(
    source: Path | BinaryIO,
    *,
    center: float | None = None,
    width: float | None = None,
    frame: int = 0,
    max_side: int = 1024,
) -> bytes:
    """One frame as PNG: 8-bit grey after rescale and window (MONOCHROME1 inverted), or
    RGB for colour images; scaled down to ``max_side`` on the longer side.

    A missing ``center`` or ``width`` comes from the file's window, else from this
    frame's range of values.
    """
    if max_side < 1:
        raise ValueError(f"max_side must be at least 1, not {max_side}")
    with _reading(source) as fh:
        dataset = _read_header(fh)
        pixels = _decode_frame(fh, dataset, frame)
    photometric = str(dataset.get("PhotometricInterpretation") or "MONOCHROME2").strip()
    if photometric == "PALETTE COLOR":
        image = Image.fromarray(_to_8_bits(apply_color_lut(pixels, dataset)), "RGB")
    elif pixels.ndim == 3:
        image = Image.fromarray(_to_8_bits(pixels, _bits_stored(dataset)), "RGB")
    else:
        image = Image.fromarray(_grey(dataset, pixels, center, width, photometric))
    image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def _read_header(fh: BinaryIO) -> Dataset:
    """Everything before the pixel data; DICOM files only (the DICM preamble is required)."""
    try:
        return pydicom.dcmread(fh, stop_before_pixels=True, force=False)
    except Exception as exc:  # pydicom raises many types on a file that is not DICOM
        raise ValueError(_("not a readable DICOM file: {problem}", problem=str(exc))) from exc


def _decode_frame(fh: BinaryIO, dataset: Dataset, frame: int) -> npt.NDArray[Any]:
    frames = int(dataset.get("NumberOfFrames") or 1)
    if not 0 <= frame < frames:
        raise ValueError(
            _(
                "frame {frame} does not exist: the file has {frames} frame(s)",
                frame=frame,
                frames=frames,
            )
        )
    fh.seek(0)
    try:
        pixels: npt.NDArray[Any] = pixel_array(fh, index=frame)
    except Exception as exc:  # missing decoder plugin, damaged or truncated pixel data
        raise ValueError(
            _("cannot decode the DICOM pixel data: {problem}", problem=str(exc))
        ) from exc
    return pixels


def _grey(
    dataset: Dataset,
    pixels: npt.NDArray[Any],
    center: float | None,
    width: float | None,
    photometric: str,
) -> npt.NDArray[np.uint8]:
    values = _rescaled(dataset, pixels)
    default_center, default_width = _header_window(dataset) or _range_window(values)
    grey = _windowed(
        values,
        default_center if center is None else center,
        default_width if width is None else width,
    )
    return 255 - grey if photometric == "MONOCHROME1" else grey


def _rescaled(dataset: Dataset, pixels: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
    """Stored values to modality units (Hounsfield units for CT)."""
    slope = _first_number(dataset.get("RescaleSlope")) or 1.0
    intercept = _first_number(dataset.get("RescaleIntercept")) or 0.0
    return pixels.astype(np.float64) * slope + intercept


def _windowed(
    values: npt.NDArray[np.float64], center: float, width: float
) -> npt.NDArray[np.uint8]:
    """The linear VOI window of DICOM PS3.3 C.11.2.1.2.1, to 0–255."""
    if not (math.isfinite(center) and math.isfinite(width)) or width < 1:
        raise ValueError(
            _(
                "invalid window: center {center}, width {width} (width must be ≥ 1)",
                center=center,
                width=width,
            )
        )
    if width == 1:
        scaled = np.where(values > center - 0.5, 255.0, 0.0)
    else:
        scaled = ((values - (center - 0.5)) / (width - 1) + 0.5) * 255.0
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def _header_window(dataset: Dataset) -> tuple[float, float] | None:
    center = _first_number(dataset.get("WindowCenter"))
    width = _first_number(dataset.get("WindowWidth"))
    if center is None or width is None or width < 1:
        return None
    return center, width


def _range_window(values: npt.NDArray[np.float64]) -> tuple[float, float]:
    low, high = float(values.min()), float(values.max())
    return (low + high) / 2, max(high - low, 1.0)


def _first_number(value: object) -> float | None:
    """A DS/IS value as float: the first one when the element is multi-valued."""
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        value = value[0] if len(value) else None
    if not isinstance(value, numbers.Real | str) or value == "":
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _bits_stored(dataset: Dataset) -> int:
    return int(dataset.get("BitsStored") or 8)


def _to_8_bits(pixels: npt.NDArray[Any], bits: int | None = None) -> npt.NDArray[np.uint8]:
    """Colour samples to 8 bits: shifted down from ``bits`` (default: the array's type)."""
    if pixels.dtype == np.uint8:
        return np.asarray(pixels, dtype=np.uint8)
    depth = bits if bits is not None else pixels.dtype.itemsize * 8
    shifted: npt.NDArray[np.int64] = pixels.astype(np.int64) >> max(depth - 8, 0)
    return np.clip(shifted, 0, 255).astype(np.uint8)

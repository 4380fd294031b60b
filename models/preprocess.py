"""One preprocessing function per data category, shared by training and the runtime.

A model only means what it was trained on: if the appliance resized photos with a
different filter, windowed CT with other numbers or computed the spectrogram with
another filterbank than training did, the int8 model would silently see inputs from
another distribution. So there is exactly one function per category, here, and both
``models.dataset`` (training) and ``models.runtime`` (appliance and server) call it
with parameters that training wrote into the model card; ``tests/models`` checks that
both sides give byte-identical tensors for the same stored record.

Inputs are what the record store holds: the bytes of a photo or scan image (JPEG,
PNG, WebP, TIFF), of a DICOM file, of a voice note (WAV, Ogg, WebM, FLAC, MP3, M4A),
or an EMR entry's JSON field dict. Outputs are float32 arrays without the batch axis:

- ``clinical_photo``: RGB, EXIF orientation applied, centre-cropped to a square,
  bilinear-resized to ``size``², scaled to [0, 1] → ``(size, size, 3)``.
- ``record_scan``: greyscale, letter-boxed on white (a page's aspect ratio is kept),
  resized, [0, 1] → ``(size, size, 1)``. PDF scans are refused (no renderer here).
- ``ct_image``: stored values × RescaleSlope + RescaleIntercept = Hounsfield units,
  a fixed window (centre/width) mapped to [0, 1], letter-boxed, resized → ``(size,
  size, 1)``; the middle frame of a multi-frame object.
- ``voice_note``: decoded with FFmpeg (PyAV) to mono float at a fixed rate, leading
  silence trimmed, a fixed-length clip peak-normalised, a log-mel spectrogram with
  the triangular (HTK) mel filterbank of :mod:`models.voice` → ``(n_mels, n_frames, 1)``.
- ``emr_entry``: the card's feature names looked up (case and punctuation ignored),
  a missing or non-numeric field replaced by the training mean, standardised with
  the training mean and standard deviation → ``(n_features,)``.

Only numpy, Pillow, pydicom and PyAV are used (pydicom and PyAV imported when first
needed), never TensorFlow: this module runs on the appliance.
"""

from __future__ import annotations

import io
import logging
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
from PIL import Image, ImageOps

from models.categories import (
    CLINICAL_PHOTO,
    CT_IMAGE,
    EMR_ENTRY,
    RECORD_SCAN,
    VOICE_NOTE,
    check_category,
)
from models.inputs import FloatArray as FloatArray
from models.inputs import PreprocessError as PreprocessError
from models.voice import VoiceParams as VoiceParams
from models.voice import decode_audio as decode_audio
from models.voice import log_mel_spectrogram as log_mel_spectrogram
from models.voice import mel_filterbank as mel_filterbank
from models.voice import voice_clip as voice_clip
from models.voice import voice_tensor as voice_tensor

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImageParams:
    """Photo and scan images: square ``size``, channels, how the aspect ratio is handled."""

    size: int = 64
    channels: Literal[1, 3] = 3
    fit: Literal["crop", "pad"] = "crop"
    pad_value: int = 255  # 8-bit grey level of the letter-box bars ("pad" only)
    resample: Literal["bilinear"] = "bilinear"

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.size, self.size, self.channels)


@dataclass(frozen=True)
class CtParams:
    """CT slices: Hounsfield window and output size (letter-boxed with air = 0)."""

    size: int = 64
    window_center: float = 40.0
    window_width: float = 400.0
    resample: Literal["bilinear"] = "bilinear"

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.size, self.size, 1)


@dataclass(frozen=True)
class EmrParams:
    """EMR entries: feature names in input order, training mean and std per feature."""

    features: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __post_init__(self) -> None:
        if not (len(self.features) == len(self.mean) == len(self.std)) or not self.features:
            raise ValueError("EMR features, mean and std must be non-empty and of equal length")
        if any(not math.isfinite(s) or s <= 0 for s in self.std):
            raise ValueError("EMR standard deviations must be finite and positive")

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.features),)


Params = ImageParams | CtParams | VoiceParams | EmrParams

PHOTO_PARAMS = ImageParams(size=64, channels=3, fit="crop")
SCAN_PARAMS = ImageParams(size=64, channels=1, fit="pad", pad_value=255)
CT_PARAMS = CtParams()
VOICE_PARAMS = VoiceParams()


def default_params(category: str) -> Params:
    """The preprocessing parameters new models are trained with.

    EMR parameters depend on the training data (:func:`fit_emr_params`), so they
    have no default.
    """
    defaults: dict[str, Params] = {
        CLINICAL_PHOTO: PHOTO_PARAMS,
        RECORD_SCAN: SCAN_PARAMS,
        CT_IMAGE: CT_PARAMS,
        VOICE_NOTE: VOICE_PARAMS,
    }
    if check_category(category) not in defaults:
        raise ValueError("EMR preprocessing parameters come from the training data")
    return defaults[category]


def params_to_json(params: Params) -> dict[str, Any]:
    """A JSON-ready dict (what the model card stores); inverse of :func:`params_from_json`."""
    data = asdict(params)
    if isinstance(params, EmrParams):
        data = {key: list(value) for key, value in data.items()}
    return data


def params_from_json(category: str, data: Mapping[str, Any]) -> Params:
    """The parameters of ``category`` from a model card's ``preprocessing`` dict."""
    check_category(category)
    try:
        if category in (CLINICAL_PHOTO, RECORD_SCAN):
            return ImageParams(**data)
        if category == CT_IMAGE:
            return CtParams(**data)
        if category == VOICE_NOTE:
            return VoiceParams(**data)
        return EmrParams(
            features=tuple(str(name) for name in data["features"]),
            mean=tuple(float(value) for value in data["mean"]),
            std=tuple(float(value) for value in data["std"]),
        )
    except (TypeError, KeyError) as exc:
        raise ValueError(f"bad preprocessing parameters for {category}: {exc}") from exc


def preprocess(category: str, item: bytes | Mapping[str, Any], params: Params) -> FloatArray:
    """The branch input for one stored record of ``category`` (no batch axis)."""
    check_category(category)
    if category == EMR_ENTRY:
        if not isinstance(item, Mapping) or not isinstance(params, EmrParams):
            raise PreprocessError("an EMR entry is a dict of fields, with EmrParams")
        return emr_tensor(item, params)
    if not isinstance(item, bytes | bytearray | memoryview):
        raise PreprocessError(f"a {category} record is the stored file's bytes")
    data = bytes(item)
    if category in (CLINICAL_PHOTO, RECORD_SCAN):
        if not isinstance(params, ImageParams):
            raise TypeError("image categories need ImageParams")
        return image_tensor(data, params)
    if category == CT_IMAGE:
        if not isinstance(params, CtParams):
            raise TypeError("ct_image needs CtParams")
        return ct_tensor(data, params)
    if not isinstance(params, VoiceParams):
        raise TypeError("voice_note needs VoiceParams")
    return voice_tensor(data, params)


# --- images ------------------------------------------------------------------------------


def _open_image(data: bytes, mode: str, draft_size: int) -> Image.Image:
    if data[:5] == b"%PDF-":
        raise PreprocessError("PDF scans are not supported by the image branch (no renderer)")
    try:
        image = Image.open(io.BytesIO(data))
        # JPEG only: decode at a reduced DCT scale that is still ≥ draft_size on both
        # sides; a 12 MP phone photo then costs a fraction of a full decode on the Pi.
        image.draft(mode, (draft_size, draft_size))
        image.load()
        transposed = ImageOps.exif_transpose(image)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise PreprocessError(f"not a readable image: {exc}") from exc
    return transposed if transposed is not None else image


def _to_mode(image: Image.Image, mode: str) -> Image.Image:
    """``image`` as 8-bit ``mode`` ("RGB" or "L"): alpha over white, 16-bit scaled down."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        values = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") or values.max(initial=0) > 255 else 255.0
        grey = np.clip(np.round(values * (255.0 / top)), 0, 255).astype(np.uint8)
        image = Image.fromarray(grey)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, rgba)
    return image.convert(mode)


def image_tensor(data: bytes, params: ImageParams) -> FloatArray:
    """A photo or scan image as ``params.shape`` float32 in [0, 1]."""
    mode = "RGB" if params.channels == 3 else "L"
    image = _to_mode(_open_image(data, mode, 4 * params.size), mode)
    width, height = image.size
    if width < 1 or height < 1:
        raise PreprocessError("empty image")
    size = params.size
    if params.fit == "crop":
        side = min(width, height)
        left, top = (width - side) // 2, (height - side) // 2
        square = image.resize(
            (size, size), Image.Resampling.BILINEAR, box=(left, top, left + side, top + side)
        )
    else:
        square = _letterbox(image, size, params.pad_value if mode == "L" else _grey(params))
    array = np.asarray(square, dtype=np.float32) / np.float32(255.0)
    return array.reshape(params.shape)


def _grey(params: ImageParams) -> tuple[int, int, int]:
    return (params.pad_value, params.pad_value, params.pad_value)


def _letterbox(image: Image.Image, size: int, fill: float | tuple[int, int, int]) -> Image.Image:
    """``image`` scaled so its longer side is ``size``, centred on a ``size``² canvas."""
    width, height = image.size
    scale = size / max(width, height)
    new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
    resized = image.resize((new_w, new_h), Image.Resampling.BILINEAR)
    canvas = Image.new(image.mode, (size, size), fill)
    canvas.paste(resized, ((size - new_w) // 2, (size - new_h) // 2))
    return canvas


# --- CT ----------------------------------------------------------------------------------


def hounsfield(data: bytes) -> np.ndarray[Any, np.dtype[np.float64]]:
    """The DICOM object's pixels in Hounsfield units (middle frame if multi-frame)."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        dataset = pydicom.dcmread(io.BytesIO(data))
    except (InvalidDicomError, OSError, ValueError, EOFError) as exc:
        raise PreprocessError(f"not a readable DICOM file: {exc}") from exc
    if "PixelData" not in dataset:
        raise PreprocessError("the DICOM object has no pixel data")
    if int(dataset.get("SamplesPerPixel", 1)) != 1:
        raise PreprocessError("a CT slice must have one sample per pixel")
    try:
        pixels = np.asarray(dataset.pixel_array)
    except (RuntimeError, ValueError, NotImplementedError, AttributeError) as exc:
        raise PreprocessError(f"cannot decode the DICOM pixel data: {exc}") from exc
    if pixels.ndim == 3:
        pixels = pixels[pixels.shape[0] // 2]
    if pixels.ndim != 2:
        raise PreprocessError(f"unexpected DICOM pixel array shape {pixels.shape}")
    slope = float(dataset.get("RescaleSlope", 1.0) or 1.0)
    intercept = float(dataset.get("RescaleIntercept", 0.0) or 0.0)
    return pixels.astype(np.float64) * slope + intercept


def ct_tensor(data: bytes, params: CtParams) -> FloatArray:
    """A CT slice as ``params.shape`` float32: the HU window mapped to [0, 1]."""
    hu = hounsfield(data)
    low = params.window_center - params.window_width / 2.0
    windowed = np.clip((hu - low) / params.window_width, 0.0, 1.0).astype(np.float32)
    image = _letterbox(Image.fromarray(windowed), params.size, 0.0)
    return np.asarray(image, dtype=np.float32).reshape(params.shape)


# --- EMR ---------------------------------------------------------------------------------


def field_key(name: str) -> str:
    """How field names are matched: lower case, runs of other characters → one ``_``."""
    return re.sub(r"[^0-9a-z]+", "_", name.strip().lower()).strip("_")


def field_number(value: Any) -> float | None:
    """A finite number from a JSON field value (number or numeric string), else None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def emr_values(fields: Mapping[str, Any], features: Sequence[str]) -> list[float | None]:
    """The raw value of each feature in ``fields`` (None where missing or not a number)."""
    lookup = {field_key(str(key)): value for key, value in fields.items()}
    return [field_number(lookup.get(field_key(name))) for name in features]


def emr_tensor(fields: Mapping[str, Any], params: EmrParams) -> FloatArray:
    """An EMR entry as ``(n_features,)`` float32: missing → training mean, standardised."""
    raw = emr_values(fields, params.features)
    missing = [name for name, value in zip(params.features, raw, strict=True) if value is None]
    if missing:
        _LOGGER.debug("EMR entry lacks %s of %s features", len(missing), len(raw))
    vector = [
        ((mean if value is None else value) - mean) / std
        for value, mean, std in zip(raw, params.mean, params.std, strict=True)
    ]
    return np.asarray(vector, dtype=np.float64).astype(np.float32)


def fit_emr_params(features: Sequence[str], entries: Iterable[Mapping[str, Any]]) -> EmrParams:
    """Mean and standard deviation of each feature over the training entries.

    Missing values are left out of both; a feature that never occurs gets mean 0 and
    std 1 (and a warning), a constant one std 1.
    """
    columns: list[list[float]] = [[] for _ in features]
    for entry in entries:
        for column, value in zip(columns, emr_values(entry, features), strict=True):
            if value is not None:
                column.append(value)
    means: list[float] = []
    stds: list[float] = []
    for name, column in zip(features, columns, strict=True):
        if not column:
            _LOGGER.warning("EMR feature %s never occurs in the training data", name)
            means.append(0.0)
            stds.append(1.0)
            continue
        values = np.asarray(column, dtype=np.float64)
        means.append(float(values.mean()))
        std = float(values.std())
        stds.append(std if std > 1e-12 else 1.0)
    return EmrParams(features=tuple(features), mean=tuple(means), std=tuple(stds))

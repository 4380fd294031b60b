"""DICOM: a strict parse of the header, the UIDs and the image size."""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from clinicam.i18n import _
from server.records.ingest.formats import Category, IngestError, IngestLimits, Inspected, _Format

_LOGGER = logging.getLogger(__name__)


# --- DICOM -------------------------------------------------------------------------------

_UID = re.compile(r"[0-9]+(\.[0-9]+)*")


def _inspect_dicom(path: Path, fmt: _Format, category: Category, limits: IngestLimits) -> Inspected:
    try:
        header = pydicom.dcmread(path, stop_before_pixels=True, force=False)
        metadata = _dicom_metadata(header, limits)
        _check_whole_dataset(pydicom.dcmread(path, force=False), metadata)
    except IngestError:
        raise
    except InvalidDicomError as exc:
        raise IngestError(422, _("not a valid DICOM file: {problem}", problem=str(exc))) from exc
    except Exception as exc:  # a hostile header makes pydicom raise all sorts of errors
        raise IngestError(
            422,
            _("not a valid DICOM file: its header cannot be read ({problem})", problem=str(exc)),
        ) from exc
    return Inspected(category, fmt.media_type, metadata, None)


def _check_whole_dataset(dataset: Dataset, metadata: dict[str, Any]) -> None:
    """Every element's value, and the pixel data decoded to the size the header gives.

    A wrong element length earlier in the file shifts everything after it: the pixel
    data is then missing or mis-sized, found here rather than when a viewer renders it.
    """
    for element in dataset.iterall():
        _value = element.value  # raw elements are converted here; a bad value raises
    if "PixelData" not in dataset:
        raise IngestError(
            422,
            _(
                "the DICOM file is damaged: its pixel data cannot be found (an element "
                "length before it is probably wrong)"
            ),
        )
    pixels = dataset.pixel_array
    frames = int(metadata["number_of_frames"])
    rows, columns = int(metadata["rows"]), int(metadata["columns"])
    expected = (rows, columns) if frames == 1 else (frames, rows, columns)
    if tuple(pixels.shape[: len(expected)]) != expected:
        raise IngestError(
            422,
            _(
                "the DICOM pixel data decodes to {shape}, not the {columns} × {rows} × "
                "{frames} the header gives",
                shape=str(pixels.shape),
                columns=columns,
                rows=rows,
                frames=frames,
            ),
        )


def _dicom_metadata(dataset: Dataset, limits: IngestLimits) -> dict[str, Any]:
    rows, columns = _dicom_int(dataset, "Rows"), _dicom_int(dataset, "Columns")
    if rows is None or columns is None or rows <= 0 or columns <= 0:
        raise IngestError(422, _("the DICOM file holds no image (Rows or Columns is missing)"))
    frames = _dicom_int(dataset, "NumberOfFrames") or 1
    if frames < 1 or rows * columns * frames > limits.max_dicom_pixels:
        raise IngestError(
            422,
            _(
                "the DICOM image is {columns} × {rows} pixels × {frames} frames, more than "
                "the limit of {limit} pixels",
                columns=columns,
                rows=rows,
                frames=frames,
                limit=f"{limits.max_dicom_pixels:,}",
            ),
        )
    return {
        "study_uid": _dicom_uid(dataset, "StudyInstanceUID"),
        "series_uid": _dicom_uid(dataset, "SeriesInstanceUID"),
        "instance_uid": _dicom_uid(dataset, "SOPInstanceUID"),
        "modality": str(dataset.get("Modality") or "").strip(),
        "patient_id": str(dataset.get("PatientID") or "").strip()[:64],
        "slice_position": _slice_position(dataset),
        "rows": rows,
        "columns": columns,
        "number_of_frames": frames,
    }


def _dicom_uid(dataset: Dataset, keyword: str) -> str:
    value = str(dataset.get(keyword) or "").strip().rstrip("\x00")
    if not value:
        raise IngestError(422, _("the DICOM file has no {keyword}", keyword=keyword))
    if len(value) > 64 or not _UID.fullmatch(value):
        raise IngestError(
            422,
            _(
                "the DICOM {keyword} {value} is not a valid UID",
                keyword=keyword,
                value=repr(value[:70]),
            ),
        )
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

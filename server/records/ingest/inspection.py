"""Recognise, validate and clean one upload: the dispatch by content family."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from clinicam.i18n import _
from server.records.ingest.audio import _inspect_container_audio, _inspect_wav
from server.records.ingest.dicom import _inspect_dicom
from server.records.ingest.formats import (
    _SNIFF_BYTES,
    DEFAULT_LIMITS,
    Category,
    IngestError,
    IngestLimits,
    Inspected,
    _category_for,
    _Family,
    _Format,
    _sniff,
    _unrecognised,
)
from server.records.ingest.images import _inspect_image
from server.records.ingest.pdf import _inspect_pdf

_LOGGER = logging.getLogger(__name__)


def inspect_upload(
    path: Path, declared: Category | None, limits: IngestLimits = DEFAULT_LIMITS
) -> Inspected:
    """Recognise, validate and clean the upload at ``path``; :class:`IngestError` if refused.

    ``declared`` is the category the user chose, or None to let the content decide.
    """
    if path.stat().st_size == 0:
        raise IngestError(422, _("the file is empty"))
    with path.open("rb") as fh:
        head = fh.read(_SNIFF_BYTES)
    fmt = _sniff(head)
    if fmt is None:
        raise _unrecognised(head, declared)
    category = _category_for(fmt, declared)
    inspected = _INSPECTORS[fmt.family](path, fmt, category, limits)
    _LOGGER.info("upload recognised as %s (%s) filed as %s", fmt.label, fmt.media_type, category)
    return inspected


_INSPECTORS: dict[_Family, Callable[[Path, _Format, Category, IngestLimits], Inspected]] = {
    _Family.IMAGE: _inspect_image,
    _Family.PDF: _inspect_pdf,
    _Family.DICOM: _inspect_dicom,
    _Family.WAV: _inspect_wav,
    _Family.AUDIO: _inspect_container_audio,
}

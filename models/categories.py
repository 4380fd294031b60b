"""The five record categories the relevance model has a branch for (R8, R13).

The names are the record categories the server stores (``server.records.ingest``)
plus ``emr_entry``; they are also the names of the model's signatures in the
``.tflite`` file, so a stored record's category selects its branch directly. Each
branch has one input, named for what it holds, and one output, ``probabilities``.
"""

from __future__ import annotations

from typing import Final

CLINICAL_PHOTO: Final = "clinical_photo"
RECORD_SCAN: Final = "record_scan"
CT_IMAGE: Final = "ct_image"
VOICE_NOTE: Final = "voice_note"
EMR_ENTRY: Final = "emr_entry"

CATEGORIES: Final[tuple[str, ...]] = (CLINICAL_PHOTO, RECORD_SCAN, CT_IMAGE, VOICE_NOTE, EMR_ENTRY)

# Categories whose records are files (bytes); EMR entries are JSON field dicts.
FILE_CATEGORIES: Final[tuple[str, ...]] = (CLINICAL_PHOTO, RECORD_SCAN, CT_IMAGE, VOICE_NOTE)

INPUT_NAMES: Final[dict[str, str]] = {
    CLINICAL_PHOTO: "image",
    RECORD_SCAN: "image",
    CT_IMAGE: "image",
    VOICE_NOTE: "spectrogram",
    EMR_ENTRY: "features",
}

OUTPUT_NAME: Final = "probabilities"


def check_category(category: str) -> str:
    """``category`` if it is one of :data:`CATEGORIES`, else a ValueError naming them."""
    if category not in CATEGORIES:
        raise ValueError(f"unknown data category {category!r}; expected one of {CATEGORIES}")
    return category

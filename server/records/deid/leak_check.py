"""The after-the-fact check that no identifier survived in an exported blob."""

from __future__ import annotations

import logging
from collections.abc import Iterable

_LOGGER = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------
# Leak check
# --------------------------------------------------------------------------------------


def _needle_variants(needle: str) -> set[str]:
    """The needle, and for person names the DICOM (``Last^First``) and list forms."""
    variants = {needle}
    if "^" in needle:
        parts = [p for p in needle.split("^") if p]
        if len(parts) >= 2:
            variants.add(" ".join([*parts[1:], parts[0]]))
    words = needle.split()
    if len(words) >= 2:
        variants.add("^".join([words[-1], *words[:-1]]))
        variants.add(f"{words[-1]}, {' '.join(words[:-1])}")
    return {v.casefold() for v in variants}


def _decodings(blob: bytes) -> list[str]:
    """The blob read as UTF-8, Latin-1 and UTF-16-LE at both alignments, case-folded."""
    texts = [
        blob.decode("utf-8", errors="replace"),
        blob.decode("latin-1"),
        blob.decode("utf-16-le", errors="replace"),
        blob[1:].decode("utf-16-le", errors="replace"),
    ]
    return [t.casefold() for t in texts]


def scan_for_identifiers(blob: bytes, needles: Iterable[str]) -> list[str]:
    """Which of ``needles`` occur in ``blob`` (case-insensitive, several encodings).

    A person name given as ``First Last`` is also looked for as ``Last^First`` (DICOM
    PN) and ``Last, First``; one given as ``Last^First`` also as ``First Last``.
    """
    texts = _decodings(blob)
    found: list[str] = []
    for needle in needles:
        if not needle.strip() or needle in found:
            continue
        if any(v in text for v in _needle_variants(needle) for text in texts):
            found.append(needle)
    return found

"""PDF documents: truncation check, active content refused, page count.

A PDF is stored as uploaded, so what could act when it is opened is refused instead:
JavaScript, launch and submit actions, embedded files, rich media, XFA forms (their
names found in the file and in its compressed object streams, ``#xx`` escapes decoded)
and HTML markup, which makes a PDF/HTML polyglot that a browser might run as a page.
Content before the ``%PDF-`` header is never recognised as a PDF in the first place.
"""

from __future__ import annotations

import logging
import mmap
import re
import zlib
from pathlib import Path

from clinicam.i18n import _
from server.records.ingest.formats import (
    Category,
    IngestError,
    IngestLimits,
    Inspected,
    _Format,
    _mapped,
)

_LOGGER = logging.getLogger(__name__)


# --- PDF ---------------------------------------------------------------------------------

_PDF_PAGE = re.compile(rb"/Type\s*/Page(?![^\s/<>\[\]()%{}])")
_PDF_OBJECT_STREAM = re.compile(rb"/Type\s*/ObjStm(?![^\s/<>\[\]()%{}])")
_MAX_PDF_PAGES_COUNTED = 10_000
_MAX_OBJECT_STREAM_BYTES = 4 << 20
_MAX_INFLATED_BYTES = 32 << 20


def _inspect_pdf(path: Path, fmt: _Format, category: Category, limits: IngestLimits) -> Inspected:
    with _mapped(path) as data:
        if b"%%EOF" not in data[-1024:]:
            raise IngestError(422, _("the PDF document is truncated (no %%EOF marker at its end)"))
        _refuse_active_content(data)
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
    for _match in pattern.finditer(data):
        count += 1
        if count >= _MAX_PDF_PAGES_COUNTED:
            break
    return count


def _count_pages_in_object_streams(data: mmap.mmap) -> int:
    count = sum(_count_matches(_PDF_PAGE, inflated) for inflated in _inflated_object_streams(data))
    return min(count, _MAX_PDF_PAGES_COUNTED)


_PDF_NAME = re.compile(rb"/((?:[A-Za-z0-9_.+-]|#[0-9A-Fa-f]{2})+)")
_PDF_NAME_ESCAPE = re.compile(rb"#([0-9A-Fa-f]{2})")
_ACTIVE_NAMES = frozenset(
    {
        b"JavaScript",
        b"JS",
        b"Launch",
        b"EmbeddedFile",
        b"EmbeddedFiles",
        b"RichMedia",
        b"XFA",
        b"SubmitForm",
        b"ImportData",
        b"GoToE",
    }
)
_HTML_MARKUP = re.compile(
    rb"<\s*(?:!doctype|html|head|body|script|iframe|object|embed|svg|meta|form|img|a\s)",
    re.IGNORECASE,
)


def _refuse_active_content(data: mmap.mmap) -> None:
    markup = _HTML_MARKUP.search(data)
    if markup is not None:
        raise IngestError(
            422,
            _(
                "the PDF document contains HTML markup (at byte {pos}); a file that "
                "is both a PDF and a web page is refused",
                pos=markup.start(),
            ),
        )
    chunks: list[mmap.mmap | bytes] = [data, *_inflated_object_streams(data)]
    for chunk in chunks:
        for found in _PDF_NAME.finditer(chunk):
            name = _PDF_NAME_ESCAPE.sub(lambda m: bytes((int(m.group(1), 16),)), found.group(1))
            if name in _ACTIVE_NAMES:
                raise IngestError(
                    422,
                    _(
                        "the PDF document contains active content (/{name}: scripts, actions "
                        "or embedded files are refused); print it to a plain PDF or scan it "
                        "instead",
                        name=name.decode("latin-1"),
                    ),
                )


def _inflated_object_streams(data: mmap.mmap) -> list[bytes]:
    """The compressed object streams, inflated within the same budget as page counting."""
    out: list[bytes] = []
    budget = _MAX_INFLATED_BYTES
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
        out.append(inflated)
    return out

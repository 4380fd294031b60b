"""Serving a stored blob over HTTP as a stream, with byte ranges (audio seeking).

The content is read through :meth:`server.records.blobs.BlobStore.open`, never from a
file path, so it is served the same way from any blob store.
"""

from __future__ import annotations

import asyncio
from http import HTTPStatus
from typing import BinaryIO

from aiohttp import web

from server.records.service import RecordContent

CHUNK_BYTES = 256 * 1024


def _range(request: web.Request, size: int) -> tuple[int, int] | None:
    """(start, end exclusive) of a satisfiable single ``Range``; None for the whole file.

    A malformed or unsatisfiable range is answered 416, as aiohttp's file response does.
    """
    if "Range" not in request.headers:
        return None
    unsatisfiable = web.HTTPRequestRangeNotSatisfiable(headers={"Content-Range": f"bytes */{size}"})
    try:
        wanted = request.http_range
    except ValueError:
        raise unsatisfiable from None
    start, stop = wanted.start, wanted.stop
    if start is None and stop is None:
        return None
    if start is None:  # a suffix: the last -stop bytes (aiohttp gives it as a negative start)
        start, stop = max(size + (stop or 0), 0), size
    elif start < 0:
        start, stop = max(size + start, 0), size
    stop = size if stop is None else min(stop, size)
    if start >= size or start >= stop:
        raise unsatisfiable
    return start, stop


async def stream_content(
    request: web.Request, content: RecordContent, headers: dict[str, str]
) -> web.StreamResponse:
    """Send ``content`` (whole, or the asked-for range) in chunks, off the event loop."""
    part = _range(request, content.size)
    start, stop = part if part is not None else (0, content.size)
    response = web.StreamResponse(
        status=HTTPStatus.PARTIAL_CONTENT if part is not None else HTTPStatus.OK,
        headers={**headers, "Accept-Ranges": "bytes"},
    )
    response.content_type = content.media_type
    response.content_length = stop - start
    if part is not None:
        response.headers["Content-Range"] = f"bytes {start}-{stop - 1}/{content.size}"
    stream: BinaryIO = await asyncio.to_thread(content.open)
    try:
        await response.prepare(request)
        if request.method == "HEAD":
            return response
        if start:
            await asyncio.to_thread(stream.seek, start)
        left = stop - start
        while left > 0:
            chunk = await asyncio.to_thread(stream.read, min(CHUNK_BYTES, left))
            if not chunk:
                break
            await response.write(chunk)
            left -= len(chunk)
        await response.write_eof()
    finally:
        await asyncio.to_thread(stream.close)
    return response

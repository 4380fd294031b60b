"""A record's file is served as a stream from the blob store, with byte ranges."""

from __future__ import annotations

import io
from http import HTTPStatus

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from server.records.service import RecordContent
from server.web.blob_response import stream_content

DATA = bytes(range(256)) * 40  # 10,240 bytes


async def _client() -> TestClient[web.Request, web.Application]:
    async def serve(request: web.Request) -> web.StreamResponse:
        content = RecordContent(
            media_type="audio/wav",
            filename="voice_note-1.wav",
            inline=False,
            size=len(DATA),
            open=lambda: io.BytesIO(DATA),
        )
        return await stream_content(request, content, {"X-Content-Type-Options": "nosniff"})

    app = web.Application()
    app.router.add_get("/content", serve)
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


async def test_the_whole_file_with_its_type_and_length() -> None:
    client = await _client()
    try:
        resp = await client.get("/content")
        assert resp.status == HTTPStatus.OK
        assert resp.headers["Content-Type"] == "audio/wav"
        assert resp.headers["Content-Length"] == str(len(DATA))
        assert resp.headers["Accept-Ranges"] == "bytes"
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert await resp.read() == DATA
    finally:
        await client.close()


async def test_ranges_answer_206_with_just_those_bytes() -> None:
    client = await _client()
    try:
        for header, part, first, last in (
            ("bytes=100-199", DATA[100:200], 100, 199),
            ("bytes=10000-", DATA[10000:], 10000, len(DATA) - 1),
            ("bytes=-40", DATA[-40:], len(DATA) - 40, len(DATA) - 1),
        ):
            resp = await client.get("/content", headers={"Range": header})
            assert resp.status == HTTPStatus.PARTIAL_CONTENT, header
            assert resp.headers["Content-Range"] == f"bytes {first}-{last}/{len(DATA)}"
            assert await resp.read() == part
    finally:
        await client.close()


async def test_a_range_past_the_end_is_416() -> None:
    client = await _client()
    try:
        resp = await client.get("/content", headers={"Range": "bytes=20000-20100"})
        assert resp.status == HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE
        assert resp.headers["Content-Range"] == f"bytes */{len(DATA)}"
    finally:
        await client.close()

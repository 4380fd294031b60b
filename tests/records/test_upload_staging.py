"""Cut-off uploads leave no staging file behind (issue 15, class 10).

A real socket sends half a body and then goes away (closed) or goes silent (a link
that drops without a FIN): the staging file goes promptly. What a crash leaves behind
is swept within minutes, not hours.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from server.records import staging
from server.records.models import ClinicalPhoto
from tests.records.api_helpers import Site, User, count_rows, records_config, running_site


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    config = records_config(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}", max_upload_mb=8)
    async with running_site(config) as running:
        yield running


async def _start_upload(
    site: Site, user: User, token: str
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A raw HTTP upload that has sent 300 kB of a declared 4 MB body."""
    pid = site.patient_ids()["P-1"]
    cookies = "; ".join(f"{c.key}={c.value}" for c in user.http.cookie_jar)
    reader, writer = await asyncio.open_connection(site.server.host, site.server.port)
    head = (
        f"POST /api/patients/{pid}/records HTTP/1.1\r\nHost: clinicam\r\n"
        f"Cookie: {cookies}\r\nX-CSRF-Token: {user.csrf}\r\nX-Clinicam-Access: {token}\r\n"
        "Content-Length: 4000000\r\n\r\n"
    )
    writer.write(head.encode() + b"\xff\xd8" + b"x" * 300_000)
    await writer.drain()
    return reader, writer


async def _staged(site: Site) -> list[Path]:
    folder = site.state_dir / staging.STAGING_FOLDER
    return sorted(folder.iterdir()) if folder.is_dir() else []


async def _wait_until_empty(site: Site, seconds: float) -> list[Path]:
    deadline = time.monotonic() + seconds
    while (left := await _staged(site)) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    return left


async def test_a_closed_upload_leaves_nothing(site: Site) -> None:
    alice = await site.user("alice")
    token = (await alice.access("P-1", ("view", "edit")))["token"]
    _reader, writer = await _start_upload(site, alice, token)
    deadline = time.monotonic() + 5
    while not await _staged(site) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert len(await _staged(site)) == 1  # the body is being staged
    writer.transport.abort()  # the client dies mid-body
    assert await _wait_until_empty(site, 5) == []
    assert count_rows(site.database, ClinicalPhoto) == 0


async def test_a_stalled_upload_is_given_up_and_its_file_removed(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(staging, "UPLOAD_IDLE_S", 1.0)  # the server's patience, shortened
    alice = await site.user("alice")
    token = (await alice.access("P-1", ("view", "edit")))["token"]
    reader, writer = await _start_upload(site, alice, token)  # ... and then silence
    try:
        answer = await asyncio.wait_for(reader.read(4096), timeout=10)
        assert answer.startswith(b"HTTP/1.1 408"), answer[:80]
        assert await _wait_until_empty(site, 5) == []
    finally:
        writer.close()
    assert count_rows(site.database, ClinicalPhoto) == 0


def test_the_sweeper_removes_leftovers_within_minutes(tmp_path: Path) -> None:
    folder = tmp_path / "staging"
    incoming = tmp_path / "archive" / "cam-1" / "incoming"
    folder.mkdir()
    incoming.mkdir(parents=True)
    now = time.time()
    ages = {
        folder / "upload-crashed": 20 * 60,  # a crash 20 minutes ago
        folder / "upload-live": 5,  # being written right now
        folder / "replay-playing.mp4": 20 * 60,  # a replay the media hub is playing
        incoming / "tmpabc.upload": 20 * 60,  # a back-fill cut off by a crash
    }
    for path, age in ages.items():
        path.write_bytes(b"x")
        os.utime(path, (now - age, now - age))
    folders = staging.staging_folders(tmp_path, tmp_path / "archive")
    assert staging.sweep(folders, staging.LEFTOVER_S) == 2
    left = sorted(p.name for p in [*folder.iterdir(), *incoming.iterdir()])
    assert left == ["replay-playing.mp4", "upload-live"]

"""Archive API on a real server: index, a range as MP4, replay while the appliance is away,
retention, and deleting a patient's data (rows and files)."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import av
import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy import select

from server.app import build_app
from server.archive.index import ArchiveSegment
from server.records.models import Patient
from server.state import STATE, ServerState
from tests.archive import encode_clip, write_archive
from tests.records.api_helpers import (
    Site,
    audit_actions,
    count_rows,
    open_user,
    records_config,
    running_site,
)


@pytest.fixture
async def site(tmp_path: Path, database_url: str) -> AsyncIterator[Site]:
    async with running_site(records_config(tmp_path, database_url)) as running:
        yield running


def _index(state: ServerState, start: datetime) -> tuple[int, list[Any]]:
    """30 s of H.264 written by the real segment writer and indexed like the recorder does."""
    root = state.archive.root
    segments = write_archive(root / "cam-1", encode_clip(30.0), start=start)
    with state.database.session() as session, session.begin():
        patient = session.scalar(select(Patient).where(Patient.external_id == "P-1"))
        assert patient is not None
        for info in segments:
            session.add(
                ArchiveSegment(
                    patient_id=patient.id,
                    consultation_id="c1",
                    device_id="cam-1",
                    start_utc=info.start_utc,
                    end_utc=info.end_utc,
                    path=str(info.path.relative_to(root)),
                    size=info.size,
                    frames=info.frames,
                )
            )
        return patient.id, segments


async def test_index_range_and_grants(site: Site) -> None:
    start = datetime(2026, 11, 24, 9, 0, tzinfo=datetime.now().astimezone().tzinfo).astimezone()
    pid, segments = _index(site.state, start)
    alice, carol = await site.user("alice"), await site.user("carol")
    await alice.access("P-1")
    resp = await alice.request("GET", f"/api/patients/{pid}/archive")
    index = await resp.json()
    assert resp.status == 200 and len(index["segments"]) == len(segments) == 3
    assert len(index["ranges"]) == 1  # contiguous segments are one run
    begin = segments[0].start_utc + timedelta(seconds=12)
    query = {"start": begin.isoformat(), "end": (begin + timedelta(seconds=8)).isoformat()}
    resp = await alice.request("GET", f"/api/patients/{pid}/archive/video", params=query)
    assert resp.status == 200 and resp.content_type == "video/mp4"
    with av.open(io.BytesIO(await resp.read())) as mp4:
        frames = list(mp4.decode(video=0))
    assert frames[0].key_frame and 8 * 25 <= len(frames) <= 10 * 25
    assert "archive.read" in audit_actions(site.state.database, "alice")
    # No grant: nothing, not even the index.
    for path in ("/archive", "/archive/video"):
        resp = await carol.request("GET", f"/api/patients/{pid}{path}", params=query)
        assert resp.status == 404
    # Bad input is a clear 400.
    bad = {"start": "yesterday", "end": query["end"]}
    resp = await alice.request("GET", f"/api/patients/{pid}/archive/video", params=bad)
    assert resp.status == 400 and "ISO 8601" in (await resp.json())["error"]
    late = {"start": query["end"], "end": query["start"]}
    resp = await alice.request("GET", f"/api/patients/{pid}/archive/video", params=late)
    assert resp.status == 400


async def test_replay_in_the_live_window_while_the_appliance_is_away(site: Site) -> None:
    pid, segments = _index(site.state, datetime.now().astimezone() - timedelta(minutes=5))
    alice = await site.user("alice")
    await alice.access("P-1")
    feed = site.state.media.feeds["cam-1"]
    before = feed.frames_received
    body = {
        "consultation": "c1",
        "start": (segments[0].start_utc + timedelta(seconds=1)).isoformat(),
        "end": (segments[0].start_utc + timedelta(seconds=20)).isoformat(),
    }
    resp = await alice.request("POST", f"/api/patients/{pid}/archive/replay", json=body)
    assert resp.status == 200, await resp.text()
    for _ in range(100):
        if feed.frames_received >= before + 10:
            break
        await asyncio.sleep(0.05)
    assert feed.frames_received >= before + 10  # the archive plays in the live window
    room = site.state.rooms.get(site.state.config.consultations[0])
    assert "archive" in room.labels()["live"]
    assert "archive.replay" in audit_actions(site.state.database, "alice")


async def test_retention_and_patient_deletion_remove_rows_and_files(site: Site) -> None:
    old = datetime.now().astimezone() - timedelta(days=400)
    pid, segments = _index(site.state, old)
    assert all(s.path.exists() for s in segments)
    assert site.state.archive.apply_retention() == 3
    assert not any(s.path.exists() for s in segments)
    assert count_rows(site.state.database, ArchiveSegment) == 0

    pid, segments = _index(site.state, datetime.now().astimezone())
    root = await site.user("root")
    resp = await root.request(
        "POST",
        "/api/break-glass",
        json={"patient": "P-1", "reason": "patient asked for erasure, ticket 42"},
    )
    assert resp.status == 201
    photo = await root.request("POST", f"/api/patients/{pid}/records", data=_png())
    assert photo.status == 201
    sha = (await photo.json())["sha256"]
    # On an object store (CLINICAM_TEST_BLOBS=s3) the segments move there: theirs go too.
    site.state.archive.tidy_store()
    with site.state.database.session() as session:
        stored = {sha for sha in session.scalars(select(ArchiveSegment.blob_sha256)) if sha}
    resp = await root.request("DELETE", f"/api/patients/{pid}/data")
    assert resp.status == 200 and (await resp.json())["blobs_removed"] == 1 + len(stored)
    assert not any(s.path.exists() for s in segments)
    assert not list((site.state.config.state_dir / "blobs").rglob(sha))
    assert count_rows(site.state.database, ArchiveSegment) == 0
    with site.state.database.session() as session:
        assert session.scalar(select(Patient).where(Patient.external_id == "P-1")) is None
    assert "patient.deleted" in audit_actions(site.state.database, "root")


def _png() -> bytes:
    from tests.records.api_helpers import png_bytes

    return png_bytes(32, 32, (1, 2, 3))


async def test_watermarked_playback_names_the_viewer(tmp_path: Path) -> None:
    config = records_config(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}").model_copy(
        update={"watermark": True}
    )
    app = build_app(config, asyncio.get_running_loop())
    server = TestServer(app)
    await server.start_server()
    try:
        state = app[STATE]
        pid, segments = _index(state, datetime.now().astimezone() - timedelta(hours=1))
        alice = await open_user(server, "alice")
        await alice.access("P-1")
        begin = segments[0].start_utc
        query = {"start": begin.isoformat(), "end": (begin + timedelta(seconds=2)).isoformat()}
        resp = await alice.request("GET", f"/api/patients/{pid}/archive/video", params=query)
        assert resp.status == 200
        with av.open(io.BytesIO(await resp.read())) as mp4:
            marked = next(iter(mp4.decode(video=0))).to_ndarray(format="gray").astype(int)
        with av.open(str(segments[0].path)) as ts:
            original = next(iter(ts.decode(video=0))).to_ndarray(format="gray").astype(int)
        difference = marked - original
        assert difference.max() > 40  # the viewer's name is burnt in
        assert abs(difference.mean()) < 10  # and the picture is otherwise the same
        await alice.http.close()
    finally:
        await server.close()

"""Archive segments on a real S3 store (SeaweedFS): filed there, read back, kept from the
orphan collector, moved later when the store was away, and deleted by retention and erasure."""

from __future__ import annotations

import io
import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import av
import pytest
from sqlalchemy import select

from clinicam.segments import SegmentInfo
from server.archive.index import ArchiveSegment
from server.config import ServerConfig
from server.records.blob_stores import open_blob_store
from server.records.models import Patient
from server.state import ServerState
from tests.archive import encode_clip, write_archive
from tests.records.api_helpers import Site, count_rows, records_config, running_site
from tests.seaweed import SeaweedS3


def _site_config(tmp_path: Path, seaweed: SeaweedS3, **blobs: object) -> ServerConfig:
    config = records_config(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}")
    store = seaweed.config(seaweed.new_prefix(), cache_mb=0, **blobs)
    return config.model_copy(update={"blobs": store})


@pytest.fixture
async def site(tmp_path: Path, seaweed: SeaweedS3) -> AsyncIterator[Site]:
    async with running_site(_site_config(tmp_path, seaweed)) as running:
        yield running


async def _record(state: ServerState, start: datetime) -> list[SegmentInfo]:
    """30 s of H.264 from the real segment writer, filed as the live recorder files it."""
    segments = write_archive(state.archive.root / "cam-1", encode_clip(30.0), start=start)
    for info in segments:
        await state.archive.index_segment("cam-1", info)
    return segments


def _rows(state: ServerState) -> list[tuple[str, str | None]]:
    with state.database.session() as session:
        query = select(ArchiveSegment.path, ArchiveSegment.blob_sha256).order_by(
            ArchiveSegment.start_utc
        )
        return [(path, sha) for path, sha in session.execute(query)]


async def test_segments_go_to_the_store_and_a_range_reads_them_back(site: Site) -> None:
    state = site.state
    segments = await _record(state, datetime.now().astimezone() - timedelta(minutes=5))
    rows = _rows(state)
    assert len(rows) == 3 and all(sha for _path, sha in rows)
    assert not any(s.path.exists() for s in segments)  # the store's copy is the only one
    blobs = state.records.blobs
    assert all(blobs.exists(sha) for _path, sha in rows if sha)
    # The orphan collector keeps them (they are referenced by the archive's rows).
    assert state.records.collect_orphans(0.0) == []
    assert all(blobs.exists(sha) for _path, sha in rows if sha)

    alice = await site.user("alice")
    granted = await alice.access("P-1")
    begin = segments[0].start_utc + timedelta(seconds=12)
    query = {"start": begin.isoformat(), "end": (begin + timedelta(seconds=8)).isoformat()}
    resp = await alice.request(
        "GET", f"/api/patients/{granted['patient_id']}/archive/video", params=query
    )
    assert resp.status == 200, await resp.text()
    with av.open(io.BytesIO(await resp.read())) as mp4:
        frames = list(mp4.decode(video=0))
    assert frames[0].key_frame and 8 * 25 <= len(frames) <= 10 * 25
    fetched = [state.archive.root / path for path, _sha in rows]
    assert any(p.exists() for p in fetched)  # read back into the archive folder
    # Fetched copies go once unused for an hour; the store's copies stay.
    assert state.archive.blobs is not None
    later = time.time() + 2 * 3600
    assert state.archive.blobs.drop_fetched(rows, now=later) >= 1
    assert not any(p.exists() for p in fetched)
    assert all(blobs.exists(sha) for _path, sha in rows if sha)


async def test_retention_and_erasure_delete_the_stored_segments(site: Site) -> None:
    state = site.state
    await _record(state, datetime.now().astimezone() - timedelta(days=400))
    old = [sha for _path, sha in _rows(state) if sha]
    assert len(old) == 3
    assert state.archive.apply_retention() == 3
    assert count_rows(state.database, ArchiveSegment) == 0
    assert not any(state.records.blobs.exists(sha) for sha in old)

    await _record(state, datetime.now().astimezone())
    kept = [sha for _path, sha in _rows(state) if sha]
    root = await site.user("root")
    resp = await root.request(
        "POST",
        "/api/break-glass",
        json={"patient": "P-1", "reason": "patient asked for erasure, ticket 43"},
    )
    assert resp.status == 201
    resp = await root.request("DELETE", f"/api/patients/{_patient_id(state)}/data")
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["blobs_removed"] == 3
    assert not any(state.records.blobs.exists(sha) for sha in kept)


def _patient_id(state: ServerState) -> int:
    with state.database.session() as session:
        found = session.scalar(select(Patient.id).where(Patient.external_id == "P-1"))
    assert found is not None
    return found


async def test_a_store_that_is_away_keeps_the_segments_on_disk_until_it_is_back(
    tmp_path: Path, seaweed: SeaweedS3
) -> None:
    away = _site_config(tmp_path, seaweed, endpoint_url="http://127.0.0.1:9")
    async with running_site(away) as site:
        state = site.state
        segments = await _record(state, datetime.now().astimezone() - timedelta(minutes=5))
        assert [sha for _path, sha in _rows(state)] == [None, None, None]
        assert all(s.path.exists() for s in segments)  # nothing lost
        assert state.archive.blobs is not None
        assert state.archive.blobs.offload_pending(state.database) == 0  # still away
        # The store answers again (the same bucket and prefix, now reachable).
        back = seaweed.config(state.config.blobs.prefix, cache_mb=0)
        state.archive.blobs.blobs = open_blob_store(back, state.config.state_dir)
        state.archive.tidy_store()
        rows = _rows(state)
        assert all(sha for _path, sha in rows)
        assert not any(s.path.exists() for s in segments)
        assert all(state.archive.blobs.blobs.exists(sha) for _path, sha in rows if sha)

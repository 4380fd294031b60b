"""Back-fill (R17) against a real server and database: the appliance's local recording
fills the hole an outage left in the archive, once, and the archive plays through it.

The live archive holds 0–20 s and 30–60 s of a numbered clip (the outage is 20–30 s);
the appliance recorded all 60 s locally. After one back-fill check the archive covers
the whole minute, a time-range export shows every frame once in order, and a second
check sends nothing. Malformed uploads are refused and change nothing."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import av
import pytest
from sqlalchemy import select

from clinicam.segments import SegmentInfo
from firmware.config import RecorderConfig, ServerLinkConfig
from firmware.media.backfill import BackFiller
from firmware.media.encoders import EncodedFrame
from firmware.media.recorder import LocalRecorder
from server.archive.index import ArchiveSegment
from server.archive.range import remux_range
from tests.archive import FPS, encode_clip, read_frame_index, write_archive
from tests.records.api_helpers import PASSWORD, Site, audit_actions, records_config, running_site

DEVICE = "cam-1"
BASE_UTC = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)  # within max age


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    config = records_config(tmp_path / "server", f"sqlite:///{tmp_path / 'db.sqlite'}")
    async with running_site(config) as running:
        yield running


def _index_live(site: Site, segments: list[SegmentInfo]) -> None:
    """What the server archived while the link was up."""
    pid = site.patient_ids()["P-1"]
    with site.database.session() as session, session.begin():
        for info in segments:
            session.add(
                ArchiveSegment(
                    patient_id=pid,
                    consultation_id="c1",
                    device_id=DEVICE,
                    start_utc=info.start_utc,
                    end_utc=info.end_utc,
                    path=str(info.path.relative_to(site.state.archive.root)),
                    size=info.size,
                    frames=info.frames,
                )
            )


def _local_recording(folder: Path, units: list[bytes]) -> LocalRecorder:
    recorder = LocalRecorder(folder, RecorderConfig(max_mb=64, max_age_min=60))
    for index, unit in enumerate(units):
        wall = (BASE_UTC + timedelta(seconds=index / FPS)).timestamp()
        recorder.put_waiting(EncodedFrame(av.Packet(unit), 0, 0, wall))
    recorder.close()
    return recorder


def _filler(
    site: Site, recorder: LocalRecorder, live_kbps: Callable[[], float | None] = lambda: None
) -> BackFiller:
    import asyncio

    server = ServerLinkConfig(url=str(site.server.make_url("")).rstrip("/"), token=PASSWORD)
    connected = asyncio.Event()
    connected.set()
    return BackFiller(server, DEVICE, recorder, RecorderConfig(), connected, live_kbps)


async def test_the_outage_is_back_filled_once_and_plays_through(site: Site, tmp_path: Path) -> None:
    units = encode_clip(60)
    live_folder = site.state.archive.root / DEVICE
    live = write_archive(live_folder, units, frames=range(0, 20 * FPS), start=BASE_UTC)
    live += write_archive(live_folder, units, frames=range(30 * FPS, 60 * FPS), start=BASE_UTC)
    _index_live(site, live)
    recorder = _local_recording(tmp_path / "recording", units)
    assert len(recorder.segments()) == 6
    filler = _filler(site, recorder)
    async with aiohttp.ClientSession() as http:
        sent = await filler.check(http)
        assert sent == 1 and filler.uploaded == 1, "only the 20–30 s segment was missing"
        assert await filler.check(http) == 0, "a second check sends nothing"
        filler._done.clear()  # as after a restart: the server says what it already has
        assert await filler.check(http) == 0
    spans = site.state.archive.device_spans(DEVICE, BASE_UTC, BASE_UTC + timedelta(minutes=1))
    assert len(spans) == len(live) + 1
    assert audit_actions(site.database, DEVICE).count("archive.backfilled") == 1

    with site.database.session() as session:
        rows = session.scalars(select(ArchiveSegment).order_by(ArchiveSegment.start_utc)).all()
    infos = [
        SegmentInfo(site.state.archive.root / r.path, r.start_utc, r.end_utc, r.frames, 0, r.size)
        for r in rows
    ]
    out = tmp_path / "range.mp4"
    remux_range(infos, BASE_UTC + timedelta(seconds=15), BASE_UTC + timedelta(seconds=35), out)
    with av.open(str(out)) as played:
        seen = [read_frame_index(f) for f in played.decode(video=0)]
    assert seen == list(range(seen[0], seen[-1] + 1)), "every frame once, in order: no hole"
    assert seen[0] <= 15 * FPS and seen[-1] >= 35 * FPS - 2


async def test_bad_back_fill_uploads_change_nothing(site: Site, tmp_path: Path) -> None:
    units = encode_clip(12)
    recorder = _local_recording(tmp_path / "recording", units)
    good = recorder.segments()[0].path.read_bytes()
    url = str(site.server.make_url(f"/api/appliances/{DEVICE}/archive/segments"))
    start = BASE_UTC.isoformat()
    device = {"Authorization": f"Bearer {PASSWORD}"}
    out = io.BytesIO()
    with av.open(out, "w", format="mpegts") as container:  # audio only: not a camera segment
        stream = container.add_stream("mp2", rate=48000)
        frame = av.AudioFrame(format="s16", layout="stereo", samples=1152)
        frame.sample_rate = 48000
        for plane in frame.planes:
            plane.update(bytes(plane.buffer_size))
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    cases = [
        ({"start": start}, b"garbage" * 1000, device, 422),
        ({"start": start}, out.getvalue(), device, 422),
        ({"start": start}, good[: 188 * 3], device, 422),
        ({"start": "2999-01-01T00:00:00+00:00"}, good, device, 422),
        ({"start": "yesterday"}, good, device, 400),
        ({"start": start}, good, {"Authorization": "Bearer wrong"}, 401),
    ]
    async with aiohttp.ClientSession() as http:
        for params, data, headers, status in cases:
            async with http.post(url, params=params, data=data, headers=headers) as resp:
                assert resp.status == status, (params, await resp.text())
        async with http.post(url, params={"start": start}, data=good, headers=device) as resp:
            assert resp.status == 201, await resp.text()
    assert len(site.state.archive.device_spans(DEVICE, BASE_UTC, BASE_UTC + timedelta(1))) == 1
    assert audit_actions(site.database, DEVICE).count("archive.backfilled") == 1
    leftovers = list((site.state.archive.root / DEVICE / "incoming").iterdir())
    assert leftovers == [], "no upload is left behind"


def test_the_pace_is_a_share_of_the_live_stream_with_a_floor(tmp_path: Path) -> None:
    import asyncio

    from firmware.media.backfill import MIN_KBPS, SHARE

    server = ServerLinkConfig(url="http://127.0.0.1:9", token=PASSWORD)
    allowed: list[float | None] = [1000.0]
    recorder = LocalRecorder(tmp_path / "recording", RecorderConfig())
    config = RecorderConfig()
    filler = BackFiller(server, DEVICE, recorder, config, asyncio.Event(), lambda: allowed[0])
    assert filler.pace_kbps() == SHARE * 1000.0
    allowed[0] = 10.0
    assert filler.pace_kbps() == MIN_KBPS, "never stalls completely"
    allowed[0] = None
    assert filler.pace_kbps() is None, "a fixed stream: TCP's own pace"


async def test_a_paced_back_fill_leaves_the_link_to_the_live_call(
    site: Site, tmp_path: Path
) -> None:
    """Every segment arrives whole, but no faster than the pace the live stream leaves."""
    import time

    from firmware.media.backfill import CHUNK_BYTES, SHARE

    units = encode_clip(12)
    recorder = _local_recording(tmp_path / "recording", units)
    total = sum(s.path.stat().st_size for s in recorder.segments())
    seconds = 2.0  # what the whole recording should take at the pace chosen below
    live_kbps = total * 8 / seconds / 1000 / SHARE
    filler = _filler(site, recorder, lambda: live_kbps)
    began = time.monotonic()
    async with aiohttp.ClientSession() as http:
        sent = await filler.check(http)
    took = time.monotonic() - began
    assert sent == len(recorder.segments()) and filler.uploaded == sent
    unpaced = len(recorder.segments()) * CHUNK_BYTES * 8 / (live_kbps * SHARE * 1000)
    assert took >= seconds - unpaced, f"{total} bytes in {took:.2f} s: not paced"
    spans = site.state.archive.device_spans(DEVICE, BASE_UTC, BASE_UTC + timedelta(minutes=1))
    assert len(spans) == sent, "stored whole"

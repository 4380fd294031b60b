"""Recorded calls on disk (O4): a crash loses at most the open segment and what was
stored stays playable; retention removes what is older than the site keeps; the orphan
collector leaves recorded segments alone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import timedelta
from pathlib import Path

import av
import numpy as np
from sqlalchemy import select, update

from server.archive.call_store import CallStore, referenced_recording_blobs
from server.archive.call_writer import PARTIAL_SUFFIX, SegmentedRecording, remove_partial_segments
from server.archive.calls import CallSegment
from server.db import Database, open_database, utcnow
from server.records.blobs import LocalBlobStore
from server.records.store import RecordStore

_WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import av, numpy as np
    from server.archive.call_store import CallStore
    from server.archive.call_writer import SegmentedRecording
    from server.db import open_database
    from server.records.blobs import LocalBlobStore
    from server.records.store import RecordStore

    root = Path(sys.argv[1])
    database = open_database(f"sqlite:///{root / 'db.sqlite'}")
    records = RecordStore(database, LocalBlobStore(root / "blobs"), max_bytes=1 << 30)
    store = CallStore(database, records, 1095)

    def filed(segment):
        store.file_segment("P-1", "c1", writer.started_utc, segment)
        print("filed", segment.seq, flush=True)

    writer = SegmentedRecording(root / "work", filed, segment_seconds=2.0)
    tone = (np.sin(2 * np.pi * 440 * np.arange(960) / 48000) * 8000).astype(np.int16)
    for i in range(100000):  # until killed
        t = i / 10
        for k in range(5):
            writer.add_audio(tone, t - 0.1 + 0.02 * (k + 1))
        frame = av.VideoFrame.from_ndarray(
            np.full((360, 640, 3), i % 256, dtype=np.uint8), format="rgb24"
        )
        writer.add_video(frame, t)
        time.sleep(0.01)
    """
)


def _store(root: Path) -> tuple[Database, RecordStore, CallStore]:
    database = open_database(f"sqlite:///{root / 'db.sqlite'}")
    records = RecordStore(database, LocalBlobStore(root / "blobs"), max_bytes=1 << 30)
    return database, records, CallStore(database, records, 1095)


def _decoded(store: CallStore, sha: str) -> tuple[int, int]:
    """(video frames, audio samples) of a stored segment, decoded to the end."""
    with store.blobs.open(sha) as stream, av.open(stream) as container:
        video = audio = 0
        for frame in container.decode(*container.streams):
            if isinstance(frame, av.VideoFrame):
                video += 1
            else:
                audio += frame.samples
    return video, audio


def test_a_killed_writer_leaves_every_closed_segment_playable(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(tmp_path)],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
        text=True,
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # kill it while it writes its fourth segment
            if line.startswith("filed 2"):
                break
        while not list((tmp_path / "work").glob(f"*{PARTIAL_SUFFIX}")):
            time.sleep(0.01)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    database, _records, store = _store(tmp_path)
    with database.session() as session:
        rows = list(session.scalars(select(CallSegment).order_by(CallSegment.seq)))
    assert [r.seq for r in rows][:3] == [0, 1, 2]
    for row in rows:
        video, audio = _decoded(store, row.blob_sha256)
        assert video == row.frames and video >= 15
        assert audio >= 1.5 * 48_000  # the segment's voices, to its end
    assert [p.name for p in remove_partial_segments(tmp_path / "work")]  # the lost one
    database.close()


def _grey(level: int) -> av.VideoFrame:
    """A uniform picture (a call's own level, so two calls' segments differ)."""
    planes = np.full((360, 640, 3), level, dtype=np.uint8)
    return av.VideoFrame.from_ndarray(planes, format="rgb24")


def _record(store: CallStore, folder: Path, patient: str, consultation: str) -> list[int]:
    ids: list[int] = []
    writer = SegmentedRecording(
        folder,
        lambda seg: ids.append(store.file_segment(patient, consultation, writer.started_utc, seg)),
        segment_seconds=2.0,
    )
    for i in range(30):
        writer.add_audio(np.zeros(960, dtype=np.int16), i / 10)
        writer.add_video(_grey(sum(map(ord, consultation)) * 7 % 200), i / 10)
    writer.close(3.0)
    return ids


def test_retention_deletes_old_recordings_and_orphans_are_kept(tmp_path: Path) -> None:
    database, records, store = _store(tmp_path)
    records.also_referenced.append(referenced_recording_blobs)
    old = _record(store, tmp_path / "a", "P-1", "c-old")
    new = _record(store, tmp_path / "b", "P-1", "c-new")
    assert len(old) == 2 and len(new) == 2
    assert records.collect_orphans(0.0) == []  # recorded segments are referenced
    with database.session() as session, session.begin():
        session.execute(
            update(CallSegment)
            .where(CallSegment.id.in_(old))
            .values(end_utc=utcnow() - timedelta(days=1096))
        )
        old_blobs = set(
            session.scalars(select(CallSegment.blob_sha256).where(CallSegment.id.in_(old)))
        )
    assert store.apply_retention() == 2
    with database.session() as session:
        kept = list(session.scalars(select(CallSegment.id)))
    assert sorted(kept) == sorted(new)
    assert not any(store.blobs.exists(sha) for sha in old_blobs)
    database.close()


def test_erasing_a_patient_erases_their_recordings(tmp_path: Path) -> None:
    from server.erasure import erase_patient
    from server.records.models import Patient

    database, records, store = _store(tmp_path)
    records.also_referenced.append(referenced_recording_blobs)
    _record(store, tmp_path / "a", "P-1", "c1")
    kept = _record(store, tmp_path / "b", "P-2", "c2")
    with database.session() as session, session.begin():
        patient = session.scalars(select(Patient).where(Patient.external_id == "P-1")).one()
        shas, _segments = erase_patient(session, patient)
    assert len(shas) == 2
    assert records.drop_unreferenced(shas) == shas
    with database.session() as session:
        assert sorted(session.scalars(select(CallSegment.id))) == sorted(kept)
    database.close()


def test_a_replay_carries_the_viewers_watermark(tmp_path: Path) -> None:
    from server.media.watermark import Watermark

    database, _records, store = _store(tmp_path)
    ids = _record(store, tmp_path / "a", "P-1", "c1")
    with database.session() as session:
        rows = list(session.scalars(select(CallSegment).where(CallSegment.id.in_(ids))))
        for row in rows:
            session.expunge(row)
    plain, marked = tmp_path / "plain.mp4", tmp_path / "marked.mp4"
    mark = Watermark("Dr. Viewer", 640, 360)
    assert store.join(rows, plain) == store.join(rows, marked, mark.apply) == 30

    def brightest(path: Path) -> int:
        with av.open(str(path)) as container:
            frame = next(container.decode(video=0))
        return int(frame.to_ndarray(format="gray").max())

    assert brightest(marked) > brightest(plain) + 50  # a dark call, its name burnt in
    database.close()

"""The blob store: atomic, content-addressed, size-limited while streaming."""

from __future__ import annotations

import hashlib
import io
import os
import time
from pathlib import Path

import pytest

from server.records.blobs import BlobTooLarge, LocalBlobStore


class _Trickle(io.RawIOBase):
    """A stream that yields ``total`` bytes in small chunks and counts what was read."""

    def __init__(self, total: int, chunk: int = 4096) -> None:
        self.left, self.chunk, self.served = total, chunk, 0

    def read(self, size: int = -1, /) -> bytes:
        n = min(self.left, self.chunk)
        self.left -= n
        self.served += n
        return b"x" * n


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_put_then_open_returns_the_same_bytes(blobs: LocalBlobStore) -> None:
    data = os.urandom(300_000)
    ref = blobs.put(io.BytesIO(data), max_bytes=1_000_000)
    assert ref.sha256 == hashlib.sha256(data).hexdigest() and ref.size == len(data)
    assert blobs.exists(ref.sha256)
    with blobs.open(ref.sha256) as fh:
        assert fh.read() == data
    path = blobs.root / ref.sha256[:2] / ref.sha256[2:4] / ref.sha256
    assert path.is_file() and path.stat().st_mode & 0o777 == 0o600
    assert not [p for p in blobs.root.iterdir() if p.name.startswith(".incoming-")]


def test_same_content_is_stored_once(blobs: LocalBlobStore) -> None:
    first = blobs.put_bytes(b"same scan", max_bytes=100)
    second = blobs.put(io.BytesIO(b"same scan"), max_bytes=100)
    assert first == second
    assert len(_files(blobs.root)) == 1


def test_size_limit_stops_the_stream_and_leaves_nothing(blobs: LocalBlobStore) -> None:
    stream = _Trickle(10_000_000)
    with pytest.raises(BlobTooLarge, match="1000000 bytes"):
        blobs.put(stream, max_bytes=1_000_000)
    assert stream.served < 1_100_000  # stopped while streaming, not after reading it all
    assert _files(blobs.root) == []


def test_a_failing_stream_leaves_nothing(blobs: LocalBlobStore) -> None:
    class Broken(io.RawIOBase):
        def read(self, size: int = -1, /) -> bytes:
            raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        blobs.put(Broken(), max_bytes=100)
    assert _files(blobs.root) == []


def test_unknown_or_malformed_names_are_refused(blobs: LocalBlobStore) -> None:
    assert not blobs.exists("0" * 64)
    with pytest.raises(FileNotFoundError):
        blobs.open("0" * 64)
    with pytest.raises(ValueError, match="SHA-256"):
        blobs.open("../../etc/passwd")


def test_collector_removes_old_orphans_only(blobs: LocalBlobStore) -> None:
    kept = blobs.put_bytes(b"referenced", max_bytes=100)
    orphan = blobs.put_bytes(b"orphan", max_bytes=100)
    fresh = blobs.put_bytes(b"just written", max_bytes=100)
    old = time.time() - 3600
    for ref in (kept, orphan):
        os.utime(blobs.path_of(ref.sha256), (old, old))
    stale_tmp = blobs.root / ".incoming-crashed"
    stale_tmp.write_bytes(b"partial")
    os.utime(stale_tmp, (old, old))

    removed = blobs.collect_orphans({kept.sha256}, older_than_s=600)

    assert removed == [orphan.sha256]
    assert blobs.exists(kept.sha256) and blobs.exists(fresh.sha256)
    assert not blobs.exists(orphan.sha256) and not stale_tmp.exists()


def test_putting_existing_content_again_restarts_its_grace_period(blobs: LocalBlobStore) -> None:
    ref = blobs.put_bytes(b"re-uploaded", max_bytes=100)
    old = time.time() - 3600
    os.utime(blobs.path_of(ref.sha256), (old, old))
    blobs.put_bytes(b"re-uploaded", max_bytes=100)  # its row is about to be committed
    assert blobs.collect_orphans(set(), older_than_s=600) == []

"""Archive segments in the object store (O8), when the site keeps its blobs there.

A segment is written on the local disk first (crash-safe, see :mod:`clinicam.segments`);
once closed it is put into the records' :class:`~server.records.blobs.BlobStore`, its row
names the blob, and the local file goes. If the store cannot be reached the row is
committed without a blob and the file stays: nothing is lost, and :meth:`offload_pending`
moves it later. A read that needs a segment whose file is gone fetches it back into the
same place (checked against its SHA-256 by the store) and :meth:`drop_fetched` removes
such copies once they have not been used for a while. Files are the reader's format
because the range export seeks in them; an object store stream does not seek.
"""

from __future__ import annotations

import logging
import os
import secrets
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from clinicam.files import fsync_directory, fsync_file
from clinicam.segments import PARTIAL_SUFFIX, SEGMENT_SUFFIX
from server.archive.index import ArchiveSegment
from server.db import Database
from server.domain_errors import Unavailable
from server.records.blobs import BlobStore

_LOGGER = logging.getLogger(__name__)

MAX_SEGMENT_BYTES = 1 << 30
FETCHED_KEEP_S = 3600.0


def referenced_archive_blobs(session: Session) -> set[str]:
    """The blobs archive segments hold (the orphan collector must keep them)."""
    rows = session.scalars(
        select(ArchiveSegment.blob_sha256).where(ArchiveSegment.blob_sha256.is_not(None))
    )
    return {sha for sha in rows if sha}


class SegmentBlobs:
    """Closed segments into the object store (when ``offload``), and back out for reading.

    ``drop`` deletes the blobs among its argument that no row references any more (the
    records' :meth:`~server.records.store.RecordStore.drop_unreferenced`).
    """

    def __init__(
        self,
        root: Path,
        blobs: BlobStore,
        drop: Callable[[list[str]], list[str]],
        *,
        offload: bool,
    ) -> None:
        self.root = root
        self.blobs = blobs
        self.drop = drop
        self.offloading = offload

    def offload(self, path: Path) -> str | None:
        """Put the segment file into the store: its SHA-256; None if segments stay on
        disk (the site keeps its blobs locally) or the store is away for now."""
        if not self.offloading:
            return None
        try:
            with path.open("rb") as stream:
                return self.blobs.put(stream, max_bytes=MAX_SEGMENT_BYTES).sha256
        except Unavailable as exc:
            _LOGGER.warning("archive segment %s stays on disk for now: %s", path.name, exc)
            return None

    def offload_pending(self, database: Database) -> int:
        """Move segments indexed while the store was away into it; returns how many."""
        if not self.offloading:
            return 0
        with database.session() as session:
            pending = list(
                session.execute(
                    select(ArchiveSegment.id, ArchiveSegment.path).where(
                        ArchiveSegment.blob_sha256.is_(None)
                    )
                )
            )
        moved = 0
        for row_id, rel in pending:
            path = self.root / rel
            if not path.is_file():
                continue
            sha = self.offload(path)
            if sha is None:
                break  # still away: try again at the next round
            with database.session() as session, session.begin():
                session.execute(
                    update(ArchiveSegment)
                    .where(ArchiveSegment.id == row_id)
                    .values(blob_sha256=sha)
                )
            path.unlink(missing_ok=True)
            moved += 1
        if moved:
            _LOGGER.info("moved %d archive segments into the object store", moved)
        return moved

    def fetch(self, rel: str, sha256: str) -> Path:
        """The segment's local file, fetched from the store if it is not on disk."""
        path = self.root / rel
        if path.is_file():
            os.utime(path)  # in use: :meth:`drop_fetched` keeps it a while longer
            return path
        # Named so that the start-up clean-up of unfinished segments finds it after a crash.
        fetching = f"{path.stem}.fetch-{secrets.token_hex(4)}{SEGMENT_SUFFIX}{PARTIAL_SUFFIX}"
        partial = path.with_name(fetching)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with self.blobs.open(sha256) as source, partial.open("wb") as out:
                while chunk := source.read(1 << 20):
                    out.write(chunk)
            fsync_file(partial)
            os.replace(partial, path)
            fsync_directory(path.parent)
        finally:
            partial.unlink(missing_ok=True)
        return path

    def drop_fetched(self, rows: Iterable[tuple[str, str | None]], now: float | None = None) -> int:
        """Delete local copies of stored segments unused for :data:`FETCHED_KEEP_S`."""
        cutoff = (now or time.time()) - FETCHED_KEEP_S
        dropped = 0
        for rel, sha in rows:
            path = self.root / rel
            if sha and path.is_file() and path.stat().st_mtime < cutoff:
                path.unlink(missing_ok=True)
                dropped += 1
        return dropped


__all__ = ["SegmentBlobs", "referenced_archive_blobs"]

"""A content-addressed blob store: files named by their SHA-256, written atomically.

A blob is streamed to a temporary file in the store's root while it is hashed and
counted (the size limit is enforced as the bytes arrive, so an oversized upload is
never held whole), fsynced, renamed to ``root/ab/cd/<sha256>`` and the folder fsynced.
A second put of the same content finds the file already there and only refreshes its
modification time.

Callers write the blob first and commit the row that points at it afterwards. A crash
before the rename leaves only a temporary file; a crash between the rename and the
commit leaves an orphan blob that no row references. Either way the database still
shows the old state, and :meth:`LocalBlobStore.collect_orphans` later removes the
leftovers.
The reverse order could commit a row pointing at a file that never reached the disk.
The collector only removes files older than a grace period, so a blob whose row is
about to be committed is not taken away from under it.

Everything outside this module reaches blobs through the :class:`BlobStore` protocol
(put, open for streaming reads, stat, exists, delete), never through a file path, so
the local folder can be swapped for an object store without touching the callers
(:mod:`server.records.s3_blobs` keeps the same order and collector on S3).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Protocol, Self

_LOGGER = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20
_TEMP_PREFIX = ".incoming-"
_SHA256 = re.compile(r"[0-9a-f]{64}")


class Readable(Protocol):
    """Anything with a binary ``read(n)``: an open file, a socket file, ``io.BytesIO``."""

    def read(self, size: int = -1, /) -> bytes: ...


class BlobTooLarge(Exception):
    """The content exceeded ``max_bytes``; nothing was stored."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(f"content exceeds the limit of {max_bytes} bytes")
        self.max_bytes = max_bytes


class BlobCorrupt(Exception):
    """What the store gave back does not hash to its SHA-256: never served as the blob."""

    def __init__(self, sha256: str) -> None:
        super().__init__(f"stored blob {sha256} does not match its SHA-256")
        self.sha256 = sha256


@dataclass(frozen=True)
class BlobRef:
    """A stored blob: its SHA-256 (hex) and size in bytes."""

    sha256: str
    size: int


class BlobStore(Protocol):
    """Where record content lives, by SHA-256: the seam a storage backend implements.

    Reads are streams (``open``), never file paths, so a caller works the same on the
    local folder and on an object store.
    """

    def put(self, stream: Readable, *, max_bytes: int) -> BlobRef:
        """Store everything ``stream`` yields; :class:`BlobTooLarge` past ``max_bytes``."""
        ...

    def open(self, sha256: str) -> BinaryIO:
        """The blob as a binary stream; ``FileNotFoundError`` if it is not stored."""
        ...

    def stat(self, sha256: str) -> BlobRef:
        """The blob's reference with its stored size; ``FileNotFoundError`` if absent."""
        ...

    def exists(self, sha256: str) -> bool:
        """Is a blob with this SHA-256 stored?"""
        ...

    def delete(self, sha256: str) -> bool:
        """Remove the blob; False if it was not stored."""
        ...

    def collect_orphans(self, referenced: set[str], older_than_s: float) -> list[str]:
        """Remove blobs not in ``referenced`` stored longer ago than ``older_than_s``."""
        ...


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class BlobWriter:
    """One blob being written; feed it chunks (e.g. from an aiohttp body), then ``commit``."""

    def __init__(self, store: LocalBlobStore, max_bytes: int) -> None:
        self._store = store
        self._max_bytes = max_bytes
        fd, tmp = tempfile.mkstemp(dir=store.root, prefix=_TEMP_PREFIX)
        self._file: BinaryIO | None = os.fdopen(fd, "wb")
        self._tmp = Path(tmp)
        self._hash = hashlib.sha256()
        self._size = 0

    def write(self, chunk: bytes) -> None:
        if self._file is None:
            raise ValueError("blob writer is closed")
        self._size += len(chunk)
        if self._size > self._max_bytes:
            self.abort()
            raise BlobTooLarge(self._max_bytes)
        self._hash.update(chunk)
        self._file.write(chunk)

    def commit(self) -> BlobRef:
        """fsync, rename into place, fsync the folder; returns the blob's reference."""
        if self._file is None:
            raise ValueError("blob writer is closed")
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            self._file = None
            ref = BlobRef(self._hash.hexdigest(), self._size)
            final = self._store.path_of(ref.sha256)
            if final.exists():
                # Same content already stored: keep it, and restart its grace period so
                # the orphan collector leaves it alone until our row is committed.
                os.utime(final)
                self._tmp.unlink()
                return ref
            self._store.make_parents(final)
            os.chmod(self._tmp, 0o600)
            os.replace(self._tmp, final)
            _fsync_dir(final.parent)
            _LOGGER.debug("stored blob %s (%d bytes)", ref.sha256, ref.size)
            return ref
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        """Drop the temporary file (safe to call more than once)."""
        if self._file is not None:
            self._file.close()
            self._file = None
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None or self._file is not None:
            self.abort()


class LocalBlobStore:
    """Blobs under ``root`` as ``root/ab/cd/<sha256>`` (implements :class:`BlobStore`)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def path_of(self, sha256: str) -> Path:
        """Internal: the file of a blob, only for this store and legacy callers.

        Everything else reads through :meth:`open` and :meth:`stat`, so the content can
        move to a store that has no paths.
        """
        if not _SHA256.fullmatch(sha256):
            raise ValueError(f"not a SHA-256 hex digest: {sha256!r}")
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def make_parents(self, path: Path) -> None:
        """Create ``ab/cd`` folders, fsyncing each parent whose entries changed."""
        for folder in (path.parent.parent, path.parent):
            if not folder.is_dir():
                folder.mkdir(exist_ok=True)
                _fsync_dir(folder.parent)

    def writer(self, *, max_bytes: int) -> BlobWriter:
        return BlobWriter(self, max_bytes)

    def put(self, stream: Readable, *, max_bytes: int) -> BlobRef:
        """Store everything ``stream`` yields; :class:`BlobTooLarge` past ``max_bytes``."""
        with self.writer(max_bytes=max_bytes) as writer:
            while chunk := stream.read(CHUNK_BYTES):
                writer.write(chunk)
            return writer.commit()

    def put_bytes(self, data: bytes, *, max_bytes: int) -> BlobRef:
        with self.writer(max_bytes=max_bytes) as writer:
            writer.write(data)
            return writer.commit()

    def exists(self, sha256: str) -> bool:
        return self.path_of(sha256).is_file()

    def open(self, sha256: str) -> BinaryIO:
        """The blob for reading; ``FileNotFoundError`` if it is not stored."""
        return self.path_of(sha256).open("rb")

    def stat(self, sha256: str) -> BlobRef:
        """The blob's size; ``FileNotFoundError`` if it is not stored."""
        return BlobRef(sha256, self.path_of(sha256).stat().st_size)

    def delete(self, sha256: str) -> bool:
        """Remove the blob (a missing one is not an error); False if it was not there."""
        path = self.path_of(sha256)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        return True

    def collect_orphans(
        self, referenced: set[str], older_than_s: float, *, now: float | None = None
    ) -> list[str]:
        """Remove blobs not in ``referenced`` (and stale temp files) older than the grace."""
        cutoff = (time.time() if now is None else now) - older_than_s
        removed: list[str] = []
        for tmp in self.root.glob(_TEMP_PREFIX + "*"):
            if tmp.stat().st_mtime < cutoff:
                tmp.unlink(missing_ok=True)
        for path in self.root.glob("??/??/*"):
            name = path.name
            if not _SHA256.fullmatch(name) or name in referenced:
                continue
            if path.stat().st_mtime < cutoff:
                path.unlink(missing_ok=True)
                removed.append(name)
        if removed:
            _fsync_dir(self.root)
            _LOGGER.info("collected %d orphan blobs", len(removed))
        return sorted(removed)

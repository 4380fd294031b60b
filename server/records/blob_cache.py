"""A local cache in front of the object store: reads go on while the store is away.

Content written through the S3 store in one part, and content read from it and verified
against its SHA-256, is kept as a local content-addressed file (the local store's own
format, written atomically) up to a size limit; the least recently used files go first.
Only verified content enters the cache, so what it serves is what the key names.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from pathlib import Path
from typing import BinaryIO

from server.records.blobs import BlobWriter, LocalBlobStore

_LOGGER = logging.getLogger(__name__)


class BlobCache:
    """Up to ``max_bytes`` of blobs under ``root``; one blob at most a quarter of it."""

    def __init__(self, root: Path, max_bytes: int) -> None:
        self._local = LocalBlobStore(root)
        self.max_bytes = max_bytes
        stale = time.time() - 3600.0
        for left in root.glob(".incoming-*"):  # copies cut short by a crash
            with contextlib.suppress(OSError):
                if left.stat().st_mtime < stale:
                    left.unlink()

    def open(self, sha256: str) -> BinaryIO | None:
        """The cached blob (now the most recently used), or None."""
        try:
            stream = self._local.open(sha256)
        except FileNotFoundError:
            return None
        os.utime(self._local.path_of(sha256))
        return stream

    def writer(self, size: int) -> BlobWriter | None:
        """Somewhere to copy a blob of ``size`` bytes as it is read; None if too large."""
        if size > self.max_bytes // 4:
            return None
        return self._local.writer(max_bytes=size)

    def keep(self, writer: BlobWriter, sha256: str) -> None:
        """Commit a copy whose content was verified against ``sha256``."""
        ref = writer.commit()
        if ref.sha256 != sha256:  # cannot happen for verified content; never keep a stranger
            self._local.delete(ref.sha256)
            return
        self._trim()

    def store(self, sha256: str, data: bytes) -> None:
        """Keep ``data`` (already hashed to ``sha256`` by the caller)."""
        writer = self.writer(len(data))
        if writer is not None:
            with writer:
                writer.write(data)
                self.keep(writer, sha256)

    def discard(self, sha256: str) -> None:
        self._local.delete(sha256)

    def _trim(self) -> None:
        files = [(p.stat(), p) for p in self._local.root.glob("??/??/*")]
        total = sum(stat.st_size for stat, _ in files)
        for stat, path in sorted(files, key=lambda item: item[0].st_mtime):
            if total <= self.max_bytes:
                break
            path.unlink(missing_ok=True)
            total -= stat.st_size
            _LOGGER.debug("blob cache: dropped %s", path.name)

"""The server's release store: checked Clinicam wheels the appliances may install (D5).

One folder holds the wheels under their own names (``clinicam-<v>-py3-none-any.whl``)
and ``index.json`` (sha256, size and time added of each). A wheel comes in only after
:func:`~clinicam.release.check_wheel` passed on the staged copy; it is fsynced and
appears under its final name by one rename, so no reader ever sees a partial file. The
index is replaced the same way. A wheel the index does not know (a crash between the
two renames) is checked again and adopted; an entry whose wheel is gone is dropped.
A version, once stored, never changes its bytes: remove it first to replace it.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import re
import shutil
import tempfile
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version

from clinicam.files import fsync_directory, fsync_file
from clinicam.i18n import _
from clinicam.release import (
    VERSION_PATTERN,
    BadRelease,
    ReleaseInfo,
    check_wheel,
    version_of,
    wheel_name,
)

_LOGGER = logging.getLogger(__name__)
INDEX = "index.json"
_TEMP_PREFIX = ".incoming-"
_VERSION = re.compile(VERSION_PATTERN)


class ReleaseConflict(Exception):
    """The version is already stored with different bytes."""


@dataclass(frozen=True)
class StoredRelease(ReleaseInfo):
    added_at: str = ""  # UTC, ISO 8601

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "filename": self.wheel_name,
            "sha256": self.sha256,
            "size": self.size,
            "added_at": self.added_at,
        }


def is_version(text: str) -> bool:
    """``text`` is a release version (the whole string, no trailing newline)."""
    return _VERSION.fullmatch(text) is not None


def _sort_key(release: StoredRelease) -> tuple[int, Any, str]:
    """Newest first in PEP 440 order (a version it cannot parse: by the time added)."""
    try:
        return (1, Version(release.version), release.added_at)
    except InvalidVersion:
        return (0, 0, release.added_at)


class ReleaseStore:
    """Release wheels in ``folder``; thread-safe (the views call it off the event loop)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._lock = threading.Lock()
        self._unusable: set[tuple[str, int, int]] = set()  # (name, size, mtime) checked bad
        if folder.is_dir():  # leftovers of a crash mid-add are never shown; remove them
            for leftover in folder.glob(f"{_TEMP_PREFIX}*"):
                with contextlib.suppress(OSError):
                    leftover.unlink()

    def add(self, staged: Path, filename: str) -> tuple[StoredRelease, bool]:
        """Check ``staged`` (uploaded as ``filename``) and move it in.

        Returns the stored release and whether it is new: the same bytes again are
        accepted as they are. Raises BadRelease for a file that is not a release and
        ReleaseConflict for a stored version with other bytes. ``staged`` is moved
        only when the release is new; the caller removes it otherwise.
        """
        info = check_wheel(staged, filename)
        with self._lock:
            self.folder.mkdir(parents=True, exist_ok=True)
            entries = self._entries()
            known = entries.get(info.version)
            if known is not None:
                if known.sha256 == info.sha256:
                    return known, False
                raise ReleaseConflict(
                    _(
                        "release {version} is already stored with other contents "
                        "(sha256 {sha}…); remove it first to replace it, "
                        "or give the new build a new version",
                        version=info.version,
                        sha=known.sha256[:12],
                    )
                )
            target = self.folder / info.wheel_name
            if target.exists():  # a wheel that failed its check when adopted
                raise ReleaseConflict(
                    _(
                        "{name} is in the release store but unusable; remove it first",
                        name=info.wheel_name,
                    )
                )
            self._move_in(staged, target)
            added = StoredRelease(
                info.version,
                info.sha256,
                info.size,
                added_at=datetime.now(UTC).isoformat(timespec="seconds"),
            )
            entries[info.version] = added
            self._write_index(entries)
        _LOGGER.info("release %s added (%d bytes, sha256 %s)", info.version, info.size, info.sha256)
        return added, True

    def list(self) -> list[StoredRelease]:
        """Every stored release, newest first."""
        with self._lock:
            entries = self._entries()
        return sorted(entries.values(), key=_sort_key, reverse=True)

    def get(self, version: str) -> tuple[Path, StoredRelease]:
        """The wheel's path and release; KeyError for anything not stored."""
        if not is_version(version):
            raise KeyError(version)
        with self._lock:
            found = self._entries().get(version)
        if found is None:
            raise KeyError(version)
        return self.folder / found.wheel_name, found

    def remove(self, version: str) -> StoredRelease:
        """Remove a stored release; KeyError if there is none."""
        if not is_version(version):
            raise KeyError(version)
        with self._lock:
            entries = self._entries()
            path = self.folder / wheel_name(version)
            if not path.exists():
                raise KeyError(version)
            removed = entries.pop(version, None)
            path.unlink()
            fsync_directory(self.folder)
            self._write_index(entries)
        _LOGGER.info("release %s removed", version)
        return removed or StoredRelease(version, "", 0)

    # All below run under the lock.
    def _move_in(self, staged: Path, target: Path) -> None:
        """Make ``staged`` appear as ``target`` at once, durably."""
        fsync_file(staged)
        try:
            os.replace(staged, target)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            fd, name = tempfile.mkstemp(dir=self.folder, prefix=_TEMP_PREFIX)
            temp = Path(name)
            try:
                with os.fdopen(fd, "wb") as out, staged.open("rb") as src:
                    shutil.copyfileobj(src, out, 1 << 20)
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(temp, target)
            except BaseException:
                temp.unlink(missing_ok=True)
                raise
        fsync_directory(self.folder)

    def _read_index(self) -> dict[str, StoredRelease]:
        try:
            raw = json.loads((self.folder / INDEX).read_text(encoding="utf-8"))
            return {
                version: StoredRelease(version, str(e["sha256"]), int(e["size"]), str(e["added"]))
                for version, e in raw["releases"].items()
                if is_version(version)
            }
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            _LOGGER.warning("release index unreadable (%s): rebuilding it from the wheels", exc)
            return {}

    def _write_index(self, entries: dict[str, StoredRelease]) -> None:
        data = {
            "releases": {
                v: {"sha256": e.sha256, "size": e.size, "added": e.added_at}
                for v, e in sorted(entries.items())
            }
        }
        fd, name = tempfile.mkstemp(dir=self.folder, prefix=_TEMP_PREFIX)
        temp = Path(name)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(data, out, indent=1)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, self.folder / INDEX)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        fsync_directory(self.folder)

    def _entries(self) -> dict[str, StoredRelease]:
        """The index reconciled with the wheels actually in the folder."""
        if not self.folder.is_dir():
            return {}
        indexed = self._read_index()
        entries: dict[str, StoredRelease] = {}
        for path in self.folder.iterdir():
            try:
                version = version_of(path.name)
            except BadRelease:
                continue
            if path.name != wheel_name(version) or not path.is_file():
                continue
            stat = path.stat()
            known = indexed.get(version)
            if known is not None and known.size == stat.st_size:
                entries[version] = known
                continue
            seen = (path.name, stat.st_size, stat.st_mtime_ns)
            if seen in self._unusable:
                continue
            try:
                info = check_wheel(path)
            except BadRelease as exc:
                _LOGGER.warning("ignoring %s in the release store: %s", path.name, exc)
                self._unusable.add(seen)
                continue
            added = datetime.fromtimestamp(stat.st_mtime, UTC)
            entries[version] = StoredRelease(
                version, info.sha256, info.size, added_at=added.isoformat(timespec="seconds")
            )
        if entries != indexed:
            self._write_index(entries)
        return entries

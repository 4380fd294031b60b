"""The server's release store: checked Clinicam wheels the appliances may install (D5).

The index is a table (:class:`~server.fleet.models.ApplianceRelease`: version, wheel
name, sha256, size, time added) and each wheel's bytes are a blob in the site's
:class:`~server.records.blobs.BlobStore` (the local folder, or the object store with
``[blobs] backend = "s3"``), so every web front and worker of a site sees the same
releases.

A wheel comes in only after :func:`~clinicam.release.check_wheel` passed on the staged
copy. Its blob is stored first and its row committed after, together with the caller's
audit entry in the same transaction, so a row never names a missing wheel and a release
is never stored without its entry. A blob whose row was not committed (the audit log
could not be written, a crash) is dropped again, or left to the orphan collector, which
keeps every blob a release row names. A store that cannot be reached refuses the add
before any row is written.

A version, once stored, never changes its bytes: the same bytes again are accepted as
not new, other bytes are refused (:class:`ReleaseConflict`); remove it first to replace
it. Two fronts adding one version at once: the table's unique version decides.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from packaging.version import InvalidVersion, Version
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from clinicam.i18n import _
from clinicam.release import VERSION_PATTERN, BadRelease, ReleaseInfo, check_wheel
from server.db import Database
from server.domain_errors import Unavailable
from server.fleet.models import ApplianceRelease
from server.records.blobs import BlobStore

_LOGGER = logging.getLogger(__name__)
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


Audit = Callable[[Session, StoredRelease], None]
"""Writes the change's audit entry inside the transaction that commits the change."""


def _unaudited(session: Session, release: StoredRelease) -> None:
    """For callers that audit elsewhere (tests, tools)."""


def is_version(text: str) -> bool:
    """``text`` is a release version (the whole string, no trailing newline)."""
    return _VERSION.fullmatch(text) is not None


def _sort_key(release: StoredRelease) -> tuple[int, Any, str]:
    """Newest first in PEP 440 order (a version it cannot parse: by the time added)."""
    try:
        return (1, Version(release.version), release.added_at)
    except InvalidVersion:
        return (0, 0, release.added_at)


def _stored(row: ApplianceRelease) -> StoredRelease:
    added = row.added_at.astimezone(UTC).isoformat(timespec="seconds")
    return StoredRelease(row.version, row.sha256, int(row.size), added_at=added)


def _row(session: Session, version: str) -> ApplianceRelease | None:
    return session.scalar(select(ApplianceRelease).where(ApplianceRelease.version == version))


def _conflict(known: StoredRelease) -> ReleaseConflict:
    return ReleaseConflict(
        _(
            "release {version} is already stored with other contents "
            "(sha256 {sha}…); remove it first to replace it, "
            "or give the new build a new version",
            version=known.version,
            sha=known.sha256[:12],
        )
    )


class ReleaseStore:
    """Release wheels: rows in ``database``, bytes in ``blobs``; safe from any thread.

    ``drop`` deletes the blobs among its argument that no row references any more (the
    records' :meth:`~server.records.store.RecordStore.drop_unreferenced`, which knows
    every kind of row that names a blob); without it, unreferenced wheels are left to
    the orphan collector.
    """

    def __init__(
        self,
        database: Database,
        blobs: BlobStore,
        *,
        drop: Callable[[list[str]], list[str]] | None = None,
    ) -> None:
        self._database = database
        self.blobs = blobs
        self._drop = drop

    def add(
        self,
        staged: Path,
        filename: str,
        *,
        audit: Audit = _unaudited,
        added_at: datetime | None = None,
    ) -> tuple[StoredRelease, bool]:
        """Check ``staged`` (uploaded as ``filename``) and store a copy of it.

        Returns the stored release and whether it is new: the same bytes again are
        accepted as they are (and not audited). Raises BadRelease for a file that is not
        a release, ReleaseConflict for a stored version with other bytes, and
        :class:`~server.records.s3_blobs.BlobStoreUnavailable` (a domain
        ``Unavailable``) when the store cannot be reached. ``staged`` stays where it is:
        the caller removes it.
        """
        info = check_wheel(staged, filename)
        known = self._find(info.version)
        if known is not None:
            return self._same(known, info), False
        with staged.open("rb") as stream:
            ref = self.blobs.put(stream, max_bytes=info.size)
        if ref.sha256 != info.sha256:  # the staged file changed after its check
            self._forget(ref.sha256)
            raise BadRelease(_("the release file changed while it was stored; upload it again"))
        when = (added_at or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
        added = StoredRelease(
            info.version, info.sha256, info.size, added_at=when.isoformat(timespec="seconds")
        )
        try:
            with self._database.session() as session, session.begin():
                session.add(
                    ApplianceRelease(
                        version=info.version,
                        filename=info.wheel_name,
                        sha256=info.sha256,
                        size=info.size,
                        added_at=when,
                    )
                )
                session.flush()  # a version another front stored meanwhile fails here
                audit(session, added)
        except IntegrityError:
            known = self._find(info.version)
            if known is None or known.sha256 != info.sha256:
                self._forget(ref.sha256)
                if known is None:
                    raise
            return self._same(known, info), False
        except BaseException:
            self._forget(ref.sha256)  # not stored without its row (and its audit entry)
            raise
        _LOGGER.info("release %s added (%d bytes, sha256 %s)", info.version, info.size, info.sha256)
        return added, True

    def list(self) -> list[StoredRelease]:
        """Every stored release, newest first."""
        with self._database.session() as session:
            found = [_stored(row) for row in session.scalars(select(ApplianceRelease))]
        return sorted(found, key=_sort_key, reverse=True)

    def get(self, version: str) -> StoredRelease:
        """The stored release; KeyError for anything not stored."""
        found = self._find(version) if is_version(version) else None
        if found is None:
            raise KeyError(version)
        return found

    def open(self, release: StoredRelease) -> BinaryIO:
        """The release's wheel as a stream from the blob store (checked against its
        SHA-256 as every blob read is); ``Unavailable`` if the store cannot be reached
        or no longer has it."""
        try:
            return self.blobs.open(release.sha256)
        except FileNotFoundError:
            _LOGGER.error("release %s: its wheel is missing from the blob store", release.version)
            raise Unavailable(
                _(
                    "the wheel of release {version} is missing from the blob store",
                    version=release.version,
                ),
                code="release_missing",
            ) from None

    def remove(self, version: str, *, audit: Audit = _unaudited) -> StoredRelease:
        """Remove a stored release (its row with ``audit``'s entry, then its blob);
        KeyError if there is none."""
        if not is_version(version):
            raise KeyError(version)
        with self._database.session() as session, session.begin():
            row = _row(session, version)
            if row is None:
                raise KeyError(version)
            removed = _stored(row)
            session.delete(row)
            session.flush()
            audit(session, removed)
        self._forget(removed.sha256)
        _LOGGER.info("release %s removed", version)
        return removed

    def _find(self, version: str) -> StoredRelease | None:
        with self._database.session() as session:
            row = _row(session, version)
            return None if row is None else _stored(row)

    @staticmethod
    def _same(known: StoredRelease, info: ReleaseInfo) -> StoredRelease:
        if known.sha256 != info.sha256:
            raise _conflict(known)
        return known

    def _forget(self, sha256: str) -> None:
        """Delete the blob if no row names it (else the orphan collector takes it)."""
        if self._drop is None:
            return
        try:
            self._drop([sha256])
        except Exception:  # the change itself is decided; the blob only waits longer
            _LOGGER.warning("release blob %s left to the orphan collector", sha256, exc_info=True)

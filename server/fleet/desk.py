"""The release desk (D5): adding and removing release wheels, each with its audit entry.

The release store is a folder, not a table, so a change and its audit entry cannot
share one database transaction. The desk makes them one unit all the same: a removal
writes its entry first and commits only once the wheel is gone (an entry that cannot
be written stops the removal); an added wheel whose entry cannot be written is taken
out again. Either both happen or neither does.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from clinicam.i18n import _
from server.audit.trail import AuditTrail
from server.db import Database
from server.domain_errors import NotFound
from server.fleet.releases import ReleaseStore, StoredRelease


class ReleaseDesk:
    """Audited changes to the release store (the views call these from the event loop)."""

    def __init__(self, store: ReleaseStore, database: Database, audit: AuditTrail) -> None:
        self.store = store
        self._database = database
        self._audit = audit

    def _add(self, actor: str, staged: Path, filename: str) -> tuple[StoredRelease, bool]:
        release, created = self.store.add(staged, filename)
        if not created:  # the same bytes again: nothing changed, nothing to audit
            return release, False
        try:
            with self._database.session() as session, session.begin():
                self._audit.write(
                    session,
                    actor,
                    "release.added",
                    f"release:{release.version}",
                    {"sha256": release.sha256, "size": release.size},
                )
        except BaseException:
            self.store.remove(release.version)  # not stored without its audit entry
            raise
        return release, True

    async def add(self, actor: str, staged: Path, filename: str) -> tuple[StoredRelease, bool]:
        """Check and store the staged wheel; whether it is new. Raises what the store does
        (:class:`~clinicam.release.BadRelease`, :class:`~server.fleet.releases.ReleaseConflict`)."""
        return await asyncio.to_thread(self._add, actor, staged, filename)

    def _remove(self, actor: str, version: str) -> StoredRelease:
        try:
            _path, release = self.store.get(version)
        except KeyError:
            raise NotFound(_("release {version} is not stored", version=version)) from None
        with self._database.session() as session, session.begin():
            self._audit.write(
                session, actor, "release.removed", f"release:{version}", {"sha256": release.sha256}
            )
            session.flush()  # the entry is in: now the wheel may go
            try:
                return self.store.remove(version)
            except KeyError:
                raise NotFound(_("release {version} is not stored", version=version)) from None

    async def remove(self, actor: str, version: str) -> StoredRelease:
        """Remove a stored release (its audit entry commits with the removal)."""
        return await asyncio.to_thread(self._remove, actor, version)

"""The release desk (D5): adding, removing and handing out release wheels, audited.

The release index is a table, so a change and its audit entry commit in one database
transaction (the store writes the row, the desk's entry goes into the same session):
either both happen or neither does. A download is audited once its wheel could be
opened from the blob store, so a store that cannot be reached answers 503 and leaves
no entry of a download that never happened.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import BinaryIO

from sqlalchemy.orm import Session

from clinicam.i18n import _
from server.audit.trail import AuditTrail
from server.domain_errors import NotFound
from server.fleet.releases import ReleaseStore, StoredRelease
from server.records.service import RecordContent

WHEEL_TYPE = "application/octet-stream"


def _not_stored(version: str) -> NotFound:
    return NotFound(
        _("release {version} is not in the release store: upload its wheel first", version=version)
    )


class ReleaseDesk:
    """Audited changes to the release store (the views call these from the event loop)."""

    def __init__(self, store: ReleaseStore, audit: AuditTrail) -> None:
        self.store = store
        self._audit = audit

    def _add(self, actor: str, staged: Path, filename: str) -> tuple[StoredRelease, bool]:
        def entry(session: Session, release: StoredRelease) -> None:
            self._audit.write(
                session,
                actor,
                "release.added",
                f"release:{release.version}",
                {"sha256": release.sha256, "size": release.size},
            )

        return self.store.add(staged, filename, audit=entry)

    async def add(self, actor: str, staged: Path, filename: str) -> tuple[StoredRelease, bool]:
        """Check and store the staged wheel; whether it is new. Raises what the store does
        (:class:`~clinicam.release.BadRelease`, :class:`~server.fleet.releases.ReleaseConflict`,
        ``Unavailable`` when the blob store cannot be reached)."""
        return await asyncio.to_thread(self._add, actor, staged, filename)

    def _remove(self, actor: str, version: str) -> StoredRelease:
        def entry(session: Session, release: StoredRelease) -> None:
            self._audit.write(
                session, actor, "release.removed", f"release:{version}", {"sha256": release.sha256}
            )

        try:
            return self.store.remove(version, audit=entry)
        except KeyError:
            raise NotFound(_("release {version} is not stored", version=version)) from None

    async def remove(self, actor: str, version: str) -> StoredRelease:
        """Remove a stored release (its audit entry commits with the removal)."""
        return await asyncio.to_thread(self._remove, actor, version)

    async def release(self, version: str) -> StoredRelease:
        """The stored release of ``version``; NotFound if there is none."""
        try:
            return await asyncio.to_thread(self.store.get, version)
        except KeyError:
            raise _not_stored(version) from None

    async def download(self, device_id: str, version: str) -> RecordContent:
        """The wheel for appliance ``device_id``, opened and audited, as a stream to serve."""
        release = await self.release(version)
        stream: BinaryIO = await asyncio.to_thread(self.store.open, release)
        try:
            await self._audit.record(
                f"device:{device_id}",
                "release.downloaded",
                f"release:{version}",
                {"sha256": release.sha256},
            )
        except BaseException:
            await asyncio.to_thread(stream.close)
            raise
        return RecordContent(
            media_type=WHEEL_TYPE,
            filename=release.wheel_name,
            inline=False,
            size=release.size,
            open=lambda: stream,
        )

"""Adopting the release folder of an older server (D5, issue 21) once, at start.

Before releases lived in the database and the site's blob store, each server kept them
in ``state_dir/releases`` (the wheels under their own names, and ``index.json`` with the
time each was added). At start every wheel there whose version the release table does
not have is checked again (:func:`~clinicam.release.check_wheel`) and stored, with the
time the old index gives (else the file's), and audited as ``release.adopted`` by
``server``. A file that is not a release, or a version stored with other bytes, is
logged and skipped; nothing here stops the server from starting.

Once every wheel was adopted or skipped, the folder is renamed ``releases.adopted`` (kept
for the operator, never read again), so a release removed later does not come back at
the next start. While the blob store cannot be reached the folder stays where it is and
the next start tries again; adopting the same wheel twice changes nothing.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.orm import Session

from clinicam.files import fsync_directory
from clinicam.release import BadRelease, version_of, wheel_name
from server.audit.trail import AuditTrail
from server.domain_errors import DomainError
from server.fleet.releases import ReleaseConflict, ReleaseStore, StoredRelease

_LOGGER = logging.getLogger(__name__)
OLD_FOLDER = "releases"
ADOPTED_SUFFIX = ".adopted"
_ACTOR = "server"


def _index_times(folder: Path) -> dict[str, datetime]:
    """The time each version was added, from the old ``index.json`` (if it is readable)."""
    try:
        raw = json.loads((folder / "index.json").read_text(encoding="utf-8"))
        return {
            version: datetime.fromisoformat(str(entry["added"])).astimezone(UTC)
            for version, entry in raw["releases"].items()
        }
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        _LOGGER.warning("old release index unreadable (%s): using the files' times", exc)
        return {}


def _wheels(folder: Path) -> list[tuple[str, Path]]:
    found = []
    for path in sorted(folder.iterdir()):
        try:
            version = version_of(path.name)
        except BadRelease:
            continue
        if path.name == wheel_name(version) and path.is_file():
            found.append((version, path))
    return found


def _set_aside(folder: Path) -> Path:
    target = folder.with_name(folder.name + ADOPTED_SUFFIX)
    n = 1
    while target.exists():
        n += 1
        target = folder.with_name(f"{folder.name}{ADOPTED_SUFFIX}.{n}")
    os.replace(folder, target)
    fsync_directory(folder.parent)
    return target


def adopt_release_folder(store: ReleaseStore, audit: AuditTrail, folder: Path) -> int:
    """Adopt the wheels of the old release ``folder``; returns how many were new."""
    if not folder.is_dir():
        return 0
    times = _index_times(folder)

    def entry(session: Session, release: StoredRelease) -> None:
        audit.write(
            session,
            _ACTOR,
            "release.adopted",
            f"release:{release.version}",
            {"sha256": release.sha256, "size": release.size, "from": str(folder)},
        )

    adopted, waiting = 0, False
    for version, path in _wheels(folder):
        if version not in times:
            times[version] = datetime.fromtimestamp(path.stat().st_mtime, UTC)
        try:
            _release, created = store.add(path, path.name, audit=entry, added_at=times[version])
        except (BadRelease, ReleaseConflict) as exc:
            _LOGGER.warning("old release folder: %s skipped: %s", path.name, exc)
            continue
        except (DomainError, OSError) as exc:  # the store is away: try again next start
            _LOGGER.warning("old release folder: %s not adopted yet: %s", path.name, exc)
            waiting = True
            continue
        adopted += created
    if adopted:
        _LOGGER.info("adopted %d releases from %s", adopted, folder)
    if not waiting:
        _LOGGER.info("old release folder set aside as %s", _set_aside(folder))
    return adopted

"""Writing system files under a root folder: atomically, with mode and owner.

Every write goes to a temporary file in the same folder, gets its mode and owner,
is fsynced and renamed over the old file, and the folder is fsynced: after a crash
or power cut there is the old file or the new one, never half of one. Paths are
always taken relative to ``root`` so that tests provision a folder, not this machine.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from clinicam.files import fsync_directory, write_atomically

_LOGGER = logging.getLogger(__name__)

SERVICE_ACCOUNT = "clinicam"


@dataclass(frozen=True)
class Owner:
    """A numeric user and group."""

    uid: int
    gid: int


def under(root: Path, path: PurePosixPath | str) -> Path:
    """``path`` (absolute, as on the device) inside ``root``."""
    return root / PurePosixPath(path).relative_to("/")


def _lookup(table: Path, name: str, field: int) -> int | None:
    try:
        lines = table.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    for line in lines:
        parts = line.split(":")
        if len(parts) > field and parts[0] == name and parts[field].isdigit():
            return int(parts[field])
    return None


def service_owner(root: Path) -> Owner | None:
    """The ``clinicam`` account of the system at ``root`` (from its passwd and group).

    ``clinicam:clinicam`` when the user exists (the appliance service runs as it and
    must read its files); ``root:clinicam`` when only the group exists; None when
    neither does or when we are not root (and could not change owners anyway).
    """
    if os.geteuid() != 0:
        return None
    uid = _lookup(root / "etc/passwd", SERVICE_ACCOUNT, 2)
    gid = _lookup(root / "etc/group", SERVICE_ACCOUNT, 2)
    if gid is None:
        return None
    return Owner(uid if uid is not None else 0, gid)


def ensure_dir(path: Path, *, mode: int, owner: Owner | None = None) -> None:
    """Create ``path`` (and parents) if missing; a new folder gets ``mode`` and ``owner``."""
    if path.is_dir():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.mkdir(mode=mode)
    os.chmod(path, mode)  # mkdir's mode is filtered by the umask
    if owner is not None:
        os.chown(path, owner.uid, owner.gid)
    fsync_directory(path.parent)


def install_file(path: Path, data: bytes, *, mode: int = 0o600, owner: Owner | None = None) -> None:
    """Replace ``path`` with ``data`` atomically, with ``mode`` and ``owner`` from the start."""
    write_atomically(
        path, data, mode=mode, owner=(owner.uid, owner.gid) if owner is not None else None
    )
    _LOGGER.debug("wrote %s (mode %o)", path, mode)


def install_symlink(path: Path, target: str) -> None:
    """Point the symlink ``path`` at ``target`` atomically (a new link renamed over it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.clinicam-new")
    tmp.unlink(missing_ok=True)
    os.symlink(target, tmp)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)
    _LOGGER.debug("linked %s -> %s", path, target)


def remove(path: Path) -> bool:
    """Delete ``path`` if it is there (and fsync its folder); True if it was."""
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    fsync_directory(path.parent)
    _LOGGER.debug("removed %s", path)
    return True

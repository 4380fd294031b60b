"""Upload staging files: given up promptly when the upload dies, swept when left over.

An upload is streamed to a file in ``state_dir/staging`` (records, snapshots, FHIR
bundles, releases) or an appliance's ``archive/<device>/incoming`` (back-filled
video). When the client goes away mid-body the request's own handler deletes its
file; when the client just goes silent (a rural link dropping without a FIN), a body
that sends nothing for :data:`UPLOAD_IDLE_S` is given up (408) and its file deleted.
What a crash leaves behind is swept: at start-up everything older than
:data:`AT_START_S`, then every :data:`SWEEP_INTERVAL_S` every file untouched for
:data:`LEFTOVER_S` (a live upload touches its file with every chunk). Replays being
played keep the longer :data:`REPLAY_MAX_AGE_S`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Iterable
from http import HTTPStatus
from pathlib import Path

from aiohttp import web

from clinicam.i18n import _
from server.errors import ApiError

_LOGGER = logging.getLogger(__name__)

STAGING_FOLDER = "staging"
UPLOAD_IDLE_S = 60.0
AT_START_S = 60.0  # nothing older can belong to a request of this process
LEFTOVER_S = 15 * 60.0
REPLAY_MAX_AGE_S = 6 * 3600.0
SWEEP_INTERVAL_S = 300.0
_LONG_LIVED = ("replay-",)  # played by the media hub for up to 30 minutes


async def body_chunks(
    request: web.Request, chunk_bytes: int, idle_s: float | None = None
) -> AsyncIterator[bytes]:
    """The request body in chunks; 408 if nothing arrives for ``idle_s`` seconds."""
    idle = UPLOAD_IDLE_S if idle_s is None else idle_s
    while True:
        try:
            async with asyncio.timeout(idle):
                chunk = await request.content.read(chunk_bytes)
        except TimeoutError:
            raise ApiError(
                HTTPStatus.REQUEST_TIMEOUT,
                _("the upload stalled: nothing arrived for {seconds} s", seconds=f"{idle:.0f}"),
            ) from None
        if not chunk:
            return
        yield chunk


def clean_staging(folder: Path, older_than_s: float, *, now: float | None = None) -> int:
    """Remove files in ``folder`` untouched for ``older_than_s`` (replays: the longer limit)."""
    if not folder.is_dir():
        return 0
    now = time.time() if now is None else now
    removed = 0
    for leftover in folder.iterdir():
        limit = older_than_s
        if leftover.name.startswith(_LONG_LIVED):
            limit = max(older_than_s, REPLAY_MAX_AGE_S)
        with contextlib.suppress(OSError):
            if leftover.is_file() and leftover.stat().st_mtime < now - limit:
                leftover.unlink()
                removed += 1
    if removed:
        _LOGGER.info("removed %d leftover upload/staging files from %s", removed, folder)
    return removed


def staging_folders(state_dir: Path, archive_root: Path) -> list[Path]:
    """Where uploads are staged: the staging folder and each appliance's incoming folder."""
    return [state_dir / STAGING_FOLDER, *sorted(archive_root.glob("*/incoming"))]


def sweep(folders: Iterable[Path], older_than_s: float) -> int:
    return sum(clean_staging(folder, older_than_s) for folder in folders)


async def sweep_forever(
    state_dir: Path,
    archive_root: Path,
    *,
    interval_s: float = SWEEP_INTERVAL_S,
    leftover_s: float = LEFTOVER_S,
) -> None:
    """At start-up and then every ``interval_s``: remove leftover staging files."""
    first = True
    while True:
        try:
            folders = staging_folders(state_dir, archive_root)
            await asyncio.to_thread(sweep, folders, AT_START_S if first else leftover_s)
        except Exception:
            _LOGGER.exception("staging sweep failed; retrying later")
        first = False
        await asyncio.sleep(interval_s)

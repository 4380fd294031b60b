"""``appliance.update`` on the appliance: fetch the release, hand it to the root updater.

The appliance runs unprivileged with a read-only ``/opt``, so it cannot install a
release itself. On the server's command it downloads the wheel the command names from
its own server (``/api/appliances/<device>/releases/<version>``, with its device
token; never from an address sent to it), checks the size and sha256 the command
gives and that the file is a Clinicam release wheel, and then writes
``update-request.json`` into its state folder. ``clinicam-update.path`` sees that file
and starts ``clinicam-update.service`` (root), which runs ``clinicam appliance update
--request`` on it: install beside the running release, switch, health-check, roll back.

The updater leaves ``update-result.json`` (installing → updated / rolled back /
failed); the appliance reports it in its state, so the admin page shows how it ended
even though the appliance itself was restarted in the middle.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
from pydantic import ValidationError

from clinicam.files import write_atomically
from clinicam.protocol import ApplianceUpdate, UpdateStatus
from clinicam.release import BadRelease, check_wheel, wheel_name
from firmware.config import ServerLinkConfig
from firmware.control.router import CommandFailed, Result

_LOGGER = logging.getLogger(__name__)
REQUEST_FILE = "update-request.json"
RESULT_FILE = "update-result.json"
UPDATES_DIR = "updates"
ATTEMPTS = 3
CHUNK = 1 << 16


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class DownloadRefused(Exception):
    """The server's file is not the release the command described (no retry)."""


class UpdateRequester:
    """Handles ``appliance.update`` and reports where the last update stands."""

    def __init__(
        self,
        server: ServerLinkConfig,
        device_id: str,
        state_dir: Path,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self._server = server
        self._base = f"{server.url}/api/appliances/{device_id}/releases"
        self._state_dir = state_dir
        self.on_change = on_change
        self._status: UpdateStatus | None = None  # while downloading, or when it failed here
        self._task: asyncio.Task[None] | None = None
        self.retry_pause_s = 2.0

    @property
    def request_file(self) -> Path:
        return self._state_dir / REQUEST_FILE

    @property
    def result_file(self) -> Path:
        return self._state_dir / RESULT_FILE

    def status(self) -> UpdateStatus | None:
        """The newest of: this process's own step, the updater's result file."""
        if self._status is not None and self._status.state == "downloading":
            return self._status
        pending = self._read(self.request_file)
        if pending is not None:
            return UpdateStatus(
                release=str(pending.get("release", "?"))[:40],
                state="waiting",
                detail="downloaded and checked; waiting for the updater service",
                at=str(pending.get("requested_at", ""))[:32],
            )
        result = self._read(self.result_file)
        if result is not None:
            try:
                from_updater = UpdateStatus.model_validate(result)
            except ValidationError:
                from_updater = None
            if from_updater is not None and (
                self._status is None or from_updater.at >= self._status.at
            ):
                return from_updater
        return self._status

    def fingerprint(self) -> tuple[object, ...]:
        """Changes whenever :meth:`status` may have (checked by the status loop)."""
        stamps: list[tuple[int, int] | None] = []
        for path in (self.request_file, self.result_file):
            try:
                stat = path.stat()
                stamps.append((stat.st_mtime_ns, stat.st_size))
            except OSError:
                stamps.append(None)
        return (self._status, *stamps)

    @staticmethod
    def _read(path: Path) -> dict[str, object] | None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    async def start(self, command: ApplianceUpdate) -> Result:
        """The command handler: refuse what cannot go ahead, else download in the background."""
        from clinicam import __version__

        if self._task is not None and not self._task.done():
            raise CommandFailed("an update is already being downloaded")
        if self.request_file.exists():
            raise CommandFailed("an update is already waiting for the updater service")
        if command.release == __version__:
            raise CommandFailed(f"release {command.release} is already running")
        self._set(command.release, "downloading", f"{command.size} bytes")
        self._task = asyncio.create_task(self._fetch(command), name=f"update-{command.release}")
        return {"accepted": True, "release": command.release}

    def _set(self, release: str, state: str, detail: str = "") -> None:
        self._status = UpdateStatus.model_validate(
            {"release": release, "state": state, "detail": detail[:300], "at": now_iso()}
        )
        self.on_change()

    async def _fetch(self, command: ApplianceUpdate) -> None:
        folder = self._state_dir / UPDATES_DIR
        final = folder / wheel_name(command.release)
        part = folder / f".{final.name}.part"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            await self._download_with_retries(command, part)
            await asyncio.to_thread(check_wheel, part, final.name)
            os.replace(part, final)
            for old in folder.iterdir():  # keep only the release being installed
                if old != final:
                    old.unlink(missing_ok=True)
            request = {
                "release": command.release,
                "wheel": final.name,
                "sha256": command.sha256,
                "size": command.size,
                "requested_by": command.requested_by,
                "command": command.id,
                "requested_at": now_iso(),
            }
            write_atomically(self.request_file, json.dumps(request, indent=1).encode())
            self.result_file.unlink(missing_ok=True)  # the previous update's outcome
            _LOGGER.info("release %s downloaded and checked: over to the updater", command.release)
            self._status = None
            self.on_change()
        except (DownloadRefused, BadRelease, OSError, aiohttp.ClientError, TimeoutError) as exc:
            part.unlink(missing_ok=True)
            _LOGGER.error("update to %s not possible: %s", command.release, exc)
            self._set(command.release, "failed", f"download: {exc}")

    async def _download_with_retries(self, command: ApplianceUpdate, part: Path) -> None:
        for attempt in range(1, ATTEMPTS + 1):
            try:
                await self._download(command, part)
                return
            except (aiohttp.ClientError, TimeoutError, ConnectionError) as exc:
                if attempt == ATTEMPTS:
                    raise
                _LOGGER.warning("release download attempt %d failed: %s", attempt, exc)
                await asyncio.sleep(self.retry_pause_s * attempt)

    async def _download(self, command: ApplianceUpdate, part: Path) -> None:
        headers = {"Authorization": f"Bearer {self._server.token.get_secret_value()}"}
        timeout = aiohttp.ClientTimeout(total=1800, sock_read=60)
        digest = hashlib.sha256()
        received = 0
        async with (
            aiohttp.ClientSession(timeout=timeout) as http,
            http.get(f"{self._base}/{command.release}", headers=headers) as resp,
        ):
            if resp.status != 200:
                raise DownloadRefused(f"HTTP {resp.status}: {(await resp.text())[:200]}")
            with part.open("wb") as out:
                async for block in resp.content.iter_chunked(CHUNK):
                    received += len(block)
                    if received > command.size:
                        raise DownloadRefused(f"the file is larger than the {command.size} bytes")
                    digest.update(block)
                    out.write(block)
                out.flush()
                os.fsync(out.fileno())
        if received != command.size:
            raise DownloadRefused(f"got {received} bytes, expected {command.size}")
        if digest.hexdigest() != command.sha256:
            raise DownloadRefused("sha256 differs from the one in the command")

    async def close(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

"""Snapshots go to the server's records, even if the server is away for a while.

Each still is on the SD card as ``<name>.jpg`` with a ``<name>.jpg.json`` sidecar
(written last, so a sidecar means the still is complete). The uploader posts every
still that has a sidecar and no ``.filed`` marker to the server with the device's
token, oldest first; a server that is down or busy is retried with backoff, and a
still the server refuses for good (4xx other than a duplicate) is marked ``.refused``
so it is not retried forever. Nothing is deleted: the clinic decides about local
retention.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from pathlib import Path

import aiohttp

from clinicam.files import write_atomically
from firmware.config import ServerLinkConfig

_LOGGER = logging.getLogger(__name__)

FILED = ".filed"
REFUSED = ".refused"
SNAPSHOT_HEADER = "X-Clinicam-Snapshot"


class SnapshotUploader:
    """Files the appliance's snapshots into the patient's record on the server."""

    def __init__(self, server: ServerLinkConfig, device_id: str, directory: Path) -> None:
        self._server = server
        self._url = f"{server.url}/api/appliances/{device_id}/snapshots"
        self._dir = directory
        self.wake = asyncio.Event()

    def pending(self) -> list[Path]:
        """Complete stills not yet filed or refused, oldest first."""
        if not self._dir.is_dir():
            return []
        out = []
        for sidecar in sorted(self._dir.glob("*.jpg.json")):
            still = sidecar.with_suffix("")
            done = still.with_name(still.name + FILED).exists()
            refused = still.with_name(still.name + REFUSED).exists()
            if still.is_file() and not done and not refused:
                out.append(still)
        return out

    async def _post(self, http: aiohttp.ClientSession, still: Path) -> bool:
        """True when the still is settled (filed, duplicate or refused for good)."""
        sidecar = still.with_name(still.name + ".json")
        info = json.loads(sidecar.read_text())
        headers = {
            "Authorization": f"Bearer {self._server.token.get_secret_value()}",
            "Content-Type": "image/jpeg",
            SNAPSHOT_HEADER: json.dumps(info),
        }
        async with http.post(self._url, data=still.read_bytes(), headers=headers) as resp:
            text = await resp.text()
            if resp.status in (200, 201, 409):
                write_atomically(still.with_name(still.name + FILED), text.encode())
                _LOGGER.info("snapshot %s filed on the server (%d)", still.name, resp.status)
                return True
            if 400 <= resp.status < 500 and resp.status not in (401, 408, 429):
                write_atomically(still.with_name(still.name + REFUSED), text.encode())
                _LOGGER.error("server refused snapshot %s: %s %s", still.name, resp.status, text)
                return True
            _LOGGER.warning("snapshot %s not filed yet: %s %s", still.name, resp.status, text)
            return False

    async def upload_pending(self, http: aiohttp.ClientSession) -> bool:
        """Try every pending still once; True when none is left."""
        for still in self.pending():
            if not await self._post(http, still):
                return False
        return True

    async def run(self) -> None:
        """Upload when woken (a new still) or on retry; runs until cancelled."""
        delay = 1.0
        timeout = aiohttp.ClientTimeout(total=60)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            while True:
                try:
                    settled = await self.upload_pending(http)
                except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
                    _LOGGER.warning("snapshot upload failed: %s", exc or type(exc).__name__)
                    settled = False
                self.wake.clear()
                wait = None if settled else delay
                delay = 1.0 if settled else min(delay * 2, self._server.reconnect_max_s)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await self.wake.wait()

"""Back-fill (R17): after an outage the appliance sends the archive what it missed.

While the stream is up, every ``backfill_check_s`` the appliance asks the server which
runs of time its archive holds over the span of the local recording
(:mod:`firmware.media.recorder`) and uploads each closed local segment that covers
time outside those runs, oldest first. The server keeps only the part it lacks and
answers "already archived" for the rest, so a repeated upload (after a crash, or two
checks in a row) never duplicates footage. An upload the server refuses as malformed is
not retried; one that fails on the network is, at the next check.

A back-fill must not take the link from the live call it follows: right after an
outage it is the call that matters, and a segment sent at TCP's pace fills a 3G
uplink's queue for tens of seconds (the camera's frames and the camera commands wait
behind it). So an adaptive stream paces the upload: it is sent in small chunks at
:data:`SHARE` of what the camera's encoder is allowed now (never below
:data:`MIN_KBPS`), and the allowance is read again for every chunk, so when the link
controller cuts the stream, the back-fill slows down with it. A fixed stream (no link
estimate) uploads at TCP's pace, as before.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from pathlib import Path

import aiohttp

from firmware.config import RecorderConfig, ServerLinkConfig
from firmware.media.recorder import LocalRecorder, LocalSegment

_LOGGER = logging.getLogger(__name__)
MIN_GAP = timedelta(milliseconds=500)
SHARE = 0.35  # of the live stream's allowed bitrate
MIN_KBPS = 24.0
CHUNK_BYTES = 4096
LiveKbps = Callable[[], float | None]  # the camera's allowed bitrate now; None: not adaptive


def _missing(segment: LocalSegment, runs: list[tuple[datetime, datetime]]) -> timedelta:
    """How much of ``segment`` the archive's ``runs`` do not cover."""
    missing, at = timedelta(0), segment.start_utc
    for start, end in sorted(runs):
        if end <= at:
            continue
        if start >= segment.end_utc:
            break
        missing += max(timedelta(0), start - at)
        at = max(at, end)
    return missing + max(timedelta(0), segment.end_utc - at)


class BackFiller:
    """Compares the local recording with the archive and uploads what it lacks."""

    def __init__(
        self,
        server: ServerLinkConfig,
        device_id: str,
        recorder: LocalRecorder,
        config: RecorderConfig,
        connected: asyncio.Event,
        live_kbps: LiveKbps = lambda: None,
    ) -> None:
        self._base = f"{server.url}/api/appliances/{device_id}/archive"
        self._headers = {"Authorization": f"Bearer {server.token.get_secret_value()}"}
        self._recorder = recorder
        self._config = config
        self._connected = connected
        self._live_kbps = live_kbps
        self._done: set[Path] = set()
        self.uploaded = 0

    async def run(self) -> None:
        # A paced upload of a large segment may take minutes: bound the silences instead.
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=120)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            while True:
                await self._connected.wait()
                try:
                    await self.check(http)
                except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
                    _LOGGER.warning("back-fill check failed: %s", exc or type(exc).__name__)
                await asyncio.sleep(self._config.backfill_check_s)

    async def _coverage(
        self, http: aiohttp.ClientSession, start: datetime, end: datetime
    ) -> list[tuple[datetime, datetime]]:
        params = {"start": start.isoformat(), "end": end.isoformat()}
        async with http.get(f"{self._base}/coverage", params=params, headers=self._headers) as r:
            r.raise_for_status()
            body = await r.json()
        return [
            (datetime.fromisoformat(run["start"]), datetime.fromisoformat(run["end"]))
            for run in body["runs"]
        ]

    async def check(self, http: aiohttp.ClientSession) -> int:
        """One comparison; returns how many segments were sent."""
        segments = [s for s in self._recorder.segments() if s.path not in self._done]
        if not segments:
            return 0
        runs = await self._coverage(http, segments[0].start_utc, segments[-1].end_utc)
        sent = 0
        for segment in segments:
            if _missing(segment, runs) < MIN_GAP:
                self._done.add(segment.path)
                continue
            if not await self._upload(http, segment):
                break
            sent += 1
        self._done &= {s.path for s in self._recorder.segments()}  # forget what was dropped
        return sent

    async def _upload(self, http: aiohttp.ClientSession, segment: LocalSegment) -> bool:
        """Send one segment; False stops this round (the server cannot take any now)."""
        params = {"start": segment.start_utc.isoformat()}
        data = await asyncio.to_thread(segment.path.read_bytes)
        async with http.post(
            f"{self._base}/segments", params=params, data=self._paced(data), headers=self._headers
        ) as resp:
            body = await resp.json(content_type=None)
            if resp.status in (200, 201):
                self._done.add(segment.path)
                self.uploaded += resp.status == 201
                _LOGGER.info("back-fill %s: %s", segment.path.name, body)
                return True
            if resp.status in (413, 422):  # this file will never be accepted
                self._done.add(segment.path)
                _LOGGER.error("back-fill of %s refused: %s", segment.path.name, body)
                return True
            _LOGGER.warning("back-fill paused (HTTP %d): %s", resp.status, body)
            return False

    def pace_kbps(self) -> float | None:
        """The rate a back-fill may take now (None: as fast as TCP goes)."""
        live = self._live_kbps()
        return None if live is None else max(MIN_KBPS, SHARE * live)

    async def _paced(self, data: bytes) -> AsyncIterator[bytes]:
        """``data`` in chunks, each sent when the pace so far allows it."""
        due = time.monotonic()
        for offset in range(0, len(data), CHUNK_BYTES):
            chunk = data[offset : offset + CHUNK_BYTES]
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            yield chunk
            kbps = self.pace_kbps()
            now = time.monotonic()
            due = now if kbps is None else max(due, now - 1.0) + len(chunk) * 8 / (kbps * 1000)

"""A media worker's heartbeat: it announces the worker and renews all its leases.

When Redis is away the worker keeps serving what it runs (its rooms go on), logs the
outage once, and on the first beat that gets through takes back the leases that
vanished meanwhile; a consultation that another worker took over is reported lost
(``on_lost``), so the worker can close its copy of that room.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from server.cluster.store import CoordinationUnavailable
from server.cluster.workers import Beat, WorkerInfo, WorkerRegistry

_LOGGER = logging.getLogger(__name__)


class WorkerHeartbeat:
    """Beats every ``heartbeat_ms`` with a TTL of ``lease_ms`` until stopped."""

    def __init__(
        self,
        registry: WorkerRegistry,
        info: WorkerInfo,
        *,
        lease_ms: int = 3000,
        heartbeat_ms: int = 1000,
        on_lost: Callable[[frozenset[str]], None] | None = None,
    ) -> None:
        self.registry = registry
        self.info = info
        self.lease_ms = lease_ms
        self.heartbeat_ms = heartbeat_ms
        self.on_lost = on_lost
        self.reachable = True
        self.last_beat: float | None = None  # loop time of the last beat that got through
        self._held: frozenset[str] = frozenset()
        self._task: asyncio.Task[None] | None = None

    @property
    def held(self) -> frozenset[str]:
        """The consultations this worker serves (as of its last beat)."""
        return self._held

    async def beat(self) -> Beat:
        """One beat now; raises :class:`CoordinationUnavailable` if Redis is away."""
        beat = await self.registry.heartbeat(self.info, self.lease_ms, sorted(self._held))
        self._held = beat.held
        self.last_beat = asyncio.get_running_loop().time()
        if beat.lost and self.on_lost is not None:
            self.on_lost(beat.lost)
        return beat

    def forget(self, consultation_id: str) -> None:
        """The worker stopped serving it (after releasing its lease)."""
        self._held = self._held - {consultation_id}

    async def start(self) -> None:
        """The first beat now (so the worker is alive on return), then in the background."""
        if self._task is not None:
            return
        with contextlib.suppress(CoordinationUnavailable):
            await self._beat_logged()
        self._task = asyncio.create_task(self._run(), name=f"heartbeat {self.info.worker_id}")

    async def stop(self, *, withdraw: bool = True) -> None:
        """Stop beating; ``withdraw`` also says so in Redis (consultations re-pin at once)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if withdraw:
            with contextlib.suppress(CoordinationUnavailable):
                await self.registry.withdraw(self.info.worker_id)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        period = self.heartbeat_ms / 1000
        next_at = loop.time() + period
        while True:
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            next_at = max(next_at + period, loop.time())
            with contextlib.suppress(CoordinationUnavailable):
                await self._beat_logged()

    async def _beat_logged(self) -> None:
        try:
            beat = await self.beat()
        except CoordinationUnavailable:
            if self.reachable:
                self.reachable = False
                _LOGGER.warning(
                    "worker %s: the coordination store (Redis) is unreachable; "
                    "keeping the %d consultations it runs, no renewals until it is back",
                    self.info.worker_id,
                    len(self._held),
                )
            raise
        if not self.reachable:
            self.reachable = True
            _LOGGER.warning(
                "worker %s: the coordination store is back; holding %d consultations, "
                "%d taken over by other workers meanwhile",
                self.info.worker_id,
                len(beat.held),
                len(beat.lost),
            )

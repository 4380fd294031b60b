"""Leases pinning each live consultation to one media worker, so a room never spans two.

A lease is ``<prefix>lease:<consultation>`` = the holding worker's id, taken with
``SET NX PX`` and kept alive by the holder's heartbeat. Renewing and releasing compare
the holder inside Redis (Lua), never get-then-set. :meth:`LeaseBook.pin` is what a web
front calls before it routes an offer or a room socket: the holder if it is alive, else
the least-loaded live worker takes the lease; of two fronts racing, one wins and the
other gets the winner.
"""

from __future__ import annotations

import logging
from collections import OrderedDict

from redis.asyncio import Redis

from clinicam.i18n import _
from server.cluster.store import (
    NO_WORKER,
    CoordinationUnavailable,
    Keys,
    NoWorkerAvailable,
    guarded,
)
from server.cluster.workers import WorkerInfo, WorkerRegistry

# KEYS: lease, owned. ARGV: worker, ttl, consultation.
_ACQUIRE = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  redis.call('SADD', KEYS[2], ARGV[3])
  if redis.call('PTTL', KEYS[2]) < tonumber(ARGV[2]) then
    redis.call('PEXPIRE', KEYS[2], ARGV[2])
  end
  return 1
end
return 0
"""

# KEYS: lease. ARGV: worker, ttl. Compare-and-extend.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

# KEYS: lease, owned. ARGV: worker, consultation. Compare-and-delete.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('SREM', KEYS[2], ARGV[2])
  return 1
end
return 0
"""

# KEYS: lease, the holder's presence, the holder's owned set. ARGV: holder, consultation.
# Drops a lease whose holder is still that worker and still dead (its presence expired
# or withdrawn before the lease's own TTL ran out).
_CLEAR_DEAD = """
if redis.call('GET', KEYS[1]) == ARGV[1] and redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('DEL', KEYS[1])
  redis.call('SREM', KEYS[3], ARGV[2])
  return 1
end
return 0
"""

_PIN_ATTEMPTS = 4
_KNOWN_MAX = 10_000  # consultations a front remembers the worker of (oldest forgotten)
_LOGGER = logging.getLogger(__name__)


def least_loaded(workers: list[WorkerInfo]) -> WorkerInfo:
    """The worker with the most room relative to its size (ties: the lower id)."""
    open_ = [w for w in workers if w.load < w.capacity]
    if not open_:
        raise NoWorkerAvailable(
            _("No media worker can take a new consultation now."), code=NO_WORKER
        )
    return min(open_, key=lambda w: (w.load / w.capacity, w.load, w.worker_id))


class LeaseBook:
    """Who holds which consultation; pinning a consultation to a live worker."""

    def __init__(self, registry: WorkerRegistry, *, lease_ms: int = 3000) -> None:
        self.registry = registry
        self.redis: Redis = registry.redis
        self.keys: Keys = registry.keys
        self.lease_ms = lease_ms
        self._acquire = self.redis.register_script(_ACQUIRE)
        self._renew = self.redis.register_script(_RENEW)
        self._release = self.redis.register_script(_RELEASE)
        self._clear_dead = self.redis.register_script(_CLEAR_DEAD)
        # The last worker seen for each consultation, for when Redis is away.
        self._known: OrderedDict[str, WorkerInfo] = OrderedDict()

    async def acquire(
        self, consultation_id: str, worker_id: str, ttl_ms: int | None = None
    ) -> bool:
        """Take the lease for ``worker_id`` if nobody holds it (``SET NX PX``)."""
        ttl = ttl_ms or self.lease_ms
        keys = [self.keys.lease(consultation_id), self.keys.owned(worker_id)]
        async with guarded():
            taken = await self._acquire(keys=keys, args=[worker_id, ttl, consultation_id])
        return bool(taken)

    async def renew(self, consultation_id: str, worker_id: str, ttl_ms: int | None = None) -> bool:
        """Extend the lease; only its holder can (False: not, or no longer, the holder)."""
        ttl = ttl_ms or self.lease_ms
        async with guarded():
            done = await self._renew(keys=[self.keys.lease(consultation_id)], args=[worker_id, ttl])
        return bool(done)

    async def release(self, consultation_id: str, worker_id: str) -> bool:
        """Give the lease up (the consultation ended); only its holder can."""
        self._known.pop(consultation_id, None)
        keys = [self.keys.lease(consultation_id), self.keys.owned(worker_id)]
        async with guarded():
            done = await self._release(keys=keys, args=[worker_id, consultation_id])
        return bool(done)

    async def holder(self, consultation_id: str) -> str | None:
        """The worker holding the lease now, alive or not (None: nobody)."""
        async with guarded():
            value = await self.redis.get(self.keys.lease(consultation_id))
        return None if value is None else str(value)

    async def remaining_ms(self, consultation_id: str) -> int | None:
        """How long the lease lasts without a renewal (None: no lease)."""
        async with guarded():
            left = int(await self.redis.pttl(self.keys.lease(consultation_id)))
        return left if left >= 0 else None

    async def pin(self, consultation_id: str) -> WorkerInfo:
        """The worker that runs this consultation, pinning it to one if need be.

        Raises :class:`~server.cluster.store.NoWorkerAvailable` when no live worker has
        room. When Redis is away, a consultation this book pinned or found before keeps
        its worker (running ones go on: a client reconnecting is sent where it was) and
        any other raises :class:`~server.cluster.store.CoordinationUnavailable`.
        """
        try:
            pinned = await self._pin(consultation_id)
        except CoordinationUnavailable:
            known = self._known.get(consultation_id)
            if known is None:
                raise
            _LOGGER.warning(
                "coordination store unreachable: consultation %s stays on %s as last seen",
                consultation_id,
                known.worker_id,
            )
            return known
        self._known[consultation_id] = pinned
        self._known.move_to_end(consultation_id)
        while len(self._known) > _KNOWN_MAX:
            self._known.popitem(last=False)
        return pinned

    async def _pin(self, consultation_id: str) -> WorkerInfo:
        for _attempt in range(_PIN_ATTEMPTS):
            holder = await self.holder(consultation_id)
            if holder is not None:
                alive = await self.registry.get(holder)
                if alive is not None:
                    return alive
                await self._drop_dead(consultation_id, holder)
            candidate = least_loaded(await self.registry.alive())
            if await self.acquire(consultation_id, candidate.worker_id):
                return WorkerInfo(
                    candidate.worker_id, candidate.url, candidate.capacity, candidate.load + 1
                )
            # Another front pinned it meanwhile: the next round returns its choice.
        raise NoWorkerAvailable(
            _("The media workers are busy assigning this consultation; try again."),
            code=NO_WORKER,
        )

    async def _drop_dead(self, consultation_id: str, holder: str) -> None:
        keys = [
            self.keys.lease(consultation_id),
            self.keys.worker(holder),
            self.keys.owned(holder),
        ]
        async with guarded():
            await self._clear_dead(keys=keys, args=[holder, consultation_id])

"""Media workers announcing themselves: who is alive, where, how full.

A worker's presence is a key with a TTL (``lease_ms``) that its heartbeat rewrites; the
same heartbeat renews the leases of every consultation pinned to it, atomically (one Lua
script), so a worker is alive exactly as long as its leases are.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, cast

from redis.asyncio import Redis

from server.cluster.store import Keys, guarded

# KEYS: worker, workers, owned. ARGV: worker id, announcement, ttl, lease prefix, then the
# consultations the worker serves (it reclaims them if their leases vanished, e.g. after
# Redis came back empty). Returns {held, lost}: lost ones are held by another worker now.
_BEAT = """
local wid, ttl, prefix = ARGV[1], ARGV[3], ARGV[4]
redis.call('SET', KEYS[1], ARGV[2], 'PX', ttl)
redis.call('SADD', KEYS[2], wid)
local held, lost, seen = {}, {}, {}
for i = 5, #ARGV do
  local cid = ARGV[i]
  seen[cid] = true
  local key = prefix .. cid
  local holder = redis.call('GET', key)
  if holder == wid or (not holder and redis.call('SET', key, wid, 'NX', 'PX', ttl)) then
    redis.call('PEXPIRE', key, ttl)
    redis.call('SADD', KEYS[3], cid)
    held[#held + 1] = cid
  else
    redis.call('SREM', KEYS[3], cid)
    lost[#lost + 1] = cid
  end
end
for _, cid in ipairs(redis.call('SMEMBERS', KEYS[3])) do
  if not seen[cid] then
    local key = prefix .. cid
    if redis.call('GET', key) == wid then
      redis.call('PEXPIRE', key, ttl)
      held[#held + 1] = cid
    else
      redis.call('SREM', KEYS[3], cid)
    end
  end
end
redis.call('PEXPIRE', KEYS[3], ttl)
return {held, lost}
"""

# KEYS: workers. ARGV: worker prefix, owned prefix. Live workers with their load; ids
# whose presence expired are dropped from the set.
_ALIVE = """
local out = {}
for _, wid in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local info = redis.call('GET', ARGV[1] .. wid)
  if info then
    out[#out + 1] = {wid, info, redis.call('SCARD', ARGV[2] .. wid)}
  else
    redis.call('SREM', KEYS[1], wid)
  end
end
return out
"""


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """A media worker as the fronts see it.

    ``load`` is the number of consultations pinned to it (counted in Redis, so a pin
    shows at once); ``capacity`` is the most it takes.
    """

    worker_id: str
    url: str
    capacity: int
    load: int = 0

    def announcement(self) -> str:
        return json.dumps({"url": self.url, "capacity": self.capacity}, sort_keys=True)

    @classmethod
    def parse(cls, worker_id: str, announcement: str, load: int) -> WorkerInfo:
        data = json.loads(announcement)
        return cls(worker_id, str(data["url"]), int(data["capacity"]), load)


@dataclass(frozen=True, slots=True)
class Beat:
    """What one heartbeat found: the consultations still held, and those another took."""

    held: frozenset[str]
    lost: frozenset[str]


class WorkerRegistry:
    """Announcing workers and listing the live ones."""

    def __init__(self, redis: Redis, keys: Keys | None = None) -> None:
        self.redis = redis
        self.keys = keys or Keys()
        self._beat = redis.register_script(_BEAT)
        self._alive = redis.register_script(_ALIVE)

    async def heartbeat(self, info: WorkerInfo, ttl_ms: int, serving: Iterable[str] = ()) -> Beat:
        """Announce ``info`` for ``ttl_ms`` and renew every lease the worker holds.

        ``serving`` are the consultations the worker runs: a lease of theirs that vanished
        (expired during an outage, Redis restarted empty) is taken again if free.
        """
        keys = self.keys
        async with guarded():
            raw = await self._beat(
                keys=[keys.worker(info.worker_id), keys.workers, keys.owned(info.worker_id)],
                args=[info.worker_id, info.announcement(), ttl_ms, keys.lease_prefix, *serving],
            )
        held, lost = cast("list[list[str]]", raw)
        return Beat(frozenset(held), frozenset(lost))

    async def withdraw(self, worker_id: str) -> None:
        """A worker leaving cleanly: it is dead at once, its consultations re-pin now."""
        async with guarded():
            await self.redis.delete(self.keys.worker(worker_id))
            await self.redis.srem(self.keys.workers, worker_id)

    async def alive(self) -> list[WorkerInfo]:
        """The live workers, by id, each with its current load."""
        keys = self.keys
        async with guarded():
            raw = await self._alive(
                keys=[keys.workers], args=[keys.worker_prefix, keys.owned_prefix]
            )
        rows = cast("list[list[Any]]", raw)
        found = [WorkerInfo.parse(str(wid), str(info), int(load)) for wid, info, load in rows]
        return sorted(found, key=lambda w: w.worker_id)

    async def get(self, worker_id: str) -> WorkerInfo | None:
        """One worker if it is alive (``load`` included), else None."""
        async with guarded():
            pipe = self.redis.pipeline(transaction=True)
            pipe.get(self.keys.worker(worker_id))
            pipe.scard(self.keys.owned(worker_id))
            announcement, load = await pipe.execute()
        if announcement is None:
            return None
        return WorkerInfo.parse(worker_id, str(announcement), int(load))

"""One object per process for the cluster: the Redis client, the registry and the leases."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from redis.asyncio import Redis

from server.cluster.heartbeat import WorkerHeartbeat
from server.cluster.leases import LeaseBook
from server.cluster.store import Keys, connect
from server.cluster.workers import WorkerInfo, WorkerRegistry
from server.cluster_config import ClusterConfig


@dataclass
class Coordination:
    """What a web front (pins) and a media worker (beats) share."""

    config: ClusterConfig
    redis: Redis
    registry: WorkerRegistry
    leases: LeaseBook

    @classmethod
    def open(cls, config: ClusterConfig) -> Coordination:
        """Connect lazily (nothing is sent until the first call)."""
        redis = connect(config.redis_url, timeout_s=max(0.2, config.heartbeat_ms / 1000))
        registry = WorkerRegistry(redis, Keys(config.key_prefix))
        return cls(config, redis, registry, LeaseBook(registry, lease_ms=config.lease_ms))

    def heartbeat(self, on_lost: Callable[[frozenset[str]], None] | None = None) -> WorkerHeartbeat:
        """This process's heartbeat as the media worker the configuration names."""
        config = self.config
        if config.worker_id is None or config.worker_url is None:
            raise ValueError("[cluster] names no worker_id/worker_url: this is a web front")
        info = WorkerInfo(config.worker_id, config.worker_url, config.capacity)
        return WorkerHeartbeat(
            self.registry,
            info,
            lease_ms=config.lease_ms,
            heartbeat_ms=config.heartbeat_ms,
            on_lost=on_lost,
        )

    async def close(self) -> None:
        await self.redis.aclose()

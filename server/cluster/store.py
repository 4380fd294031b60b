"""The coordination store (Redis): the client, the key names, and what "unreachable" means.

One Redis primary (Debian's ``redis-server``), not a Redis Cluster: the heartbeat's
script touches the keys of every lease its worker holds.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from redis import exceptions as redis_errors
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from clinicam.i18n import _
from server.domain_errors import Unavailable

UNREACHABLE = "coordination_unavailable"  # i18n: not for people (an error code)
NO_WORKER = "no_media_worker"  # i18n: not for people (an error code)


class CoordinationUnavailable(Unavailable):
    """Redis cannot be reached: nothing new can be pinned (the front answers 503)."""


class NoWorkerAvailable(Unavailable):
    """No live media worker has room for another consultation."""


def unreachable() -> CoordinationUnavailable:
    return CoordinationUnavailable(
        _("No new consultation can start: the coordination store is unreachable."),
        code=UNREACHABLE,
    )


# What says "the store is away" (as opposed to a bug in a script, which stays loud).
_AWAY = (
    redis_errors.ConnectionError,
    redis_errors.TimeoutError,
    redis_errors.ReadOnlyError,
    OSError,
)


@asynccontextmanager
async def guarded() -> AsyncIterator[None]:
    """Turn "Redis is away" into :class:`CoordinationUnavailable`."""
    try:
        yield
    except _AWAY as exc:
        raise unreachable() from exc


def connect(url: str, *, timeout_s: float = 1.0) -> Redis:
    """A client that fails fast: a heartbeat or a pin must not hang on a dead store."""
    return Redis.from_url(
        url,
        decode_responses=True,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry=Retry(ExponentialBackoff(cap=0.05, base=0.01), 2),
        health_check_interval=0,
    )


@dataclass(frozen=True, slots=True)
class Keys:
    """Every key name, under one prefix (several sites may share a Redis)."""

    prefix: str = "clinicam:"

    @property
    def workers(self) -> str:
        """The set of worker ids that announced themselves (pruned when they expire)."""
        return f"{self.prefix}workers"

    @property
    def worker_prefix(self) -> str:
        return f"{self.prefix}worker:"

    @property
    def lease_prefix(self) -> str:
        return f"{self.prefix}lease:"

    @property
    def owned_prefix(self) -> str:
        return f"{self.prefix}owned:"

    def worker(self, worker_id: str) -> str:
        """A live worker's announcement (JSON), expiring ``lease_ms`` after its last beat."""
        return self.worker_prefix + worker_id

    def lease(self, consultation_id: str) -> str:
        """The consultation's lease: the holding worker's id, with a TTL."""
        return self.lease_prefix + consultation_id

    def owned(self, worker_id: str) -> str:
        """The set of consultations pinned to a worker (its heartbeat renews them)."""
        return self.owned_prefix + worker_id

"""Telling the other processes of a site that the directory changed (Redis pub/sub).

Each process keeps the directory (accounts, appliances, consultations) in memory and
re-reads it after its own changes. With several processes, the one that changed the
tables publishes one message and every other one re-reads them: a consultation a chair
started on a web front is live on the media worker that runs its room a moment later,
and one that ended there closes. Messages carry nothing but the sender (the tables are
the truth); a message lost while Redis is away is made up for by a full reload when the
subscription comes back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis
from redis.exceptions import RedisError

from server.cluster.store import Keys

_LOGGER = logging.getLogger(__name__)

RETRY_S = 1.0
WAIT_S = 5.0


class DirectoryBus:
    """Publish "the directory changed"; hear the others' changes."""

    def __init__(self, url: str, keys: Keys) -> None:
        # Its own client: a subscription waits for messages as long as it takes, where
        # the coordination client gives up on any reply after a second.
        self.redis: Redis = Redis.from_url(
            url, decode_responses=True, socket_connect_timeout=1.0, health_check_interval=15
        )
        self.channel = f"{keys.prefix}directory"
        self.sender = secrets.token_hex(8)  # this process: its own messages are skipped

    async def publish(self) -> None:
        """Tell the others (a failure is logged: they catch up when Redis is back)."""
        try:
            await self.redis.publish(self.channel, self.sender)
        except (RedisError, OSError) as exc:
            _LOGGER.warning("could not tell the other processes of a directory change: %s", exc)

    async def listen(self, changed: Callable[[], Awaitable[None]]) -> None:
        """Call ``changed`` for each change another process announces, until cancelled;
        after each (re)subscription too, for what was missed meanwhile."""
        while True:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                await changed()
                while True:
                    message = await pubsub.get_message(
                        ignore_subscribe_messages=True, timeout=WAIT_S
                    )
                    if message is not None and str(message.get("data")) != self.sender:
                        await changed()
            except (RedisError, OSError) as exc:
                _LOGGER.warning("directory changes: Redis unreachable (%s); retrying", exc)
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()
            await asyncio.sleep(RETRY_S)

    async def close(self) -> None:
        await self.redis.aclose()


__all__ = ["DirectoryBus"]

"""Slow credential checks (argon2) off the event loop, in a small bounded pool.

A wrong password costs an argon2 verification on purpose; it must not cost the event
loop. Checks run on a dedicated pool of ``workers`` threads (argon2-cffi releases the
GIL) with at most ``max_waiting`` more queued behind them; beyond that a check is
refused at once (:class:`ChecksBusy`) instead of queueing without bound.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

DEFAULT_MAX_WAITING = 16


class ChecksBusy(Exception):
    """Too many slow checks are already waiting; try again shortly."""


def default_workers() -> int:
    """One thread per core, keeping one core for the event loop (at least one, at most 2)."""
    return max(1, min(2, (os.cpu_count() or 1) - 1))


class SlowChecks:
    """A bounded pool for CPU-heavy checks; ``run`` awaits one without blocking the loop."""

    def __init__(self, workers: int | None = None, max_waiting: int = DEFAULT_MAX_WAITING):
        self.workers = workers or default_workers()
        self._limit = self.workers + max_waiting
        self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="slow-check")
        self._lock = threading.Lock()
        self._in_pool = 0  # submitted and not yet finished (a cancelled caller's too)

    @property
    def in_pool(self) -> int:
        return self._in_pool

    def _finished(self, _: Future[Any]) -> None:
        with self._lock:
            self._in_pool -= 1

    async def run(self, check: Callable[..., T], *args: object) -> T:
        """``check(*args)`` on the pool; raises :class:`ChecksBusy` when the pool is full."""
        with self._lock:
            if self._in_pool >= self._limit:
                raise ChecksBusy("too many sign-in checks at once")
            self._in_pool += 1
        try:
            future = self._executor.submit(check, *args)
        except BaseException:
            with self._lock:
                self._in_pool -= 1
            raise
        future.add_done_callback(self._finished)
        return await asyncio.wrap_future(future)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

"""The one timing loop the benchmarks share: milliseconds per call, after a warm-up."""

from __future__ import annotations

import time
from collections.abc import Callable


def timed(
    fn: Callable[[], object],
    count: int,
    *,
    warmup: int = 0,
    before: Callable[[], None] | None = None,
) -> list[float]:
    """``count`` timings of ``fn`` in ms; ``before`` runs untimed ahead of each call."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(count):
        if before is not None:
            before()
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return samples

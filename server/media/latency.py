"""Per-stage latency of the live view, from the stage stamps of recently sent composites.

Every composite that leaves the server with an appliance frame in its live window adds
that frame's :class:`~clinicam.frametrace.FrameTrace` here. :meth:`LatencyStats.summary`
gives, over the last ``window`` composites, the median and 95th percentile of each step
(captured → encoded → sent → received → decoding → decoded → composed → composite
encoded → composite sent) and of the whole way, and how old the live frame was when its
composite left: ``/api/media/latency`` serves it, ``bench/glass_to_glass.py`` prints it.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from typing import Any

from clinicam.frametrace import FrameTrace, now_us

DEFAULT_WINDOW = 300


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def _figures(values: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(_percentile(values, 50), 1),
        "p95_ms": round(_percentile(values, 95), 1),
        "max_ms": round(max(values), 1),
    }


class LatencyStats:
    """A rolling window of complete traces (thread-safe: traces arrive from the loop)."""

    def __init__(self, window: int = DEFAULT_WINDOW) -> None:
        self._traces: deque[FrameTrace] = deque(maxlen=window)
        self._lock = threading.Lock()
        self.recorded = 0

    def record(self, trace: FrameTrace) -> None:
        with self._lock:
            self._traces.append(trace)
            self.recorded += 1

    def summary(self) -> dict[str, Any]:
        """Figures per step and in total over the window (empty dicts before any frame)."""
        with self._lock:
            traces = list(self._traces)
        steps: dict[str, list[float]] = {}
        totals: list[float] = []
        for trace in traces:
            for step, ms in trace.steps_ms().items():
                steps.setdefault(step, []).append(ms)
            first = trace.stamps.get("captured", trace.stamps.get("received"))
            last = trace.stamps.get("composite_sent")
            if first is not None and last is not None:
                totals.append((last - first) / 1000.0)
        return {
            "frames": len(traces),
            "steps": {step: _figures(values) for step, values in steps.items()},
            "total": _figures(totals) if totals else {},
            "newest": self._newest(traces[-1]) if traces else None,
        }

    @staticmethod
    def _newest(trace: FrameTrace) -> dict[str, float] | None:
        """The newest composite sent: how old its live frame was, and how long ago it left."""
        first = trace.stamps.get("captured", trace.stamps.get("received"))
        sent = trace.stamps.get("composite_sent")
        if first is None or sent is None:
            return None
        return {
            "live_age_ms": round((sent - first) / 1000.0, 1),
            "sent_ago_ms": round((now_us() - sent) / 1000.0, 1),
        }


class LoopLag:
    """How late the event loop wakes a task: the delay every packet and frame also sees.

    A task asks to sleep ``interval_s`` and measures how much longer it slept. A loop
    that runs codec work, or waits for the GIL behind codec threads, shows it here
    before anything else does.
    """

    def __init__(self, interval_s: float = 0.02, window: int = 500) -> None:
        self.interval_s = interval_s
        self._lags: deque[tuple[float, float]] = deque(maxlen=window)  # (when, lag ms)

    async def run(self) -> None:
        while True:
            asked = time.monotonic()
            await asyncio.sleep(self.interval_s)
            woke = time.monotonic()
            self._lags.append((woke, max(0.0, woke - asked - self.interval_s) * 1000.0))

    def summary(self) -> dict[str, float]:
        lags = [lag for _, lag in self._lags]
        return _figures(lags) if lags else {}

    def p95_since(self, seconds: float) -> float:
        """95th percentile of the lags measured in the last ``seconds`` (0 if none)."""
        since = time.monotonic() - seconds
        lags = [lag for when, lag in self._lags if when >= since]
        return _percentile(lags, 95) if lags else 0.0

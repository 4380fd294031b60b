"""Under CPU pressure, give up frames in the right order: webcams first, never the live view.

A hub that is too busy shows it in three places: the event loop wakes late
(:class:`~server.media.latency.LoopLag`), the patient's live decoder has to skip to a
keyframe, and the compositor misses ticks. :class:`MediaPressure` looks at those once a
second and moves along a ladder, one rung at a time, with hysteresis:

====  =====================================================================
rung  what the server asks for
====  =====================================================================
0     everything as configured
1     experts' webcams at 15 fps
2     experts' webcams at 5 fps and at most 360 lines
3     as 2, and composites at half their frame rate
====  =====================================================================

It climbs after ``climb_after`` pressured seconds in a row (and not sooner than
``settle_s`` after the last change, so a change can take effect first) and steps back
down after ``calm_after`` calm seconds. The patient's live view is never on the ladder:
its frames are decoded and composed as they come, whatever the rung.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

_LOGGER = logging.getLogger(__name__)

TOP_RUNG = 3
WEBCAM_FPS = {0: None, 1: 15, 2: 5, 3: 5}  # None: as configured
WEBCAM_MAX_HEIGHT = {0: None, 1: None, 2: 360, 3: 360}
COMPOSITE_RATE_SHARE = {0: 1.0, 1: 1.0, 2: 1.0, 3: 0.5}


@dataclass(frozen=True)
class PressureSample:
    """What one second looked like."""

    loop_lag_p95_ms: float
    live_frames_dropped: int  # by the patient's live decoder, skipping to a keyframe
    ticks: int  # composites made
    ticks_skipped: int  # composites not made because the previous one ran long


@dataclass(frozen=True)
class WebcamBudget:
    """What each expert's browser is asked to send."""

    fps: int
    max_height: int | None

    def to_json(self) -> dict[str, int | None]:
        return {"fps": self.fps, "max_height": self.max_height}


class MediaPressure:
    """The ladder's current rung, moved by one :class:`PressureSample` per second."""

    def __init__(
        self,
        *,
        lag_high_ms: float = 30.0,
        lag_calm_ms: float = 8.0,
        climb_after: int = 3,
        calm_after: int = 15,
        settle_s: int = 3,
        on_change: Callable[[int], None] = lambda rung: None,
    ) -> None:
        self.rung = 0
        self._lag_high = lag_high_ms
        self._lag_calm = lag_calm_ms
        self._climb_after = climb_after
        self._calm_after = calm_after
        self._settle = settle_s
        self._on_change = on_change
        self._pressured = 0
        self._calm = 0
        self._since_change = settle_s
        self.changes = 0

    def pressured(self, sample: PressureSample) -> bool:
        skipped_share = sample.ticks_skipped / max(1, sample.ticks + sample.ticks_skipped)
        return (
            sample.loop_lag_p95_ms > self._lag_high
            or sample.live_frames_dropped > 0
            or skipped_share > 0.1
        )

    def calm(self, sample: PressureSample) -> bool:
        return (
            sample.loop_lag_p95_ms < self._lag_calm
            and sample.live_frames_dropped == 0
            and sample.ticks_skipped == 0
        )

    def observe(self, sample: PressureSample) -> int:
        """Take one second's sample; returns the (possibly new) rung."""
        self._since_change += 1
        if self.pressured(sample):
            self._pressured, self._calm = self._pressured + 1, 0
        elif self.calm(sample):
            self._pressured, self._calm = 0, self._calm + 1
        else:
            self._pressured = self._calm = 0
        if (
            self._pressured >= self._climb_after
            and self._since_change >= self._settle
            and self.rung < TOP_RUNG
        ):
            self._move(self.rung + 1, sample)
        elif self._calm >= self._calm_after and self.rung > 0:
            self._move(self.rung - 1, sample)
        return self.rung

    def _move(self, rung: int, sample: PressureSample) -> None:
        _LOGGER.warning(
            "media load: rung %d → %d (loop lag p95 %.0f ms, live frames dropped %d, "
            "composites skipped %d)",
            self.rung,
            rung,
            sample.loop_lag_p95_ms,
            sample.live_frames_dropped,
            sample.ticks_skipped,
        )
        self.rung = rung
        self.changes += 1
        self._pressured = self._calm = 0
        self._since_change = 0
        self._on_change(rung)

    def webcam_budget(self, configured_fps: int) -> WebcamBudget:
        cap = WEBCAM_FPS[self.rung]
        fps = configured_fps if cap is None else min(configured_fps, cap)
        return WebcamBudget(fps, WEBCAM_MAX_HEIGHT[self.rung])

    @property
    def composite_rate_share(self) -> float:
        return COMPOSITE_RATE_SHARE[self.rung]

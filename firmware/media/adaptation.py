"""Uplink adaptation (R17): the appliance's encoder follows the clinic link.

The server's receiver feeds :class:`RateController` (the link logic is
:mod:`clinicam.adaptation`: bitrate first, then the rung, with hysteresis); this module
gives it the camera's ladder: the configured settings on top (adaptation only ever goes
below what the operator configured), then 720p15, 540p15, 360p15 and 360p10 where below
that, in the configured aspect ratio. The track asks it what to encode
(:meth:`RateController.settings`).
"""

from __future__ import annotations

from collections.abc import Callable

from clinicam.adaptation import (
    CEILING_SHARE,
    DOWN_HOLD_S,
    FLOOR_KBPS,
    REMB_SHARE,
    UP_HOLD_S,
    LinkRateController,
    Rung,
    min_kbps,
)
from firmware.media.output import StreamSettings

__all__ = ["DOWN_HOLD_S", "FLOOR_KBPS", "REMB_SHARE", "UP_HOLD_S", "RateController", "ladder"]

# Below the top, keyframes are rarer: each one is a burst that fills a slow link's queue,
# and a receiver that lost a picture asks for one (PLI) anyway.
LOW_RUNG_KEYFRAME_S = 4.0
# (height, fps) of the lower rungs, best first; each only where below the configured top.
LOWER_RUNGS = ((720, 15), (540, 15), (360, 15), (360, 10))


def ladder(top: StreamSettings) -> list[Rung]:
    """The rungs from the configured settings down to the floor (360 lines, 10 fps)."""
    rungs = [
        Rung(
            top.width,
            top.height,
            top.fps,
            min_kbps(top.width, top.height, top.fps),
            top.bitrate_kbps,
        )
    ]
    for height, fps in LOWER_RUNGS:
        last = rungs[-1]
        if height > last.height or fps > last.fps or (height, fps) == (last.height, last.fps):
            continue
        width = round(top.width * height / top.height / 2) * 2  # the configured aspect
        need = min_kbps(width, height, fps)
        ceiling = min(top.bitrate_kbps, max(FLOOR_KBPS, round(CEILING_SHARE * need)))
        rungs.append(Rung(width, height, fps, need, ceiling))
    return rungs


class RateController(LinkRateController):
    """The camera stream's controller: its ladder starts at the configured settings."""

    def __init__(self, top: StreamSettings, clock: Callable[[], float]) -> None:
        super().__init__(ladder(top), top.bitrate_kbps, clock)
        self.top = top

    def set_top(self, top: StreamSettings) -> None:
        """New configured settings (an operator's command): the ladder starts from them."""
        self.top = top
        self.set_rungs(ladder(top), top.bitrate_kbps)

    def settings(self) -> StreamSettings:
        """Size and frame rate of the current rung; its encoder's ceiling as bitrate."""
        rung = self.rungs[self.rung]
        keyframes = self.top.keyframe_interval_s
        if self.rung > 0:
            keyframes = max(keyframes, LOW_RUNG_KEYFRAME_S)
        return StreamSettings(rung.width, rung.height, rung.fps, rung.ceiling_kbps, keyframes)

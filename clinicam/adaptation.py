"""Link adaptation (R17): a target bitrate and a ladder rung from a receiver's feedback.

The receiver of a stream estimates its link from packet arrival times (REMB, a
delay-based estimate) and reports loss in its receiver reports; :class:`LinkRateController`
turns both into a target bitrate and a rung of a ladder (best first). The appliance's
camera stream (:mod:`firmware.media.adaptation`) and each expert's composite
(:mod:`server.media.downlink`) each have their own ladder:

* **Bitrate first.** Only an estimate that fell caps it (see
  :meth:`LinkRateController.on_remb`). It starts at :data:`START_KBPS` (or the top, if
  lower): a full 2.5 Mbit/s into a 3G link before any estimate fills its queue for
  seconds.
  The target moves every report: down at once to what the link
  carries (the REMB estimate less headroom for audio and retransmissions, and a loss
  cut above 10 % loss), up by at most 8 % a second while loss stays under 2 %.
* **Then the rung.** Each rung needs a minimum bitrate; below it the picture would turn
  to blocks, so fewer, smaller frames get the bits instead. Stepping down waits
  :data:`DOWN_HOLD_S` (at once when far below); stepping up needs the next rung's
  minimum with 25 % to spare for :data:`UP_HOLD_S`, and no step follows another within
  :data:`SETTLE_S`: a link that flaps every few seconds never sets the encoder
  oscillating.

Pure logic with an injected clock.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

BITS_PER_PIXEL = 0.06  # libx264 ultrafast baseline: blocky below this
CEILING_SHARE = 3.0  # a rung's encoder opens at ≤ 3× its minimum (bounds its keyframes)
REMB_SHARE = 0.85  # leave the rest of the estimate to audio, RTX and packet overhead
DROP_SHARE = 0.95  # an estimate this much below the last one means congestion
FLOOR_KBPS = 80
MAX_INCREASE_PER_S = 0.08
HIGH_LOSS = 0.10
LOW_LOSS = 0.02
DOWN_HOLD_S = 2.0
UP_HOLD_S = 8.0
SETTLE_S = 5.0
UP_MARGIN = 1.25
FAR_BELOW = 0.6  # a target under 60 % of the rung's minimum steps down at once
START_KBPS = 1000  # no estimate yet: a 3G link must not be flooded while one forms


@dataclass(frozen=True)
class Rung:
    width: int
    height: int
    fps: int
    min_kbps: int  # below this the rung looks worse than the next one down
    ceiling_kbps: int  # its encoder's ceiling (libx264 cannot go above the rate it opened at)


def min_kbps(width: int, height: int, fps: float) -> int:
    """The bitrate below which a picture of this size and rate turns to blocks."""
    return round(width * height * fps * BITS_PER_PIXEL / 1000)


@dataclass(frozen=True)
class LinkFigures:
    """What the controller knows about the link now (for telemetry and the room)."""

    target_kbps: int
    remb_kbps: int | None
    loss: float
    rtt_ms: float | None
    rung: int
    rungs: int


class LinkRateController:
    """Target bitrate and ladder rung from the receiver's feedback."""

    def __init__(self, rungs: Sequence[Rung], top_kbps: int, clock: Callable[[], float]) -> None:
        self._clock = clock
        self.rungs = list(rungs)
        self.top_kbps = top_kbps
        self.rung = 0
        self.target_kbps = float(min(top_kbps, START_KBPS))
        self.remb_kbps: float | None = None
        self._cap_kbps: float | None = None  # set once the estimate fell (congestion)
        self.loss = 0.0
        self.rtt_ms: float | None = None
        self.version = 0  # bumped when the rung changes
        now = clock()
        self._last_update = now
        self._last_step = now - SETTLE_S
        self._below_since: float | None = None
        self._above_since: float | None = None

    def set_rungs(self, rungs: Sequence[Rung], top_kbps: int) -> None:
        """A new ladder (new configured settings): start again from its top."""
        self.rungs = list(rungs)
        self.top_kbps = top_kbps
        self.rung = 0
        self.target_kbps = min(self.target_kbps, float(top_kbps))
        self.version += 1
        self._choose_rung(self._clock())

    # --- feedback -------------------------------------------------------------------
    def on_remb(self, bitrate_bps: int) -> None:
        """The receiver's estimate of what the link carries (REMB).

        A receiver's estimate is at most 1.5× what it receives, so a stream that sends
        less than it may (a still scene) gets a low estimate that says nothing about the
        link. Only a *falling* estimate (the receiver saw the queue grow) caps the
        target; from then on the cap follows the estimate up and down."""
        kbps = bitrate_bps / 1000
        fell = self.remb_kbps is not None and kbps < DROP_SHARE * self.remb_kbps
        if fell or self._cap_kbps is not None:
            self._cap_kbps = kbps * REMB_SHARE
        self.remb_kbps = kbps
        self._update()

    def on_report(self, fraction_lost: int, rtt_s: float | None) -> None:
        """A receiver report: loss since the last one (0–255 of 256) and round trip."""
        self.loss = max(0, min(255, fraction_lost)) / 256
        if rtt_s is not None:
            self.rtt_ms = rtt_s * 1000
        self._update()

    def _update(self) -> None:
        now = self._clock()
        elapsed = max(0.0, now - self._last_update)
        self._last_update = now
        target = self.target_kbps
        if self.loss > HIGH_LOSS:
            target *= 1 - 0.5 * self.loss
        elif self.loss < LOW_LOSS:
            target *= 1 + MAX_INCREASE_PER_S * min(elapsed, 1.0)
        if self._cap_kbps is not None:
            target = min(target, self._cap_kbps)
        self.target_kbps = max(FLOOR_KBPS, min(float(self.top_kbps), target))
        self._choose_rung(now)

    def _choose_rung(self, now: float) -> None:
        current = self.rungs[self.rung]
        lower = self.rung + 1 < len(self.rungs)
        if lower and self.target_kbps < current.min_kbps:
            self._above_since = None
            self._below_since = self._below_since if self._below_since is not None else now
            far = self.target_kbps < FAR_BELOW * current.min_kbps
            if far or now - self._below_since >= DOWN_HOLD_S:
                self._step(+1, now)
            return
        self._below_since = None
        if self.rung == 0:
            return
        upper = self.rungs[self.rung - 1]
        if self.target_kbps >= UP_MARGIN * upper.min_kbps:
            self._above_since = self._above_since if self._above_since is not None else now
            if now - self._above_since >= UP_HOLD_S and now - self._last_step >= SETTLE_S:
                self._step(-1, now)
        else:
            self._above_since = None

    def _step(self, direction: int, now: float) -> None:
        self.rung += direction
        self.version += 1
        self._last_step = now
        self._below_since = self._above_since = None

    def bitrate_kbps(self) -> int:
        """What the encoder should aim for now (within its rung's ceiling)."""
        return round(min(self.target_kbps, self.rungs[self.rung].ceiling_kbps))

    def figures(self) -> LinkFigures:
        return LinkFigures(
            target_kbps=round(self.target_kbps),
            remb_kbps=round(self.remb_kbps) if self.remb_kbps is not None else None,
            loss=round(self.loss, 3),
            rtt_ms=round(self.rtt_ms, 1) if self.rtt_ms is not None else None,
            rung=self.rung,
            rungs=len(self.rungs),
        )

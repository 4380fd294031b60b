"""Uplink adaptation: what the encoder is told for a given sequence of receiver feedback.

A fake clock drives the controller through the situations of a rural link: a good
link, a sudden drop, heavy loss, recovery, and a link that flaps every few seconds."""

from __future__ import annotations

from firmware.media.adaptation import (
    DOWN_HOLD_S,
    FLOOR_KBPS,
    REMB_SHARE,
    UP_HOLD_S,
    RateController,
    ladder,
)
from firmware.media.output import StreamSettings

TOP = StreamSettings(1280, 720, 15, 2500, 2.0)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _feed(
    ctl: RateController, clock: Clock, seconds: float, remb_kbps: float, lost: int = 0
) -> None:
    """Twice a second a REMB and a receiver report, as aiortc's receiver sends them."""
    for _ in range(round(seconds * 2)):
        clock.now += 0.5
        ctl.on_remb(round(remb_kbps * 1000))
        ctl.on_report(lost, 0.15)


def test_the_ladder_runs_from_the_configured_top_to_360p10() -> None:
    rungs = [(r.width, r.height, r.fps) for r in ladder(TOP)]
    assert rungs == [(1280, 720, 15), (960, 540, 15), (640, 360, 15), (640, 360, 10)]
    assert ladder(TOP)[0].ceiling_kbps == 2500
    small = [(r.width, r.height, r.fps) for r in ladder(StreamSettings(640, 480, 15, 800, 2.0))]
    assert small == [(640, 480, 15), (480, 360, 15), (480, 360, 10)], "aspect kept"


def test_a_good_link_keeps_the_configured_stream() -> None:
    clock = Clock()
    ctl = RateController(TOP, clock)
    _feed(ctl, clock, 20, remb_kbps=8000)
    assert ctl.rung == 0 and ctl.bitrate_kbps() == 2500
    assert ctl.settings() == TOP


def test_a_drop_to_3g_cuts_the_bitrate_at_once_and_the_rung_after_a_hold() -> None:
    clock = Clock()
    ctl = RateController(TOP, clock)
    _feed(ctl, clock, 5, remb_kbps=3000)
    _feed(ctl, clock, 0.5, remb_kbps=500)
    assert ctl.bitrate_kbps() <= round(500 * REMB_SHARE), "bitrate first, at once"
    _feed(ctl, clock, 10, remb_kbps=500)
    s = ctl.settings()
    assert (s.height, s.fps) == (360, 15), "15 fps kept: smaller frames get the bits"
    assert ctl.bitrate_kbps() <= round(500 * REMB_SHARE)


def test_heavy_loss_cuts_the_rate_even_when_the_estimate_is_high() -> None:
    clock = Clock()
    ctl = RateController(TOP, clock)
    _feed(ctl, clock, 5, remb_kbps=5000, lost=64)  # 25 % loss
    assert ctl.bitrate_kbps() < 800 and ctl.rung >= 1
    _feed(ctl, clock, 30, remb_kbps=5000, lost=128)
    assert ctl.bitrate_kbps() == FLOOR_KBPS and ctl.rung == len(ctl.rungs) - 1


def test_recovery_climbs_gradually_and_back_to_the_top() -> None:
    clock = Clock()
    ctl = RateController(TOP, clock)
    _feed(ctl, clock, 1, remb_kbps=2000)
    _feed(ctl, clock, 10, remb_kbps=150)
    assert ctl.rung == len(ctl.rungs) - 1
    before = ctl.target_kbps
    _feed(ctl, clock, 1, remb_kbps=10_000)
    assert ctl.target_kbps <= before * 1.1, "at most 8 % a second up"
    assert ctl.rung == len(ctl.rungs) - 1, "no step up before the hold"
    _feed(ctl, clock, 60, remb_kbps=10_000)
    assert ctl.rung == 0 and ctl.bitrate_kbps() == 2500


def test_a_flapping_link_does_not_set_the_encoder_oscillating() -> None:
    clock = Clock()
    ctl = RateController(TOP, clock)
    _feed(ctl, clock, 1, remb_kbps=3000)
    _feed(ctl, clock, 10, remb_kbps=600)
    settled = ctl.version
    for _ in range(20):  # two minutes: 3 s bad, 3 s good
        _feed(ctl, clock, 3, remb_kbps=600)
        _feed(ctl, clock, 3, remb_kbps=3000)
    assert ctl.version - settled <= 1, f"{ctl.version - settled} rung changes while flapping"


def test_a_short_dip_changes_the_bitrate_but_not_the_rung() -> None:
    clock = Clock()
    ctl = RateController(TOP, clock)
    _feed(ctl, clock, 5, remb_kbps=8000)
    _feed(ctl, clock, DOWN_HOLD_S - 1, remb_kbps=700)  # below 829, above 60 % of it
    assert ctl.rung == 0 and ctl.bitrate_kbps() < 700
    assert UP_HOLD_S > DOWN_HOLD_S


def test_new_operator_settings_restart_the_ladder_from_them() -> None:
    clock = Clock()
    ctl = RateController(TOP, clock)
    _feed(ctl, clock, 1, remb_kbps=3000)
    _feed(ctl, clock, 10, remb_kbps=500)
    before = ctl.version
    ctl.set_top(StreamSettings(640, 360, 15, 600, 2.0))
    assert ctl.version > before and ctl.rungs[0].height == 360
    assert ctl.settings().height == 360 and ctl.bitrate_kbps() <= 600


def test_a_low_estimate_of_a_still_scene_is_no_reason_to_step_down() -> None:
    """A receiver estimates at most 1.5× what it gets: a stream that sends little (a still
    picture) gets a low, rising estimate, which says nothing about the link."""
    clock = Clock()
    ctl = RateController(TOP, clock)
    for step in range(40):
        clock.now += 0.5
        ctl.on_remb(round((300 + 5 * step) * 1000))
        ctl.on_report(0, 0.01)
    assert ctl.rung == 0 and ctl.bitrate_kbps() > 1000

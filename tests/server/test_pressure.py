"""The load ladder: webcams first, composites next, back down when calm; never jittery."""

from __future__ import annotations

from server.media.pressure import MediaPressure, PressureSample, WebcamBudget

BUSY = PressureSample(loop_lag_p95_ms=60.0, live_frames_dropped=0, ticks=30, ticks_skipped=0)
DROPPING = PressureSample(loop_lag_p95_ms=2.0, live_frames_dropped=3, ticks=30, ticks_skipped=0)
SKIPPING = PressureSample(loop_lag_p95_ms=2.0, live_frames_dropped=0, ticks=20, ticks_skipped=10)
CALM = PressureSample(loop_lag_p95_ms=1.0, live_frames_dropped=0, ticks=30, ticks_skipped=0)
MIDDLING = PressureSample(loop_lag_p95_ms=15.0, live_frames_dropped=0, ticks=30, ticks_skipped=0)


def test_each_sign_of_overload_counts() -> None:
    ladder = MediaPressure()
    assert all(ladder.pressured(s) for s in (BUSY, DROPPING, SKIPPING))
    assert not ladder.pressured(CALM) and ladder.calm(CALM)
    assert not ladder.pressured(MIDDLING) and not ladder.calm(MIDDLING)


def test_climbs_one_rung_at_a_time_in_the_right_order() -> None:
    changes: list[int] = []
    ladder = MediaPressure(climb_after=2, settle_s=3, on_change=changes.append)
    assert ladder.webcam_budget(30) == WebcamBudget(30, None)
    rungs = [ladder.observe(BUSY) for _ in range(12)]
    assert rungs[0] == 0, "one busy second is not a trend"
    assert changes == [1, 2, 3], "never skips a rung, stops at the top"
    assert rungs.index(2) - rungs.index(1) >= 3, "each change gets time to take effect"
    assert ladder.webcam_budget(30) == WebcamBudget(5, 360)
    assert ladder.composite_rate_share == 0.5


def test_webcams_go_first_and_composites_last() -> None:
    ladder = MediaPressure(climb_after=1, settle_s=0)
    ladder.observe(BUSY)
    assert ladder.webcam_budget(30).fps == 15 and ladder.composite_rate_share == 1.0
    ladder.observe(BUSY)
    assert ladder.webcam_budget(30) == WebcamBudget(5, 360)
    assert ladder.composite_rate_share == 1.0
    assert ladder.webcam_budget(4).fps == 4, "never asks for more than configured"


def test_steps_down_only_after_a_long_calm_and_middling_holds() -> None:
    ladder = MediaPressure(climb_after=1, settle_s=0, calm_after=5)
    for _ in range(3):
        ladder.observe(BUSY)
    assert ladder.rung == 3
    for _ in range(4):
        ladder.observe(CALM)
    ladder.observe(MIDDLING)  # neither: the calm streak starts again
    for _ in range(4):
        ladder.observe(CALM)
    assert ladder.rung == 3
    ladder.observe(CALM)
    assert ladder.rung == 2

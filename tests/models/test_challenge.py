"""Champion/challenger rule (R9): promoted only when not worse."""

from __future__ import annotations

from models.challenge import TOLERANCE, decide

CHAMPION = {"clinical_photo": 0.90, "emr_entry": 0.95}


def test_better_or_equal_is_promoted() -> None:
    assert decide(CHAMPION, {"clinical_photo": 0.92, "emr_entry": 0.95}).promote
    assert decide(CHAMPION, dict(CHAMPION)).promote


def test_one_branch_much_worse_is_rejected_even_if_the_mean_rises() -> None:
    decision = decide(CHAMPION, {"clinical_photo": 0.99, "emr_entry": 0.95 - 2 * TOLERANCE})
    assert not decision.promote and "emr_entry" in decision.reason


def test_a_lower_mean_is_rejected() -> None:
    slightly = TOLERANCE / 2
    decision = decide(CHAMPION, {"clinical_photo": 0.90 - slightly, "emr_entry": 0.95})
    assert not decision.promote and "mean" in decision.reason
    assert decision.champion == CHAMPION


def test_wilson_interval() -> None:
    from models.evaluate import wilson_interval

    low, high = wilson_interval(70, 76)  # the demo's scan branch: 92.1 % of 76
    assert 0.83 < low < 0.85 and 0.96 < high < 0.97
    assert wilson_interval(76, 76)[1] > 0.9999 and wilson_interval(76, 76)[0] > 0.95
    assert wilson_interval(0, 0) == (0.0, 1.0)

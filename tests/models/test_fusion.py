"""Fusion of per-item outputs into a patient's relevance, checked with hand-made numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from models.fusion import branch_weight, fuse


def test_no_items_no_result() -> None:
    assert fuse([], {"ct_image": 1.0}, 2) is None


def test_single_item_is_returned_unchanged() -> None:
    result = fuse([("ct_image", [0.3, 0.7])], {"ct_image": 0.5}, 2)
    assert result is not None
    np.testing.assert_allclose(result.values, [0.3, 0.7])
    assert result.weights == {"ct_image": 1.0}


def test_equal_weights_give_the_normalised_geometric_mean() -> None:
    result = fuse([("a", [0.8, 0.2]), ("b", [0.4, 0.6])], {"a": 1.0, "b": 1.0}, 2)
    assert result is not None
    benign = math.sqrt(0.8 * 0.4)
    malignant = math.sqrt(0.2 * 0.6)
    expected = [benign / (benign + malignant), malignant / (benign + malignant)]
    np.testing.assert_allclose(result.values, expected)
    assert result.values[0] == pytest.approx(0.6202, abs=1e-4)


def test_weights_follow_branch_quality() -> None:
    # weights 0.9 and 0.3 renormalise to 0.75 and 0.25
    result = fuse([("a", [0.9, 0.1]), ("b", [0.2, 0.8])], {"a": 0.9, "b": 0.3}, 2)
    assert result is not None
    assert result.weights == pytest.approx({"a": 0.75, "b": 0.25})
    benign = 0.9**0.75 * 0.2**0.25
    malignant = 0.1**0.75 * 0.8**0.25
    assert result.values[0] == pytest.approx(benign / (benign + malignant))
    assert result.values[0] > 0.5  # the better branch wins the disagreement


def test_items_of_a_branch_are_averaged_first() -> None:
    # three photos averaging [0.5, 0.5] must not outvote one CT slice
    items = [
        ("photo", [0.9, 0.1]),
        ("photo", [0.1, 0.9]),
        ("photo", [0.5, 0.5]),
        ("ct", [0.2, 0.8]),
    ]
    result = fuse(items, {"photo": 1.0, "ct": 1.0}, 2)
    assert result is not None
    np.testing.assert_allclose(result.branch_probabilities["photo"], [0.5, 0.5])
    benign, malignant = math.sqrt(0.5 * 0.2), math.sqrt(0.5 * 0.8)
    assert result.values[1] == pytest.approx(malignant / (benign + malignant))


def test_missing_category_drops_out_and_weights_renormalise() -> None:
    weights = {"a": 0.8, "b": 0.4, "c": 1.0}
    both = fuse([("a", [0.7, 0.2, 0.1]), ("b", [0.1, 0.3, 0.6])], weights, 3)
    assert both is not None
    assert set(both.weights) == {"a", "b"}
    assert sum(both.weights.values()) == pytest.approx(1.0)
    assert both.weights["a"] == pytest.approx(2 / 3)
    only_a = fuse([("a", [0.7, 0.2, 0.1])], weights, 3)
    assert only_a is not None
    np.testing.assert_allclose(only_a.values, [0.7, 0.2, 0.1])


def test_zero_weight_branch_has_no_influence() -> None:
    result = fuse([("a", [0.7, 0.3]), ("b", [0.01, 0.99])], {"a": 0.5, "b": 0.0}, 2)
    assert result is not None
    np.testing.assert_allclose(result.values, [0.7, 0.3])
    assert not result.equal_weights_fallback


def test_all_zero_weights_fall_back_to_equal_and_say_so() -> None:
    result = fuse([("a", [0.8, 0.2]), ("b", [0.2, 0.8])], {"a": 0.0, "b": 0.0}, 2)
    assert result is not None
    assert result.equal_weights_fallback
    np.testing.assert_allclose(result.values, [0.5, 0.5])


def test_epsilon_stops_a_zero_from_vetoing() -> None:
    result = fuse([("a", [1.0, 0.0]), ("b", [0.0, 1.0])], {"a": 1.0, "b": 0.5}, 2)
    assert result is not None
    assert np.all(result.values > 0)
    assert result.values[0] > result.values[1]
    assert result.values.sum() == pytest.approx(1.0)


def test_bad_probability_vectors_are_refused() -> None:
    with pytest.raises(ValueError):
        fuse([("a", [0.5, 0.5, 0.0])], {"a": 1.0}, 2)
    with pytest.raises(ValueError):
        fuse([("a", [float("nan"), 1.0])], {"a": 1.0}, 2)


def test_branch_weight_is_chance_corrected_balanced_accuracy() -> None:
    assert branch_weight(1.0, 2) == 1.0
    assert branch_weight(0.5, 2) == 0.0
    assert branch_weight(0.4, 2) == 0.0  # worse than chance: floored
    assert branch_weight(0.75, 2) == pytest.approx(0.5)
    assert branch_weight(0.5, 4) == pytest.approx(1 / 3)
    assert branch_weight(float("nan"), 2) == 0.0

"""The colour card's constants, CIE L*a*b*, ΔE2000 and the gains+CCM fit, checked against
colour-science (the reference implementation) and against published test data."""

from __future__ import annotations

import colour
import numpy as np
import pytest

from clinicam.colourcard import (
    REFERENCE_LAB,
    REFERENCE_SRGB,
    delta_e2000,
    fit_correction,
    linear_to_srgb,
    mean_delta_e,
    srgb8_to_lab,
    srgb_to_linear,
)

CHECKER = colour.CCS_COLOURCHECKERS["ColorChecker24 - After November 2014"]

# Sharma, Wu and Dalal (2005), table 1: pairs and their CIEDE2000 (a selection).
SHARMA = [
    ((50.0, 2.6772, -79.7751), (50.0, 0.0, -82.7485), 2.0425),
    ((50.0, 3.1571, -77.2803), (50.0, 0.0, -82.7485), 2.8615),
    ((50.0, 2.5, 0.0), (50.0, 0.0, -2.5), 4.3065),
    ((50.0, 2.5, 0.0), (73.0, 25.0, -18.0), 27.1492),
    ((50.0, -0.001, 2.49), (50.0, 0.0009, -2.49), 4.8045),
    ((50.0, -0.001, 2.49), (50.0, 0.0011, -2.49), 4.7461),
    ((60.2574, -34.0099, 36.2677), (60.4626, -34.1751, 39.4387), 1.2644),
    ((22.7233, 20.0904, -46.694), (23.0331, 14.973, -42.5619), 2.0373),
    ((90.8027, -2.0831, 1.441), (91.1528, -1.6435, 0.0447), 1.4441),
    ((2.0776, 0.0795, -1.135), (0.9033, -0.0636, -0.5514), 0.9082),
]


def test_reference_values_are_colour_sciences() -> None:
    xyz = colour.xyY_to_XYZ(np.array(list(CHECKER.data.values())))
    lab = colour.XYZ_to_Lab(xyz, CHECKER.illuminant)
    assert np.allclose(REFERENCE_LAB, lab, atol=0.01)
    srgb = colour.XYZ_to_sRGB(xyz, CHECKER.illuminant, chromatic_adaptation_transform="Bradford")
    assert np.allclose(REFERENCE_SRGB, np.clip(srgb, 0, 1) * 255, atol=0.06)


@pytest.mark.parametrize(("lab1", "lab2", "expected"), SHARMA)
def test_delta_e2000_matches_the_published_test_data(
    lab1: tuple[float, float, float], lab2: tuple[float, float, float], expected: float
) -> None:
    assert float(delta_e2000(np.array(lab1), np.array(lab2))) == pytest.approx(expected, abs=1e-4)
    assert float(delta_e2000(np.array(lab2), np.array(lab1))) == pytest.approx(expected, abs=1e-4)


def test_delta_e2000_and_lab_agree_with_colour_science() -> None:
    rng = np.random.default_rng(3)
    srgb8 = rng.integers(0, 256, (500, 3)).astype(np.float64)
    xyz = colour.sRGB_to_XYZ(
        srgb8 / 255, CHECKER.illuminant, chromatic_adaptation_transform="Bradford"
    )
    expected_lab = colour.XYZ_to_Lab(xyz, CHECKER.illuminant)
    assert np.allclose(srgb8_to_lab(srgb8), expected_lab, atol=0.02)
    other = expected_lab + rng.normal(0, 6, expected_lab.shape)
    assert np.allclose(
        delta_e2000(expected_lab, other),
        colour.delta_E(expected_lab, other, method="CIE 2000"),
        atol=1e-6,
    )


def test_a_perfect_card_measures_almost_zero_and_a_tinted_one_does_not() -> None:
    assert mean_delta_e(np.rint(REFERENCE_SRGB)) < 0.5  # 8-bit rounding and cyan's clip
    tinted = np.clip(REFERENCE_SRGB * (1.15, 1.0, 0.7), 0, 255)
    assert mean_delta_e(tinted) > 5.0


def _through(camera_matrix: np.ndarray, gains: tuple[float, float, float]) -> np.ndarray:
    linear = srgb_to_linear(REFERENCE_SRGB / 255.0) @ camera_matrix.T * gains
    return np.rint(linear_to_srgb(linear) * 255.0)


def test_the_fit_undoes_a_cast_with_white_kept_white() -> None:
    mixing = np.array([[0.9, 0.12, -0.02], [0.05, 0.95, 0.0], [0.0, 0.1, 0.9]])
    measured = _through(mixing, (1.3, 1.0, 0.6))
    assert mean_delta_e(measured) > 6.0
    fit = fit_correction(measured, np.eye(3))
    ccm = np.array(fit.ccm).reshape(3, 3)
    assert np.allclose(ccm.sum(axis=1), fit.exposure)  # every row: greys stay grey
    corrected = srgb_to_linear(measured / 255.0) * (fit.red_gain, 1.0, fit.blue_gain)
    shown = np.rint(linear_to_srgb(corrected @ ccm.T) * 255.0)
    assert mean_delta_e(shown) < 1.5
    assert fit.red_gain == pytest.approx(1 / 1.3 * 1.07, rel=0.1)  # mixing shifts it a little


def test_the_fit_refuses_what_it_cannot_use() -> None:
    with pytest.raises(ValueError, match="24"):
        fit_correction(np.zeros((23, 3)), np.eye(3))
    broken = REFERENCE_SRGB.copy()
    broken[3, 1] = np.nan
    with pytest.raises(ValueError, match="finite"):
        fit_correction(broken, np.eye(3))
    with pytest.raises(ValueError, match="black"):
        fit_correction(np.zeros((24, 3)), np.eye(3))

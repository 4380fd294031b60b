"""True colour (issue 22): mean ΔE2000 of the colour card before and after calibration.

The simulated appliance's camera looks at the 24-patch card under a room light that casts
a colour (the sim's lighting presets, and in the full run a few random casts too), the
card held at different places and sizes in view. Each case runs the appliance's own
calibration (find the card, fit gains and a CCM, apply them through the camera's
libcamera controls, measure again) and reads the card's mean ΔE2000 against the
published values before and after. Figures are medians over the cases.

    python bench/colour_card_figures.py [--quick]

Last line: JSON with delta_e_before, delta_e_after (medians), delta_e_after_max, cases,
failures (cases where calibration was refused) and calibrate_ms (median).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from clinicam.colourcard import mean_delta_e  # noqa: E402
from firmware.config import ApplianceConfig  # noqa: E402
from firmware.control.card_finder import find_card  # noqa: E402
from firmware.control.colour_calibration import CalibrationStore, ColourCalibrator  # noqa: E402
from firmware.control.router import CommandFailed  # noqa: E402
from firmware.hardware.sim import build_sim_rig  # noqa: E402

QUICK_LIGHTS = ("incandescent", "fluorescent", "indoor")
LIGHTS = ("incandescent", "tungsten", "fluorescent", "indoor", "cloudy")
QUICK_PLACES = ((0.5, 0.5, 0.3), (0.25, 0.7, 0.18))
PLACES = ((0.5, 0.5, 0.3), (0.25, 0.7, 0.18), (0.72, 0.3, 0.22), (0.55, 0.45, 0.5))
RANDOM_CASTS = 4


def _random_cast(rng: np.random.Generator) -> tuple[float, ...]:
    """A light: red and blue scaled by up to ±40 %, channels mixed by up to 10 %."""
    gains = np.array((rng.uniform(0.6, 1.4), rng.uniform(0.85, 1.1), rng.uniform(0.5, 1.4)))
    mixing = np.eye(3) + rng.uniform(-0.1, 0.1, (3, 3)) * (1 - np.eye(3))
    return tuple(float(v) for v in (np.diag(gains) @ mixing).ravel())


def _case(
    lighting: str, casts: dict[str, tuple[float, ...]], place: tuple[float, float, float]
) -> tuple[float, float | None, float]:
    """(ΔE before, ΔE after or None if refused, milliseconds to calibrate) for one case."""
    config = ApplianceConfig.model_validate(
        {
            "sim": {
                "servo_seconds_per_60deg": 0.0,
                "lighting": lighting,
                "lighting_casts": casts,
                "colour_card": place,
            }
        }
    )
    rig = build_sim_rig(config)
    try:
        camera = rig.camera
        reading = find_card(camera.capture().to_ndarray(format="rgb24"))
        if reading is None:
            raise RuntimeError(f"the card was not found under {lighting} at {place}")
        before = mean_delta_e(reading.patches)
        with tempfile.TemporaryDirectory() as folder:
            calibrator = ColourCalibrator(camera, CalibrationStore(Path(folder) / "c.json"), "b")
            start = time.perf_counter()
            try:
                asyncio.run(calibrator.calibrate(None))
            except CommandFailed:
                return before, None, (time.perf_counter() - start) * 1000
            elapsed = (time.perf_counter() - start) * 1000
        after_reading = find_card(camera.capture().to_ndarray(format="rgb24"))
        after = mean_delta_e(after_reading.patches) if after_reading is not None else None
        return before, after, elapsed
    finally:
        rig.close()


def colour_figures(quick: bool) -> dict[str, float]:
    """Median mean-ΔE2000 of the card before and after calibration over casts and places."""
    rng = np.random.default_rng(22)
    cases: list[tuple[str, dict[str, tuple[float, ...]]]] = [
        (name, {}) for name in (QUICK_LIGHTS if quick else LIGHTS)
    ]
    if not quick:
        cases += [(f"random{i}", {f"random{i}": _random_cast(rng)}) for i in range(RANDOM_CASTS)]
    befores: list[float] = []
    afters: list[float] = []
    times: list[float] = []
    failures = 0
    for lighting, casts in cases:
        for place in QUICK_PLACES if quick else PLACES:
            before, after, ms = _case(lighting, casts, place)
            befores.append(before)
            times.append(ms)
            if after is None:
                failures += 1
                after = before  # refused: the colour stays as it was
            afters.append(after)
    return {
        "delta_e_before": round(statistics.median(befores), 2),
        "delta_e_after": round(statistics.median(afters), 2),
        "delta_e_after_max": round(max(afters), 2),
        "cases": float(len(befores)),
        "failures": float(failures),
        "calibrate_ms": round(statistics.median(times), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer lights and places")
    args = parser.parse_args()
    print(json.dumps(colour_figures(args.quick)))  # i18n: not for people (the JSON figures)


if __name__ == "__main__":
    main()

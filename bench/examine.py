"""Examining the patient (issue 22): aiming the camera, and true colour.

Each figure source is a module with ``figures(quick: bool) -> dict``; the last line
is all of their figures in one JSON object. To add a source, import it and list it in
``SOURCES``.

    python bench/examine.py [--quick]

Last line: JSON with centre_error_pct (median distance of a clicked point from the
centre after click to centre, % of the frame width), centre_time_ms (median time from
the command until the picture has settled), their maxima, and the pad's baseline for
the same trials (pad_error_pct, pad_presses); delta_e_before and delta_e_after (mean
ΔE2000 of a 24-patch card under a known colour cast, before and after the appliance's
calibration; median over casts and card positions, bench/colour_card_figures.py).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import examine_aim  # noqa: E402
from bench.colour_card_figures import colour_figures  # noqa: E402

SOURCES: list[tuple[str, Callable[[bool], dict[str, float]]]] = [
    ("aim", examine_aim.figures),
    ("colour", colour_figures),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer trials (under a minute)")
    args = parser.parse_args()
    figures: dict[str, float] = {}
    for name, source in SOURCES:
        start = time.perf_counter()
        found = source(args.quick)
        took = time.perf_counter() - start
        print(f"{name}: {found} ({took:.1f} s)", flush=True)  # i18n: not for people (log)
        figures.update(found)
    print(json.dumps(figures))  # i18n: not for people (machine-read figures)


if __name__ == "__main__":
    main()

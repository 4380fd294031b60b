"""How long from `clinicam demo` to the first live frame in an expert's browser.

Baseline (same run, same machine): a cold Python start that imports the media stack
(aiortc, av, aiohttp) — the part no start-up work of ours can remove. The ratio
holds across noisy machines better than the absolute seconds.

    python bench/demo_startup.py [--quick] [--runs N]

Prints one JSON line last: demo_ready_s, first_frame_s, baseline_import_s, ratio.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.helpers import (  # noqa: E402 - the same harness as the e2e tests
    CHROMIUM,
    CHROMIUM_ARGS,
    demo_info,
    launch_demo,
    stop_demo,
)

PASSWORD = "bench-password"


def baseline_import_s() -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import aiortc, av, aiohttp"], check=True)
    return time.perf_counter() - start


def one_run(browser: object) -> tuple[float, float]:
    with tempfile.TemporaryDirectory(prefix="clinicam-bench-") as tmp:
        state = Path(tmp) / "state"
        start = time.perf_counter()
        proc = launch_demo(state, PASSWORD, "--log-level", "WARNING")
        try:
            info = demo_info(proc, state)
            ready = time.perf_counter() - start
            page = browser.new_page()  # type: ignore[attr-defined]
            page.goto(info["url"] + "/login?next=/room/demo-consultation")
            page.fill("#username", info["username"])
            page.fill("#password", PASSWORD)
            page.click("#login-button")
            page.wait_for_function(
                "() => { const v = document.getElementById('live');"
                " return v && v.getVideoPlaybackQuality().totalVideoFrames > 0; }",
                timeout=120_000,
                polling=20,
            )
            first_frame = time.perf_counter() - start
            page.close()
            return ready, first_frame
        finally:
            stop_demo(proc, whole_group=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one run (well under 60 s)")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    runs = 1 if args.quick else args.runs

    from playwright.sync_api import sync_playwright

    baseline = statistics.median(baseline_import_s() for _ in range(runs))
    results = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for i in range(runs):
            ready, frame = one_run(browser)
            print(f"run {i + 1}: demo ready {ready:.2f} s, first frame in browser {frame:.2f} s")
            results.append((ready, frame))
        browser.close()
    ready_s = statistics.median(r for r, _ in results)
    frame_s = statistics.median(f for _, f in results)
    print(
        json.dumps(
            {
                "demo_ready_s": round(ready_s, 2),
                "first_frame_s": round(frame_s, 2),
                "baseline_import_s": round(baseline, 2),
                "ratio": round(frame_s / baseline, 2),
                "runs": runs,
            }
        )
    )


if __name__ == "__main__":
    main()

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
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--allow-loopback-in-peer-connection",
]
PASSWORD = "bench-password"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def baseline_import_s() -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import aiortc, av, aiohttp"], check=True)
    return time.perf_counter() - start


def one_run(browser: object) -> tuple[float, float]:
    with tempfile.TemporaryDirectory(prefix="clinicam-bench-") as tmp:
        state = Path(tmp) / "state"
        start = time.perf_counter()
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "clinicam",
                "demo",
                "--port",
                str(_free_port()),
                "--state-dir",
                str(state),
                "--password",
                PASSWORD,
                "--loopback-only",
                "--log-level",
                "WARNING",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            info_file = state / "demo.json"
            while not info_file.exists():
                if proc.poll() is not None or time.perf_counter() - start > 120:
                    raise RuntimeError("demo did not start")
                time.sleep(0.02)
            ready = time.perf_counter() - start
            info = json.loads(info_file.read_text())
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
            os.killpg(proc.pid, signal.SIGINT)
            proc.wait(timeout=60)


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
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
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

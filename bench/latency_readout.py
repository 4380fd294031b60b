"""The room's latency readout against the pixel stamp, on shaped links (issue 22; root).

For each link profile, a fresh system on the link testbed (``tests/netlab``): mosquitto
and the server in the server's namespace, the simulated appliance (capture-time barcode
on) behind the clinic's link shaped with the profile, and headless Chromium as the
expert in the ``experts`` namespace (unshaped: the profile is the clinic's uplink, as in
``bench/rural_link.py``). The room page's readout (capture time from the
abs-capture-time RTP extension, converted with the page's clock offset to the server)
is compared with the barcode read off each displayed frame (same machine, same clock).

    sudo python bench/latency_readout.py [--quick] [--profile lan --profile 3g]

Last line: JSON ``{"profiles": [{"profile", "frames", "readout_p50_ms", "pixel_p50_ms",
"frame_diff_p50_ms", "frame_diff_p95_abs_ms", "second_diff_max_abs_ms", "seconds"}]}``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.helpers import CHROMIUM, CHROMIUM_ARGS, wait_until
from tests.latency_readout import PIXEL_READER_JS, compare
from tests.netlab import PROFILES, Testbed
from tests.netlab.stack import EXPERT, ClinicStack

WIDTH, HEIGHT = 1280, 720
STATE_JS = """() => ({
  url: location.href,
  connection: document.getElementById('connection')?.textContent,
  video: document.getElementById('live')?.videoWidth,
  pc: window.pc ? pc.connectionState : null,
  extmap: window.pc && pc.remoteDescription ? /abs-capture-time/.test(pc.remoteDescription.sdp)
    : null,
  offset: window.latency ? latency.offset() : null,
  frames: window.latency ? latency.frames().length : null,
  offer: window.pc && pc.localDescription ? pc.localDescription.sdp : null,
})"""
STAMP = {"CLINICAM_APPLIANCE__SIM__STAMP_TIME": "true"}


def measure(profile_name: str, seconds: float, fps: int) -> dict[str, Any]:
    """One fresh system on ``profile_name``; the readout and the pixels for ``seconds``."""
    from playwright.sync_api import sync_playwright

    with (
        tempfile.TemporaryDirectory(prefix="clinicam-readout-") as tmp,
        Testbed(["clinic", "experts"]) as bed,
    ):
        bed.shape("clinic", PROFILES[profile_name])
        stack = ClinicStack(bed, Path(tmp), fps=fps, env=STAMP)
        wrapper = Path(tmp) / "chromium-in-experts"
        wrapper.write_text(
            f'#!/bin/sh\nexec ip netns exec {bed.netns("experts")} {CHROMIUM} "$@"\n'
        )
        os.chmod(wrapper, 0o755)
        try:
            stack.start()
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=str(wrapper), args=CHROMIUM_ARGS)
                page = browser.new_page()
                page.goto(stack.url + "/login?next=/room/demo-consultation")
                page.fill("#username", EXPERT)
                page.fill("#password", stack.password)
                page.click("#login-button")
                try:
                    page.wait_for_function(
                        "() => { const e = document.getElementById('latency');"
                        " return e !== null && e.dataset.state !== 'none'; }",
                        timeout=40_000,
                    )
                except Exception:
                    print("no reading; the page says:", page.evaluate(STATE_JS))
                    print((Path(tmp) / "server.log").read_text()[-6000:])
                    raise
                page.evaluate(PIXEL_READER_JS, [WIDTH, HEIGHT])
                time.sleep(seconds)
                wait_until(lambda: len(page.evaluate("() => window.readouts")) >= 3, 30, "readouts")
                pixels = page.evaluate("() => window.pixelFrames")
                frames = page.evaluate("() => latency.frames()")
                readouts = page.evaluate("() => window.readouts")
                offset = page.evaluate("() => latency.offset()")
                browser.close()
        finally:
            stack.stop()
    result = compare(pixels, frames, readouts)
    diffs, seconds_diffs = result["frame_diffs_ms"], result["second_diffs_ms"]
    print(f"{profile_name}: {len(diffs)} frames both ways, clock offset {offset}")
    print(f"  readouts {[r['text'] for r in readouts]}")
    print(f"  readout − pixel per second (ms): {[round(d, 1) for d in seconds_diffs]}")
    return {
        "profile": profile_name,
        "frames": len(diffs),
        "readout_p50_ms": result["readout_p50_ms"],
        "pixel_p50_ms": result["pixel_p50_ms"] and round(result["pixel_p50_ms"], 1),
        "frame_diff_p50_ms": round(statistics.median(diffs), 1) if diffs else None,
        "frame_diff_p95_abs_ms": result["frame_diff_p95_abs_ms"]
        and round(result["frame_diff_p95_abs_ms"], 1),
        "second_diff_max_abs_ms": round(max(abs(d) for d in seconds_diffs), 1)
        if seconds_diffs
        else None,
        "seconds": len(seconds_diffs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="8 s per profile")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--fps", type=int, default=15)
    parser.add_argument(
        "--profile", action="append", choices=sorted(PROFILES), help="default: lan and 3g"
    )
    args = parser.parse_args()
    seconds = 8.0 if args.quick else args.seconds
    results = [measure(name, seconds, args.fps) for name in args.profile or ["lan", "3g"]]
    print(json.dumps({"profiles": results}))


if __name__ == "__main__":
    main()

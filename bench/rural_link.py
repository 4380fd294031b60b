"""Rural link: the live call on a shaped clinic link, adaptive against today's fixed stream.

Usage: ``python bench/rural_link.py --profile 3g`` (``--quick`` for a short run; needs
root: it builds network namespaces, see ``tests/netlab``).

Two runs on the same profile, each a fresh system on the link testbed (mosquitto and
the server in the server's namespace, the simulated appliance behind the clinic's
shaped link, an expert in the room on the server's side so the server composes):

1. **adaptive** (the appliance follows the server's REMB and loss reports): measured for
   the run's length with a 5 s outage at 60 % of it;
2. **baseline**: the same camera at a fixed 2.5 Mbit/s (``camera.adaptive = false``),
   no outage: what the appliance did before adaptation.

Figures (the last line is JSON):

* ``live_fps`` live frames the server decoded per second (outside the outage);
* ``freeze_pct`` share of that time with no new frame for over 500 ms;
* ``g2g_p95_ms`` capture → composite sent, p95 of the server's stage stamps (the
  expert's own link, decode and display come on top; on the server's side here);
* ``control_p99_ms`` camera command round trip (HTTP → MQTT → appliance → ack), p99;
* ``resume_after_outage_s`` link back → first new live frame;
* ``archive_gap_s`` the longest hole in the archive over the run once the appliance's
  back-fill has arrived.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.netlab.profiles import PROFILES
from tests.netlab.rural import figures, run_on_link

OUTAGE_S = 5.0


def _print_timeline(links: list[list[Any]], started: float) -> None:
    """The clinic's uplink as the room saw it: one line per links event."""
    keys = ("up_kbps", "target_kbps", "rung", "rtt_ms", "up_loss_pct", "down_kbps")
    print("  t (s)  " + "  ".join(f"{k:>11}" for k in keys))
    for at, party in links:
        values = "  ".join(f"{party.get(k, '-')!s:>11}" for k in keys)
        print(f"  {at - started:5.1f}  {values}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=sorted(PROFILES), default="3g")
    parser.add_argument("--seconds", type=float, default=40.0)
    parser.add_argument("--quick", action="store_true", help="short runs (about a minute)")
    parser.add_argument(
        "--timeline", action="store_true", help="print the adaptive run's uplink as it went"
    )
    args = parser.parse_args()
    profile = PROFILES[args.profile]
    seconds = 12.0 if args.quick else args.seconds
    settle = 2.0 if args.quick else 5.0
    adaptive = run_on_link(
        profile, seconds, outage_s=OUTAGE_S, settle_s=settle, backfill_wait_s=10.0
    )
    adapted = figures(adaptive)
    if args.timeline:
        _print_timeline(adaptive.probe["links"], adaptive.started)
    baseline = figures(
        run_on_link(profile, seconds * 0.5, adaptive=False, settle_s=settle, backfill_wait_s=0)
    )
    print(f"profile {profile.name}: {profile}")
    print(f"  adaptive: {adapted}")
    print(f"  baseline (fixed 2.5 Mbit/s): {baseline}")
    result = {
        "profile": profile.name,
        "live_fps": adapted["live_fps"],
        "baseline_live_fps": baseline["live_fps"],
        "freeze_pct": adapted["freeze_pct"],
        "baseline_freeze_pct": baseline["freeze_pct"],
        "g2g_p95_ms": adapted["g2g_p95_ms"],
        "control_p99_ms": adapted["control_p99_ms"],
        "resume_after_outage_s": adapted["resume_after_outage_s"],
        "archive_gap_s": adapted["archive_gap_s"],
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()

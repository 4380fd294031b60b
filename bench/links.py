"""Link testbed check: does each profile measure like its targets? (issue 14, needs root)

Brings up the namespaces of ``tests.netlab`` (clinic and server), shapes the clinic's
link with each profile in turn and measures it with real processes from the clinic
namespace to the server namespace:

- round trip: UDP probes to an echo server (p50, p95);
- loss: one-way, both directions pooled (the echo server counts what reached it, so
  uplink and downlink loss are told apart);
- rate: a UDP blast offered at 1.5× the profile's rate, both directions at once,
  counted at the receiver in wire bytes (what ``tbf`` meters); it reads as the rate
  times (1 - loss);
- the delay stage's CPU during that blast, in percent of one core;
- ``outage``: probes every 20 ms through a 5 s outage on the lan profile; the figure
  is the time from the outage's start until a probe gets through again.

    sudo python bench/links.py [--quick] [--profile NAME ...]

Prints a table, then LAST one line of JSON: ``{"profiles": [{"profile", "rtt_p50_ms",
"rtt_p95_ms", "loss_pct", "up_kbit", "down_kbit", …}], "outage_s": …}``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.netlab import DEFAULT_OUTAGE_S, PROFILES, LinkProfile, Testbed  # noqa: E402
from tests.netlab.measure import (  # noqa: E402
    cpu_seconds,
    measure_outage,
    measure_rates,
    measure_rtt,
)

ORDER = [*PROFILES, "outage"]


def check_profile(bed: Testbed, profile: LinkProfile, *, quick: bool) -> dict[str, Any]:
    """Shape the clinic's link with ``profile`` and measure it."""
    bed.shape("clinic", profile)
    count, interval_s = (200, 0.01) if quick else (1000, 0.005)
    drain_s = 2 * profile.delay_ms / 1000 + 0.5
    rtt = measure_rtt(bed, "clinic", count=count, interval_s=interval_s, drain_s=drain_s)
    offered = 1.5 * profile.rate_kbit if profile.rate_kbit else 0.0
    cpu_before = cpu_seconds(bed.stage_pid) if bed.stage_pid else 0.0
    started = time.monotonic()
    up, down = measure_rates(bed, "clinic", kbit=offered, duration_s=2.0 if quick else 5.0)
    elapsed = time.monotonic() - started
    cpu_pct = (100 * (cpu_seconds(bed.stage_pid) - cpu_before) / elapsed) if bed.stage_pid else 0.0
    return {
        "profile": profile.name,
        "rtt_p50_ms": round(rtt.p50_ms, 2),
        "rtt_p95_ms": round(rtt.p95_ms, 2),
        "loss_pct": round(rtt.loss_pct, 2),
        "up_loss_pct": round(rtt.up_loss_pct, 2),
        "down_loss_pct": round(rtt.down_loss_pct, 2),
        "loss_trials": rtt.trials,
        "up_kbit": round(up.kbit, 1),
        "down_kbit": round(down.kbit, 1),
        "stage_cpu_pct": round(cpu_pct, 2),
        "ok": verdict(profile, rtt.p50_ms, rtt.loss_pct, rtt.trials, up.kbit, down.kbit),
    }


def verdict(
    profile: LinkProfile, p50: float, loss: float, trials: int, up: float, down: float
) -> bool:
    """Within tolerance of the targets: RTT +0…+15 % (+3 ms), loss ±4σ, rate ±15 %."""
    target_rtt = profile.rtt_ms
    rtt_ok = target_rtt - 2 <= p50 <= target_rtt * 1.15 + 3
    p = profile.loss_pct / 100
    sigma = math.sqrt(max(p * (1 - p), 1e-6) / trials)
    loss_ok = abs(loss / 100 - p) <= 4 * sigma
    if profile.rate_kbit is None:
        rate_ok = min(up, down) > 20_000
    else:
        rate_ok = all(abs(r / profile.rate_kbit - 1) <= 0.15 for r in (up, down))
    return rtt_ok and loss_ok and rate_ok


def print_table(rows: list[dict[str, Any]], outage_s: float | None) -> None:
    print(
        f"{'profile':<10} {'RTT target':>10} {'p50':>8} {'p95':>8} {'loss tgt':>8} "
        f"{'loss':>6} {'up/down loss':>13} {'rate tgt':>9} {'up':>9} {'down':>9} "
        f"{'stage CPU':>9}  ok"
    )
    for row in rows:
        profile = PROFILES[row["profile"]]
        rate = f"{profile.rate_kbit}" if profile.rate_kbit else "-"
        print(
            f"{row['profile']:<10} {profile.rtt_ms:>8.0f}ms {row['rtt_p50_ms']:>6.1f}ms "
            f"{row['rtt_p95_ms']:>6.1f}ms {profile.loss_pct:>7.1f}% {row['loss_pct']:>5.2f}% "
            f"{row['up_loss_pct']:>5.2f}/{row['down_loss_pct']:<5.2f}% {rate:>9} "
            f"{row['up_kbit']:>9.0f} {row['down_kbit']:>9.0f} {row['stage_cpu_pct']:>8.2f}%  "
            f"{'yes' if row['ok'] else 'NO'}"
        )
    if outage_s is not None:
        print(f"outage {DEFAULT_OUTAGE_S:.0f} s: probes got through again after {outage_s:.2f} s")
    print("rates in kbit/s on the wire (IP + Ethernet headers), both directions at once;")
    print("stage CPU: the delay stage's share of one core during that blast")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short measurements (< 60 s)")
    parser.add_argument("--profile", action="append", choices=ORDER, help="repeatable")
    args = parser.parse_args()
    names = args.profile or ORDER
    rows: list[dict[str, Any]] = []
    outage_s: float | None = None
    with Testbed(leaves=["clinic"]) as bed:
        for name in names:
            if name == "outage":
                bed.shape("clinic", PROFILES["lan"])
                outage = measure_outage(bed, "clinic", DEFAULT_OUTAGE_S)
                outage_s = round(outage.restored_after_s, 3)
                if outage.leaked:
                    print(f"outage leaked {outage.leaked} probes", file=sys.stderr)
            else:
                rows.append(check_profile(bed, PROFILES[name], quick=args.quick))
                print(f"measured {name}", file=sys.stderr)
    print_table(rows, outage_s)
    result: dict[str, Any] = {"profiles": rows}
    if outage_s is not None:
        result["outage_s"] = outage_s
    print(json.dumps(result))
    return 0 if all(row["ok"] for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

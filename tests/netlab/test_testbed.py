"""The link testbed keeps its promises: links measure like their profiles, and it cleans up.

Every figure is measured by real processes in the namespaces (UDP probes and blasts),
so a stage that is missing or wrong fails here: no delay stage, RTT near 0; loss rule
in the wrong place, the per-direction loss is off; no ``tbf``, the rate is far above.
Needs root, like CI: without it the fixture raises ``NetlabUnavailable`` (an error,
never a skip).
"""

from __future__ import annotations

import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.netlab import LAN, PROFILES, LinkProfile, NetlabUnavailable, Testbed
from tests.netlab import netns as ns
from tests.netlab.measure import measure_outage, measure_rates, measure_rtt, start_rtt

pytestmark = pytest.mark.netlab

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bed() -> Iterator[Testbed]:
    with Testbed(leaves=["clinic", "expert1"]) as testbed:
        yield testbed


def within_binomial(measured_pct: float, expected_pct: float, trials: int) -> bool:
    """Inside ±4 standard deviations of a binomial share (fails by chance ~1 in 16,000)."""
    p = expected_pct / 100
    sigma = math.sqrt(p * (1 - p) / trials)
    return abs(measured_pct / 100 - p) <= 4 * sigma


def leftovers(prefix: str) -> list[str]:
    return [name for name in [*ns.list_netns(), *ns.root_links()] if name.startswith(prefix)]


def test_3g_has_its_round_trip_loss_and_rate(bed: Testbed) -> None:
    bed.shape("clinic", PROFILES["3g"])

    rtt = measure_rtt(bed, "clinic", count=1500, interval_s=0.004, drain_s=1.0)
    up, down = measure_rates(bed, "clinic", kbit=900, duration_s=2.5)

    assert 130 <= rtt.p50_ms <= 200, f"3g RTT p50 {rtt.p50_ms:.1f} ms, expected ≈150"
    assert within_binomial(rtt.loss_pct, 2.0, rtt.trials), (
        f"3g loss {rtt.loss_pct:.2f} % over {rtt.trials} one-way packets "
        f"(up {rtt.up_loss_pct:.2f}, down {rtt.down_loss_pct:.2f}), expected 2 %"
    )
    assert 0.5 <= rtt.up_loss_pct <= 4.5 and 0.5 <= rtt.down_loss_pct <= 4.5, (
        "loss is per direction"
    )
    assert 480 <= up.kbit <= 720, f"3g uplink {up.kbit:.0f} kbit/s, expected ≈600"
    assert 480 <= down.kbit <= 720, f"3g downlink {down.kbit:.0f} kbit/s, expected ≈600"


def test_lan_is_fast_and_lossless(bed: Testbed) -> None:
    bed.shape("clinic", LAN)

    rtt = measure_rtt(bed, "clinic", count=200, interval_s=0.005, drain_s=0.5)
    up, down = measure_rates(bed, "clinic", kbit=0, duration_s=1.0)

    assert rtt.p50_ms < 5, f"lan RTT p50 {rtt.p50_ms:.2f} ms"
    assert rtt.replies == rtt.sent
    assert up.kbit > 20_000 and down.kbit > 20_000, f"lan {up.kbit:.0f}/{down.kbit:.0f} kbit/s"


def test_each_leaf_has_its_own_link(bed: Testbed) -> None:
    bed.shape("clinic", PROFILES["3g"])
    bed.shape("expert1", LAN)

    expert = start_rtt(bed, "expert1", count=200, interval_s=0.01)
    across = start_rtt(bed, "clinic", "expert1", count=200, interval_s=0.01)
    expert_rtt, across_rtt = expert.result(), across.result()

    assert expert_rtt.p50_ms < 5, "the expert's lan link must not carry the clinic's delay"
    assert 130 <= across_rtt.p50_ms <= 200, "clinic → expert goes over the clinic's 3g link"


def test_reshaping_takes_effect_while_traffic_flows(bed: Testbed) -> None:
    """Live switch from lan to 100 ms uplink-only delay: per direction, in place."""
    bed.shape("clinic", LAN)
    running = start_rtt(bed, "clinic", count=400, interval_s=0.01, drain_s=0.5)
    time.sleep(max(0.0, running.started_at + 1.5 - time.monotonic()))
    switched_at = time.monotonic()
    bed.shape("clinic", up=LinkProfile("slow-up", delay_ms=100), down=LAN)
    result = running.result()

    before = [rtt for t, rtt in result.probes if t < switched_at - 0.05 and rtt is not None]
    after = [rtt for t, rtt in result.probes if t > switched_at + 0.3 and rtt is not None]
    assert len(before) > 100 and len(after) > 100
    assert sorted(before)[len(before) // 2] < 5
    assert 95 <= sorted(after)[len(after) // 2] <= 130, "100 ms up + 0 ms down ≈ 100 ms RTT"
    assert bed.shaping("clinic")["down"] == LAN


def test_outage_drops_everything_then_the_profile_returns(bed: Testbed) -> None:
    bed.shape("clinic", PROFILES["4g-rural"])

    outage = measure_outage(bed, "clinic", 2.0, lead_s=1.0, tail_s=1.5)

    assert outage.leaked == 0, "a probe got through during the outage"
    assert 1.95 <= outage.restored_after_s <= 2.4, f"back after {outage.restored_after_s:.2f} s"
    assert outage.resumed_share >= 0.85, f"only {outage.resumed_share:.0%} answered afterwards"
    median_after = sorted(outage.rtts_after_ms)[len(outage.rtts_after_ms) // 2]
    assert 55 <= median_after <= 90, f"RTT after the outage {median_after:.1f} ms, 4g-rural ≈60"
    assert bed.shaping("clinic")["up"] == PROFILES["4g-rural"]


def test_close_removes_namespaces_links_rules_and_processes() -> None:
    def root_rules() -> str:
        out = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
        return re.sub(r"\[\d+:\d+\]|^#.*$", "", out, flags=re.M)

    rules_before = root_rules()
    with Testbed(leaves=["clinic", "expert1", "expert2"]) as testbed:
        testbed.shape("clinic", PROFILES["satellite"])
        testbed.outage("expert1", 30)
        sleeper = testbed.popen("clinic", ["sleep", "60"])
        stage_pid = testbed.stage_pid
        assert len(leftovers(testbed.prefix)) == 4  # server + three leaves, no root veths
    assert leftovers(testbed.prefix) == []
    assert root_rules() == rules_before
    assert sleeper.poll() is not None
    assert stage_pid is not None and not ns.pid_alive(stage_pid)


def test_close_also_runs_when_the_body_raises() -> None:
    with pytest.raises(ZeroDivisionError), Testbed(leaves=["clinic"]) as testbed:
        _ = 1 / 0
    assert leftovers(testbed.prefix) == []


def _child(code: str) -> subprocess.Popen[str]:
    script = "import os, signal, subprocess, time\nfrom tests.netlab import PROFILES, Testbed\n"
    script += code
    return subprocess.Popen(
        [sys.executable, "-c", script], cwd=REPO, stdout=subprocess.PIPE, text=True
    )


def test_a_crashed_runs_leftovers_are_removed_by_the_next() -> None:
    crashed = _child(
        "bed = Testbed(['clinic']).start()\n"
        "bed.shape('clinic', PROFILES['3g'])\n"
        "bed.popen('clinic', ['sleep', '300'], stdout=subprocess.DEVNULL)\n"
        "print(bed.prefix, flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    out, _ = crashed.communicate(timeout=60)
    prefix = out.strip()
    assert crashed.returncode == -signal.SIGKILL
    assert len(leftovers(prefix)) == 2
    deadline = time.monotonic() + 10  # `ip netns exec` may still be entering it
    while not (orphans := ns.netns_pids(f"{prefix}clinic")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert orphans, "the crashed run's sleep should still be running in its namespace"

    with Testbed(leaves=["clinic"]):
        assert leftovers(prefix) == []
        assert not any(ns.pid_alive(pid) for pid in orphans)


def test_sigterm_cleans_up() -> None:
    child = _child(
        "bed = Testbed(['clinic']).start()\n"
        "bed.shape('clinic', PROFILES['3g'])\n"
        "print(bed.prefix, flush=True)\n"
        "time.sleep(60)\n"
    )
    assert child.stdout is not None
    prefix = child.stdout.readline().strip()
    assert len(leftovers(prefix)) == 2
    child.send_signal(signal.SIGTERM)
    assert child.wait(30) == -signal.SIGTERM
    assert leftovers(prefix) == []


def test_without_root_or_tools_it_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(NetlabUnavailable, match="needs root"):
        Testbed().start()
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    real_which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda t: None if t == "ethtool" else real_which(t))
    with pytest.raises(NetlabUnavailable, match="ethtool"):
        Testbed().start()


def test_jitter_spreads_delay_but_never_reorders(bed: Testbed) -> None:
    bed.shape("clinic", up=LinkProfile("jittery", delay_ms=50, jitter_ms=20), down=LAN)

    rtt = measure_rtt(bed, "clinic", count=300, interval_s=0.005, drain_s=0.5)

    answered = [(sent, sent + r / 1000) for sent, r in rtt.probes if r is not None]
    arrivals = [arrived for _, arrived in answered]
    assert arrivals == sorted(arrivals), "a reply overtook one sent before it"
    rtts = sorted(rtt.rtts_ms)
    assert rtts[0] >= 30 and rtts[-1] <= 90, f"RTT {rtts[0]:.1f}…{rtts[-1]:.1f} ms, 50 ± 20"
    assert rtts[len(rtts) * 9 // 10] - rtts[len(rtts) // 10] > 8, "no spread: jitter ignored"

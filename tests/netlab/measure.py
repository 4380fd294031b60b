"""Measuring a testbed's links with real processes in its namespaces (tests and bench).

Round trip and loss come from UDP probes to an echo server; the rate from a UDP
blast offered above the link's rate, counted at the receiver in wire bytes (payload
plus IPv4, UDP and Ethernet headers, which is what ``tbf`` meters). A received rate
therefore reads as the configured rate times (1 - loss).
"""

from __future__ import annotations

import itertools
import json
import math
import os
import select
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from tests.netlab.testbed import SERVER, Testbed

_REPO: Final = Path(__file__).resolve().parents[2]
_ports = itertools.count(47000)


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (nearest rank); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def cpu_seconds(pid: int) -> float:
    """CPU time a process has run so far, to the nanosecond (/proc/<pid>/schedstat).

    Not utime + stime from /proc/<pid>/stat: those are sampled at the scheduler tick,
    and a process that wakes a thousand times a second for a few microseconds is
    charged by luck, several times its real cost here.
    """
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e9
    except (FileNotFoundError, IndexError, ValueError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _probe(bed: Testbed, party: str, *args: object) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(_REPO))
    argv = [sys.executable, "-m", "tests.netlab.probe", *map(str, args)]
    return bed.popen(party, argv, stdout=subprocess.PIPE, text=True, env=env, cwd=_REPO)


def _first_line(proc: subprocess.Popen[str], timeout_s: float = 10.0) -> str:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout_s)
    line = proc.stdout.readline() if ready else ""
    if not line:
        proc.kill()
        raise RuntimeError(f"probe {proc.args!r} did not start (exit {proc.wait()})")
    return line.strip()


def _last_json(proc: subprocess.Popen[str], timeout_s: float) -> dict[str, Any]:
    try:
        out, _ = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise RuntimeError(f"probe {proc.args!r} did not finish in {timeout_s:.0f} s") from None
    lines = out.strip().splitlines()
    if proc.returncode or not lines:
        raise RuntimeError(f"probe {proc.args!r} failed (exit {proc.returncode})")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


@dataclass
class RttResult:
    """Probes sent from a client to an echo server: send times, RTTs, per-direction loss."""

    sent: int
    server_received: int
    probes: list[tuple[float, float | None]]  # (monotonic send time, RTT ms or None)

    @property
    def rtts_ms(self) -> list[float]:
        return [rtt for _, rtt in self.probes if rtt is not None]

    @property
    def replies(self) -> int:
        return len(self.rtts_ms)

    @property
    def p50_ms(self) -> float:
        return percentile(self.rtts_ms, 50)

    @property
    def p95_ms(self) -> float:
        return percentile(self.rtts_ms, 95)

    @property
    def up_loss_pct(self) -> float:
        return 100 * (self.sent - self.server_received) / self.sent

    @property
    def down_loss_pct(self) -> float:
        return 100 * (self.server_received - self.replies) / max(1, self.server_received)

    @property
    def trials(self) -> int:
        """One-way packet trials behind ``loss_pct``: probes sent plus replies sent."""
        return self.sent + self.server_received

    @property
    def loss_pct(self) -> float:
        """One-way loss, both directions pooled: packets lost over packets sent."""
        return 100 * (self.sent - self.replies) / self.trials

    @property
    def round_trip_loss_pct(self) -> float:
        return 100 * (self.sent - self.replies) / self.sent


class RunningRtt:
    """A pinger under way (for outages and re-shaping while it runs)."""

    def __init__(
        self,
        bed: Testbed,
        client: str,
        server: str,
        count: int,
        interval_s: float,
        drain_s: float,
        size: int,
    ) -> None:
        port = next(_ports)
        self._echo = _probe(bed, server, "echo", "--port", port)
        _first_line(self._echo)
        self._ping = _probe(
            bed,
            client,
            "ping",
            "--host",
            bed.address(server),
            "--port",
            port,
            "--count",
            count,
            "--interval",
            interval_s,
            "--drain",
            drain_s,
            "--size",
            size,
        )
        self.started_at = float(_first_line(self._ping).split()[1])
        self._timeout_s = count * interval_s + drain_s + 30

    def result(self) -> RttResult:
        try:
            raw = _last_json(self._ping, self._timeout_s)
        finally:
            self._echo.terminate()
            self._echo.wait()
        if raw["server_received"] is None:
            raise RuntimeError("the echo server never answered the count query: link down?")
        probes = [(float(t), None if r is None else float(r)) for t, r in raw["probes"]]
        return RttResult(int(raw["sent"]), int(raw["server_received"]), probes)


def start_rtt(
    bed: Testbed,
    client: str,
    server: str = SERVER,
    *,
    count: int = 200,
    interval_s: float = 0.01,
    drain_s: float = 1.5,
    size: int = 64,
) -> RunningRtt:
    """Start ``count`` UDP probes from ``client`` to an echo server in ``server``."""
    return RunningRtt(bed, client, server, count, interval_s, drain_s, size)


def measure_rtt(bed: Testbed, client: str, server: str = SERVER, **kwargs: Any) -> RttResult:
    return start_rtt(bed, client, server, **kwargs).result()


@dataclass
class RateResult:
    kbit: float
    packets: int
    seconds: float


class RunningRate:
    """A blast from ``sender`` to a sink in ``receiver``, under way."""

    def __init__(
        self, bed: Testbed, sender: str, receiver: str, kbit: float, duration_s: float, size: int
    ) -> None:
        port = next(_ports)
        self._sink = _probe(
            bed, receiver, "sink", "--port", port, "--idle", 0.6, "--max", duration_s + 15
        )
        _first_line(self._sink)
        self._blast = _probe(
            bed,
            sender,
            "blast",
            "--host",
            bed.address(receiver),
            "--port",
            port,
            "--kbit",
            kbit,
            "--duration",
            duration_s,
            "--size",
            size,
        )
        _first_line(self._blast)
        self._timeout_s = duration_s + 20

    def result(self) -> RateResult:
        _last_json(self._blast, self._timeout_s)
        raw = _last_json(self._sink, self._timeout_s)
        return RateResult(float(raw["kbit"]), int(raw["packets"]), float(raw["seconds"]))


def start_rate(
    bed: Testbed,
    sender: str,
    receiver: str,
    *,
    kbit: float,
    duration_s: float = 2.0,
    size: int = 1200,
) -> RunningRate:
    """Offer ``kbit`` (0: as fast as Python sends) from ``sender`` to ``receiver``."""
    return RunningRate(bed, sender, receiver, kbit, duration_s, size)


def measure_rates(
    bed: Testbed, leaf: str, *, kbit: float, duration_s: float = 2.0, size: int = 1200
) -> tuple[RateResult, RateResult]:
    """(uplink, downlink) rates of ``leaf``'s link, both measured at once."""
    up = start_rate(bed, leaf, SERVER, kbit=kbit, duration_s=duration_s, size=size)
    down = start_rate(bed, SERVER, leaf, kbit=kbit, duration_s=duration_s, size=size)
    return up.result(), down.result()


@dataclass
class OutageResult:
    """What probes saw around an outage started at ``started_at`` for ``seconds``."""

    seconds: float
    restored_after_s: float  # outage start → send time of the first probe that got through
    leaked: int  # probes sent well inside the outage that got through anyway (must be 0)
    resumed_share: float  # share of probes answered after the link is back
    rtts_after_ms: list[float]  # RTTs of the probes sent once the link was back


def measure_outage(
    bed: Testbed,
    leaf: str,
    seconds: float,
    *,
    lead_s: float = 1.0,
    tail_s: float = 1.5,
    interval_s: float = 0.02,
) -> OutageResult:
    """Probe ``leaf`` → server continuously through an outage of ``seconds``."""
    count = int((lead_s + seconds + tail_s) / interval_s)
    running = start_rtt(bed, leaf, count=count, interval_s=interval_s, drain_s=1.0)
    time.sleep(max(0.0, running.started_at + lead_s - time.monotonic()))
    outage = bed.outage(leaf, seconds)
    outage.wait()
    result = running.result()
    start, end = outage.started_at, outage.started_at + seconds
    after = [(t, rtt) for t, rtt in result.probes if t >= start]
    through = [t for t, rtt in after if rtt is not None]
    restored = (through[0] - start) if through else math.inf
    margin = 0.05
    leaked = sum(1 for t, rtt in after if start + margin <= t <= end - margin and rtt is not None)
    late = [rtt for t, rtt in after if t >= end + 0.3]
    answered = [rtt for rtt in late if rtt is not None]
    return OutageResult(seconds, restored, leaked, len(answered) / max(1, len(late)), answered)

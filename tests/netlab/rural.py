"""One run of the whole system on a shaped clinic link, and the figures issue 14 asks for.

Used by ``bench/rural_link.py`` and ``tests/netlab/test_rural.py``: start the stack
(:mod:`tests.netlab.stack`) with the clinic's link shaped, let a room probe
(:mod:`tests.netlab.room_probe`) measure for a while, optionally cut the link for a few
seconds in the middle, then read the archive's coverage of the run after the
appliance's back-fill has had time to arrive.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from tests.helpers import percentile
from tests.netlab.profiles import LinkProfile
from tests.netlab.stack import DEVICE, HTTP_PORT, ClinicStack
from tests.netlab.testbed import Testbed

FREEZE_S = 0.5


@dataclass
class RunResult:
    probe: dict[str, Any]
    started: float
    ended: float
    outage: tuple[float, float] | None
    coverage: list[tuple[float, float]]  # archived runs, as monotonic times


def run_on_link(
    profile: LinkProfile,
    seconds: float,
    *,
    adaptive: bool = True,
    outage_s: float = 0.0,
    settle_s: float = 5.0,
    backfill_wait_s: float = 20.0,
) -> RunResult:
    """Start everything on ``profile``, measure ``seconds``; an outage at 60 % of the run."""
    with tempfile.TemporaryDirectory(prefix="clinicam-rural-") as tmp, Testbed(["clinic"]) as bed:
        bed.shape("clinic", profile)
        stack = ClinicStack(bed, Path(tmp), adaptive=adaptive)
        try:
            stack.start()
            time.sleep(settle_s)
            out = Path(tmp) / "probe.json"
            probe = bed.popen(
                "server",
                [
                    "env",
                    f"PYTHONPATH={Path(__file__).resolve().parents[2]}",
                    sys.executable,
                    "-m",
                    "tests.netlab.room_probe",
                    "--port",
                    str(HTTP_PORT),
                    # one form: a random password may begin with "-" (1 in 64)
                    f"--password={stack.password}",
                    "--seconds",
                    str(seconds),
                    "--out",
                    str(out),
                    *(["--snapshot-at", str(0.6 * seconds - 0.5)] if outage_s > 0 else []),
                ],
            )
            started = time.monotonic()
            outage = None
            if outage_s > 0:
                time.sleep(0.6 * seconds)
                begin = time.monotonic()
                bed.outage("clinic", outage_s).wait()
                outage = (begin, time.monotonic())
            probe.wait(seconds + 60)
            ended = time.monotonic()
            if probe.returncode != 0 or not out.exists():
                raise AssertionError(f"the room probe failed ({probe.returncode})")
            result = json.loads(out.read_text())
            coverage = _coverage(stack, started, ended, backfill_wait_s if outage else 0.0)
            return RunResult(result, started, ended, outage, coverage)
        finally:
            stack.stop()


def _coverage(
    stack: ClinicStack, started: float, ended: float, wait_s: float
) -> list[tuple[float, float]]:
    """The archive's runs over the measured span, in monotonic time (after the back-fill)."""
    offset = time.time() - time.monotonic()
    start = datetime.fromtimestamp(started + offset - 30, UTC).isoformat()
    end = datetime.fromtimestamp(ended + offset + 30, UTC).isoformat()
    query = urlencode({"start": start, "end": end})
    url = f"http://127.0.0.1:{HTTP_PORT}/api/appliances/{DEVICE}/archive/coverage?{query}"
    headers = {"Authorization": f"Bearer {stack.device_token}"}
    code = (
        "import urllib.request\n"
        f"request = urllib.request.Request({url!r}, headers={headers!r})\n"
        "print(urllib.request.urlopen(request, timeout=5).read().decode())\n"
    )
    deadline = time.monotonic() + wait_s
    while True:
        runs = json.loads(stack.server_python(code))["runs"]
        spans = [
            (
                _mono(run["start"]) - offset,
                _mono(run["end"]) - offset,
            )
            for run in runs
        ]
        if time.monotonic() >= deadline or archive_gap_s(spans, started + 5, ended - 10) == 0:
            return spans
        time.sleep(2.0)


def _mono(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


# --- figures ----------------------------------------------------------------------------


def _frames_between(frames: list[list[float]], t0: float, t1: float) -> list[list[float]]:
    return [f for f in frames if t0 <= f[0] <= t1]


def live_fps(frames: list[list[float]], t0: float, t1: float) -> float:
    inside = _frames_between(frames, t0, t1)
    if len(inside) < 2:
        return 0.0
    return (inside[-1][1] - inside[0][1]) / (inside[-1][0] - inside[0][0])


def spans_fps(frames: list[list[float]], spans: list[tuple[float, float]]) -> float:
    """Live frames per second over ``spans`` (the time outside an outage)."""
    count = seconds = 0.0
    for t0, t1 in spans:
        inside = _frames_between(frames, t0, t1)
        if len(inside) >= 2:
            count += inside[-1][1] - inside[0][1]
            seconds += inside[-1][0] - inside[0][0]
    return count / seconds if seconds else 0.0


def _stalls(frames: list[list[float]], t0: float, t1: float) -> list[tuple[float, float]]:
    """Spans with no new frame, from the probe's 100 ms samples."""
    inside = _frames_between(frames, t0, t1)
    stalls, since = [], None
    for (t, count), (_, before) in zip(inside[1:], inside, strict=False):
        if count == before:
            since = since if since is not None else t
        elif since is not None:
            stalls.append((since, t))
            since = None
    if since is not None:
        stalls.append((since, inside[-1][0]))
    return stalls


def freeze_pct(frames: list[list[float]], spans: list[tuple[float, float]]) -> float:
    """Share of the time in ``spans`` with no new frame for over 500 ms."""
    frozen = total = 0.0
    for t0, t1 in spans:
        total += max(0.0, t1 - t0)
        frozen += sum(b - a for a, b in _stalls(frames, t0, t1) if b - a > FREEZE_S)
    return 100 * frozen / total if total else 0.0


def resume_after(frames: list[list[float]], outage_end: float) -> float | None:
    """Seconds from the link's return to the first new live frame."""
    before = [f for f in frames if f[0] <= outage_end]
    base = before[-1][1] if before else 0
    for t, count in frames:
        if t > outage_end and count > base:
            return t - outage_end
    return None


def archive_gap_s(spans: list[tuple[float, float]], t0: float, t1: float) -> float:
    """The longest stretch of ``[t0, t1]`` the archive does not hold (2 s joins runs)."""
    gap, at = 0.0, t0
    for start, end in sorted(spans):
        if end <= at:
            continue
        if start > at:
            gap = max(gap, min(start, t1) - at)
        at = max(at, end)
        if at >= t1:
            break
    return round(max(gap, t1 - at), 2)


def figures(result: RunResult) -> dict[str, Any]:
    """The issue's keys for one run."""
    probe, t0, t1 = result.probe, result.started, result.ended
    frames = probe["frames"]
    if result.outage is not None:
        o0, o1 = result.outage
        resume = resume_after(frames, o1)
        back = o1 + (resume if resume is not None else 0.0)
        spans = [(t0 + 2, o0), (back, t1)]
        # Commands while the link is up and steady (after an outage TCP backs off).
        control = [c for c in probe["control"] if c[0] < o0 - 6]
    else:
        resume, spans = None, [(t0 + 2, t1)]
        control = probe["control"]
    ok = [c[1] for c in control if c[2] == 200]
    # Glass to glass while the link is up: the figures read just before the outage.
    total = probe.get("latency_before", probe.get("latency", {})).get("total", {})
    return {
        "live_fps": round(spans_fps(frames, spans), 1),
        "freeze_pct": round(freeze_pct(frames, spans), 1),
        "g2g_p95_ms": total.get("p95_ms"),
        "control_p99_ms": round(percentile(ok, 99), 1) if ok else None,
        "control_failed": len(control) - len(ok),
        "resume_after_outage_s": round(resume, 2) if resume is not None else None,
        "archive_gap_s": archive_gap_s(result.coverage, t0 + 5, t1 - 10)
        if result.outage is not None
        else None,
        "rungs": sorted({c[1].get("rung") for c in probe["links"] if c[1].get("rung")}),
        "targets_kbps": [c[1].get("target_kbps") for c in probe["links"]][-5:],
    }

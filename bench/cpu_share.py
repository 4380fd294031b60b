"""Where the machine's CPU went over a span: the demo's processes, the browsers, the rest.

``take(pids)`` reads the CPU seconds (user + system, all threads) of each named process
in ``pids`` (the demo's ``demo.json`` lists them), of every Chromium process together,
and of the whole machine; ``shares(before, after, seconds)`` turns two readings into
per cent of one core over the span (200 % is both cores of a two-core machine).
"""

from __future__ import annotations

import os
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def _process_seconds(pid: int) -> float:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2 :].split()  # after "(comm)": state is field 3
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


def _chromium_seconds() -> float:
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")[0]
        except OSError:
            continue
        if b"chrom" in command.rsplit(b"/", 1)[-1]:
            total += _process_seconds(int(entry.name))
    return total


def _machine_seconds() -> float:
    first = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    busy = sum(int(v) for i, v in enumerate(first) if i not in (3, 4))  # all but idle, iowait
    return busy / TICK


def take(pids: dict[str, int]) -> dict[str, float]:
    """CPU seconds so far: each of ``pids``, all Chromium processes, the machine."""
    reading = {name: _process_seconds(pid) for name, pid in pids.items()}
    reading["chromium"] = _chromium_seconds()
    reading["machine"] = _machine_seconds()
    return reading


def shares(before: dict[str, float], after: dict[str, float], seconds: float) -> dict[str, int]:
    """Per cent of one core each used between two readings (Chromium processes that
    ended in between are not counted)."""
    return {
        name: round(100 * max(0.0, after[name] - before.get(name, 0.0)) / seconds) for name in after
    }

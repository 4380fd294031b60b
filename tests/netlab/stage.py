"""The delay stage: a process that holds queued packets for a while, then accepts them.

One stage serves every delay line of a testbed: a single thread, one netlink socket
per (namespace, queue), a deque of (release time, packet id) per queue, and a
``select`` that sleeps until the next release. With a fixed delay the deque is already
in release order, so releasing is "pop while due" and one batch verdict; jitter is
clamped so that no packet leaves before the one queued ahead of it (order kept, as on
a real link).

It runs as its own process (``python -m tests.netlab.stage``, started by
``tests.netlab.delay.DelayStage``), not a thread of the caller, so that its timing
does not wait on the caller's GIL (a test process that also runs an aiortc server,
say). It asks for SCHED_FIFO priority 1 (else nice -10): a link's delay should not
grow because Chromium is busy on the same two cores, and the stage itself needs
1–3 % of a core (measured: 1.1–1.7 % at 600 kbit/s, 2–3 % at 2 Mbit/s, one way).
It is driven by JSON lines on stdin, answers each with one JSON line on stdout, and
exits on EOF, releasing what it holds: if the caller dies, the pipe closes and the
stage goes with it.

Requests: ``{"op": "bind", "key": K, "netns": PATH, "queue": N}``,
``{"op": "delay", "key": K, "delay_ms": D, "jitter_ms": J}``, ``{"op": "stats"}``.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import select
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Final

from tests.netlab.nfqueue import QueueSocket

_EARLY_S: Final = 0.00005  # release up to this early rather than sleep again for nothing


@dataclass
class _DelayLine:
    sock: QueueSocket
    delay_s: float = 0.0
    jitter_s: float = 0.0
    pending: deque[tuple[float, int]] = field(default_factory=deque)
    last_release: float = 0.0
    packets: int = 0

    def enqueue(self, ids: list[int], now: float) -> None:
        for packet_id in ids:
            release = now + self.delay_s
            if self.jitter_s:
                release += random.uniform(-self.jitter_s, self.jitter_s)
            # Never before the packet ahead: order is kept when the delay changes or jitters.
            release = max(release, self.last_release)
            self.last_release = release
            self.pending.append((release, packet_id))
        self.packets += len(ids)

    def release_due(self, now: float) -> None:
        last = None
        pending = self.pending
        while pending and pending[0][0] <= now + _EARLY_S:
            last = pending.popleft()[1]
        if last is not None:
            self.sock.accept_upto(last)

    def release_all(self) -> None:
        if self.pending:
            self.sock.accept_upto(self.pending[-1][1])
            self.pending.clear()


class _Stage:
    def __init__(self) -> None:
        self.lines: dict[str, _DelayLine] = {}
        self.readers: dict[int, _DelayLine] = {}
        self.buffer = b""

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request.get("op")
        if op == "bind":
            key = str(request["key"])
            if key not in self.lines:
                sock = QueueSocket(int(request["queue"]), request.get("netns"))
                line = _DelayLine(sock)
                self.lines[key] = line
                self.readers[sock.fileno()] = line
            return {"ok": True}
        if op == "delay":
            line = self.lines[str(request["key"])]
            line.delay_s = float(request["delay_ms"]) / 1000
            line.jitter_s = float(request.get("jitter_ms", 0.0)) / 1000
            return {"ok": True}
        if op == "stats":
            return {
                "ok": True,
                "lines": {
                    k: {"packets": v.packets, "held": len(v.pending), "overflows": v.sock.overflows}
                    for k, v in self.lines.items()
                },
            }
        return {"ok": False, "error": f"unknown op {op!r}"}

    def control(self, fd: int) -> bool:
        """Answer whole request lines from stdin; False on EOF."""
        chunk = os.read(fd, 65536)
        if not chunk:
            return False
        self.buffer += chunk
        while b"\n" in self.buffer:
            raw, self.buffer = self.buffer.split(b"\n", 1)
            try:
                reply = self.handle(json.loads(raw))
            except Exception as exc:  # reported to the caller, who raises it
                reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            sys.stdout.write(json.dumps(reply) + "\n")
            sys.stdout.flush()
        return True

    def run(self) -> None:
        """The loop. ``select.select``, not ``selectors``: its timeout is in microseconds,
        where epoll's is rounded up to the next millisecond (a late bias of ≈0.5 ms per
        release), and a stage has a handful of sockets at most."""
        stdin = sys.stdin.fileno()
        running = True
        while running:
            heads = [line.pending[0][0] for line in self.lines.values() if line.pending]
            timeout = max(0.0, min(heads) - time.monotonic()) if heads else None
            readable, _, _ = select.select([stdin, *self.readers], [], [], timeout)
            now = time.monotonic()
            for fd in readable:
                if fd == stdin:
                    running = self.control(stdin)
                else:
                    line = self.readers[fd]
                    line.enqueue(line.sock.read_ids(), now)
            now = time.monotonic()
            for line in self.lines.values():
                line.release_due(now)
        for line in self.lines.values():
            line.release_all()
            line.sock.close()


def _prioritise() -> None:
    """Run before normal tasks (SCHED_FIFO 1), or at least at nice -10."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
    except OSError:
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, 0, -10)


def main() -> None:
    _prioritise()
    _Stage().run()


if __name__ == "__main__":
    main()

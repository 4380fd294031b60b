"""Measuring processes run inside the namespaces: a UDP echo and pinger, a sink and blaster.

``python -m tests.netlab.probe echo|ping|sink|blast …`` (stdlib only, so it starts
fast). Each prints ``ready`` or ``start <monotonic>`` when it is listening or
sending, and its results as one JSON line at the end. CLOCK_MONOTONIC is the same in
every network namespace, so times from different processes compare directly.

The echo server counts the probes of each session, so the pinger can tell uplink
loss (probes that never reached the server) from downlink loss (replies that never
came back), instead of only a round-trip figure that mixes the two.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import select
import socket
import struct
import sys
import time
from typing import Any, Final

_PROBE = struct.Struct(">cQI")  # kind, session, seq
_COUNT = struct.Struct(">I")
_BLAST = struct.Struct(">cI")
UDP_OVERHEAD: Final = 42  # IPv4 20 + UDP 8 + Ethernet 14: what tbf counts on top of the payload
_STAT_TRIES: Final = 30


def _udp(bind_port: int = 0) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, 33, 8 << 20)  # SO_RCVBUFFORCE: a sink must not drop
    sock.bind(("0.0.0.0", bind_port))
    return sock


def _say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def prioritise() -> None:
    """SCHED_FIFO 1 (else nice -10) for the light, timing-critical probes (echo, ping).

    The RTT should be the link's, not the wait for a core on a busy two-core host.
    The blaster stays an ordinary task: unpaced, it would hold a core.
    """
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
    except OSError:
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, 0, -10)


def echo(port: int) -> None:
    """Echo probes back with the count of that session's probes seen so far."""
    sock = _udp(port)
    counts: dict[int, int] = {}
    _say("ready")
    while True:
        data, peer = sock.recvfrom(65536)
        if len(data) < _PROBE.size:
            continue
        kind, session, seq = _PROBE.unpack_from(data)
        if kind == b"P":
            counts[session] = counts.get(session, 0) + 1
            reply = _PROBE.pack(b"R", session, seq) + _COUNT.pack(counts[session])
            sock.sendto(reply + data[len(reply) :], peer)
        elif kind == b"S":
            sock.sendto(_PROBE.pack(b"T", session, 0) + _COUNT.pack(counts.get(session, 0)), peer)


def ping(host: str, port: int, count: int, interval_s: float, drain_s: float, size: int) -> None:
    """Send ``count`` probes ``interval_s`` apart; report each one's send time and RTT."""
    sock = _udp()
    session = int.from_bytes(os.urandom(8), "big")
    pad = b"\0" * max(0, size - _PROBE.size)
    sent_at: list[float] = []
    rtt_ms: list[float | None] = [None] * count
    start = time.monotonic()
    _say(f"start {start:.6f}")
    end = start + (count - 1) * interval_s + drain_s
    replies = 0
    while True:
        now = time.monotonic()
        while len(sent_at) < count and now >= start + len(sent_at) * interval_s:
            sent_at.append(now)
            sock.sendto(_PROBE.pack(b"P", session, len(sent_at) - 1) + pad, (host, port))
            now = time.monotonic()
        if now >= end or (len(sent_at) == count and replies == count):
            break
        wake = start + len(sent_at) * interval_s if len(sent_at) < count else end
        ready, _, _ = select.select([sock], [], [], max(0.0, min(wake, end) - now))
        if ready:
            data = sock.recv(65536)
            got = time.monotonic()
            kind, got_session, seq = _PROBE.unpack_from(data)
            if kind == b"R" and got_session == session and rtt_ms[seq] is None:
                rtt_ms[seq] = (got - sent_at[seq]) * 1000
                replies += 1
    server_received = _server_count(sock, session, host, port)
    result = {
        "sent": count,
        "server_received": server_received,
        "probes": [[t, r] for t, r in zip(sent_at, rtt_ms, strict=True)],
    }
    _say(json.dumps(result))


def _server_count(sock: socket.socket, session: int, host: str, port: int) -> int | None:
    """Ask the echo server how many probes it saw (retried: the question may be lost too)."""
    for _ in range(_STAT_TRIES):
        sock.sendto(_PROBE.pack(b"S", session, 0), (host, port))
        deadline = time.monotonic() + 0.2
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([sock], [], [], left)
            if not ready:
                break
            data = sock.recv(65536)
            kind, got_session, _seq = _PROBE.unpack_from(data)
            if kind == b"T" and got_session == session:
                return int(_COUNT.unpack_from(data, _PROBE.size)[0])
    return None


def sink(port: int, idle_s: float, max_s: float) -> None:
    """Count blast packets until ``idle_s`` passes without one (or ``max_s`` in all)."""
    sock = _udp(port)
    _say("ready")
    packets = wire_bytes = first_bytes = 0
    first = last = 0.0
    deadline = time.monotonic() + max_s
    while (now := time.monotonic()) < deadline:
        wait = deadline - now if not packets else min(deadline - now, last + idle_s - now)
        if wait <= 0:
            break
        ready, _, _ = select.select([sock], [], [], wait)
        if not ready:
            continue
        data = sock.recv(65536)
        last = time.monotonic()
        if not packets:
            first, first_bytes = last, len(data) + UDP_OVERHEAD
        packets += 1
        wire_bytes += len(data) + UDP_OVERHEAD
    span = last - first
    kbit = (wire_bytes - first_bytes) * 8 / span / 1000 if span > 0 else 0.0
    _say(json.dumps({"packets": packets, "wire_bytes": wire_bytes, "seconds": span, "kbit": kbit}))


def blast(host: str, port: int, kbit: float, duration_s: float, size: int) -> None:
    """Send ``size``-byte datagrams at ``kbit`` (wire rate; 0 = as fast as possible)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    payload = b"B" + b"\0" * (size - 1)
    per_packet_s = (size + UDP_OVERHEAD) * 8 / (kbit * 1000) if kbit > 0 else 0.0
    start = time.monotonic()
    _say(f"start {start:.6f}")
    sent = 0
    while (now := time.monotonic()) < start + duration_s:
        if per_packet_s:
            due = int((now - start) / per_packet_s) + 1
            if sent >= due:
                time.sleep(min(0.005, start + due * per_packet_s - now))
                continue
        with contextlib.suppress(OSError):  # ENOBUFS, a refused port: the link's business
            sock.sendto(payload, (host, port))
        sent += 1
    _say(json.dumps({"sent": sent, "seconds": time.monotonic() - start}))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.netlab.probe")
    sub = parser.add_subparsers(dest="mode", required=True)
    p_echo = sub.add_parser("echo")
    p_echo.add_argument("--port", type=int, required=True)
    p_ping = sub.add_parser("ping")
    p_ping.add_argument("--host", required=True)
    p_ping.add_argument("--port", type=int, required=True)
    p_ping.add_argument("--count", type=int, default=200)
    p_ping.add_argument("--interval", type=float, default=0.01)
    p_ping.add_argument("--drain", type=float, default=1.5)
    p_ping.add_argument("--size", type=int, default=64)
    p_sink = sub.add_parser("sink")
    p_sink.add_argument("--port", type=int, required=True)
    p_sink.add_argument("--idle", type=float, default=1.0)
    p_sink.add_argument("--max", type=float, default=30.0)
    p_blast = sub.add_parser("blast")
    p_blast.add_argument("--host", required=True)
    p_blast.add_argument("--port", type=int, required=True)
    p_blast.add_argument("--kbit", type=float, default=0.0)
    p_blast.add_argument("--duration", type=float, default=2.0)
    p_blast.add_argument("--size", type=int, default=1200)
    args: Any = parser.parse_args(argv)
    if args.mode in ("echo", "ping"):
        prioritise()
    if args.mode == "echo":
        echo(args.port)
    elif args.mode == "ping":
        ping(args.host, args.port, args.count, args.interval, args.drain, args.size)
    elif args.mode == "sink":
        sink(args.port, args.idle, args.max)
    else:
        blast(args.host, args.port, args.kbit, args.duration, args.size)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()

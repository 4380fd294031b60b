"""sd_notify(3) in pure Python: tell systemd the service is ready, alive, stopping.

Under a ``Type=notify`` unit systemd passes ``$NOTIFY_SOCKET`` (a path, or an abstract
name starting with ``@``); every function here is a no-op without it, so the same
program runs from a terminal, in tests and in ``clinicam demo``.

The watchdog (``WatchdogSec=`` → ``$WATCHDOG_USEC``) is fed by a task on the program's
own event loop, every half interval. If the loop stalls (a blocking call, a deadlock),
the pings stop and systemd kills and restarts the service: that is the point. An
optional health predicate withholds the pings while the program is alive but broken
(the appliance: a task that must run forever has died) for longer than a grace period.

``$CLINICAM_HEALTH_FILE`` mirrors the notifications into a small JSON file (written at
READY=1, refreshed with every WATCHDOG=1, removed at STOPPING=1); ``clinicam appliance
update`` reads it to see that the new release came up. Units keep it in
``RuntimeDirectory=`` (tmpfs), never on the SD card.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Final

from clinicam import __version__

_LOGGER = logging.getLogger(__name__)

ENV_NOTIFY_SOCKET: Final = "NOTIFY_SOCKET"
ENV_WATCHDOG_USEC: Final = "WATCHDOG_USEC"
ENV_WATCHDOG_PID: Final = "WATCHDOG_PID"
ENV_HEALTH_FILE: Final = "CLINICAM_HEALTH_FILE"


def monotonic() -> float:
    """CLOCK_MONOTONIC: one clock for every process since boot, immune to NTP jumps."""
    return time.clock_gettime(time.CLOCK_MONOTONIC)


@dataclass(frozen=True)
class HealthReport:
    """What the health file says about the running program."""

    pid: int
    release: str  # real path of the program (sys.argv[0]): which release is running
    version: str
    ready_mono: float  # CLOCK_MONOTONIC when READY=1 was sent
    beat_mono: float  # CLOCK_MONOTONIC of the last READY/WATCHDOG
    watchdog_s: float | None  # WatchdogSec: a beat older than this is stale
    time: float  # wall clock of the last beat, for people reading the file


def read_health(path: Path) -> HealthReport | None:
    """The health file's report, or None if it is missing or unreadable."""
    try:
        return HealthReport(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None


class _HealthMirror:
    def __init__(self) -> None:
        self.ready_mono: float | None = None

    def update(self, fields: Mapping[str, str]) -> None:
        raw = os.environ.get(ENV_HEALTH_FILE)
        if not raw:
            return
        path = Path(raw)
        try:
            if fields.get("STOPPING") == "1":
                self.ready_mono = None
                path.unlink(missing_ok=True)
                return
            if fields.get("READY") == "1":
                self.ready_mono = monotonic()
            if self.ready_mono is None or "1" not in (fields.get("READY"), fields.get("WATCHDOG")):
                return
            report = HealthReport(
                pid=os.getpid(),
                release=os.path.realpath(sys.argv[0]),
                version=__version__,
                ready_mono=self.ready_mono,
                beat_mono=monotonic(),
                watchdog_s=watchdog_interval(),
                time=time.time(),
            )
            tmp = path.with_name(f".{path.name}.{os.getpid()}")
            tmp.write_text(json.dumps(asdict(report)))
            os.replace(tmp, path)  # tmpfs: no fsync needed, a reader sees old or new
        except OSError as exc:
            _LOGGER.warning("cannot write the health file %s: %s", path, exc)


_MIRROR = _HealthMirror()


def _address(raw: str) -> str | None:
    if raw.startswith("@"):
        return "\0" + raw[1:]
    if raw.startswith("/"):
        return raw
    return None  # vsock: addresses are not supported


def notify(state: str) -> bool:
    """Send ``state`` (``KEY=value`` lines) to systemd; False outside systemd or on error.

    Never blocks: a full socket queue drops the message rather than stall the loop.
    """
    _MIRROR.update(dict(line.split("=", 1) for line in state.splitlines() if "=" in line))
    address = _address(os.environ.get(ENV_NOTIFY_SOCKET, ""))
    if address is None:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            sock.sendto(state.encode(), address)
    except OSError as exc:
        _LOGGER.debug("sd_notify to %s failed: %s", address, exc)
        return False
    return True


def ready(status: str) -> bool:
    """READY=1 with a one-line status for ``systemctl status``."""
    return notify(f"READY=1\nSTATUS={status}")


def stopping(status: str = "stopping") -> bool:
    """STOPPING=1: shutdown has begun (systemd now applies TimeoutStopSec=)."""
    return notify(f"STOPPING=1\nSTATUS={status}")


def watchdog_interval(environ: Mapping[str, str] | None = None) -> float | None:
    """``WatchdogSec`` in seconds if the watchdog is on for this process, else None."""
    env = os.environ if environ is None else environ
    try:
        usec = int(env.get(ENV_WATCHDOG_USEC, ""))
        pid = int(env.get(ENV_WATCHDOG_PID) or os.getpid())
    except ValueError:
        return None
    if usec <= 0 or pid != os.getpid():
        return None
    return usec / 1_000_000


async def watchdog_loop(
    interval: float, *, healthy: Callable[[], bool] | None = None, grace_s: float = 0.0
) -> None:
    """Send WATCHDOG=1 every ``interval / 2`` until cancelled.

    It runs on the event loop it guards, so a stalled loop sends nothing. If ``healthy``
    returns False (or raises) for longer than ``grace_s``, pings stop until it recovers.
    """
    unhealthy_since: float | None = None
    while True:
        try:
            ok = healthy is None or healthy()
        except Exception:
            _LOGGER.exception("health check failed")
            ok = False
        now = monotonic()
        if ok:
            unhealthy_since = None
        elif unhealthy_since is None:
            unhealthy_since = now
            _LOGGER.warning("unhealthy: withholding watchdog pings after %.0f s", grace_s)
        if unhealthy_since is None or now - unhealthy_since <= grace_s:
            notify("WATCHDOG=1")
        await asyncio.sleep(interval / 2)


def start_watchdog(
    *, healthy: Callable[[], bool] | None = None, grace_s: float = 0.0
) -> asyncio.Task[None] | None:
    """Start :func:`watchdog_loop` on the running loop if systemd asked for a watchdog."""
    interval = watchdog_interval()
    if interval is None:
        return None
    return asyncio.create_task(
        watchdog_loop(interval, healthy=healthy, grace_s=grace_s), name="watchdog"
    )


def stop_watchdog(task: asyncio.Task[None] | None) -> None:
    """Cancel the watchdog task (at shutdown, after :func:`stopping`)."""
    if task is not None:
        task.cancel()

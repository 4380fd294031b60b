"""sd_notify against a real notify socket: READY, watchdog pings that stop when the loop
stalls, STOPPING; and the real server and appliance programs under a pretend systemd.

The tests bind the AF_UNIX datagram socket systemd would, and pass ``NOTIFY_SOCKET`` and
``WATCHDOG_USEC=200000`` (pings every 0.1 s) to the program in a subprocess.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from clinicam import sdnotify
from clinicam.tomlwrite import dumps
from clinicam_app.procs import free_port
from server.config import ServerConfig

ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
WATCHDOG_USEC = "200000"  # 0.2 s: a ping every 0.1 s
PING_S = 0.1
START_TIMEOUT_S = 60.0


class NotifySocket:
    """The service manager's end: a bound datagram socket and what arrived, with times."""

    def __init__(self, path: Path | None = None, *, abstract: str | None = None) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract is not None:
            self.sock.bind("\0" + abstract)
            self.address = "@" + abstract
        else:
            assert path is not None
            self.sock.bind(str(path))
            self.address = str(path)
        self.sock.settimeout(0.05)
        self.messages: list[tuple[float, str]] = []
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while not self._closed.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            self.messages.append((time.monotonic(), data.decode()))

    def close(self) -> None:
        self._closed.set()
        self._thread.join(timeout=2)
        self.sock.close()

    def wait_for(self, line: str, timeout_s: float, after: int = 0) -> int:
        """Index of the first message from ``after`` on that has ``line``; fail on timeout."""
        deadline = time.monotonic() + timeout_s
        while True:
            for index, (_, text) in enumerate(self.messages[after:], after):
                if line in text.splitlines():
                    return index
            if time.monotonic() > deadline:
                raise AssertionError(f"no {line!r} within {timeout_s} s; got {self.messages}")
            time.sleep(0.01)

    def pings(self, start: int = 0, end: int | None = None) -> list[float]:
        """Arrival times of WATCHDOG=1 among messages ``start:end``."""
        return [t for t, text in self.messages[start:end] if "WATCHDOG=1" in text.splitlines()]


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[NotifySocket]:
    path = tmp_path / "notify"
    if len(str(path)) > 100:  # sun_path holds 108 bytes
        path = Path(tempfile.mkdtemp(prefix="sdn-")) / "notify"
    receiver = NotifySocket(path)
    yield receiver
    receiver.close()


def gaps(times: list[float]) -> list[float]:
    return [b - a for a, b in itertools.pairwise(times)]


def pretend_systemd(receiver: NotifySocket, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLINICAM_", "WATCHDOG_"))}
    env.update(NOTIFY_SOCKET=receiver.address, WATCHDOG_USEC=WATCHDOG_USEC, **extra)
    return env


# --- the notifier itself ------------------------------------------------------------


def test_notify_is_a_no_op_outside_systemd(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NOTIFY_SOCKET", "CLINICAM_HEALTH_FILE", "WATCHDOG_USEC", "WATCHDOG_PID"):
        monkeypatch.delenv(name, raising=False)
    assert sdnotify.notify("READY=1") is False
    assert sdnotify.start_watchdog() is None


def test_notify_reaches_a_path_and_an_abstract_socket(
    notify_socket: NotifySocket, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", notify_socket.address)
    assert sdnotify.ready("up")
    notify_socket.wait_for("READY=1", 2.0)
    assert notify_socket.messages[0][1] == "READY=1\nSTATUS=up"

    abstract = NotifySocket(abstract=f"clinicam-test-{os.getpid()}")
    try:
        monkeypatch.setenv("NOTIFY_SOCKET", abstract.address)
        assert sdnotify.stopping("bye")
        abstract.wait_for("STOPPING=1", 2.0)
    finally:
        abstract.close()
    monkeypatch.setenv("NOTIFY_SOCKET", str(Path(notify_socket.address).with_name("nobody")))
    assert sdnotify.notify("WATCHDOG=1") is False  # nobody listening: no exception


def test_watchdog_interval_follows_systemd_rules() -> None:
    pid = str(os.getpid())
    assert sdnotify.watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 30.0
    assert sdnotify.watchdog_interval({"WATCHDOG_USEC": "200000", "WATCHDOG_PID": pid}) == 0.2
    assert sdnotify.watchdog_interval({"WATCHDOG_USEC": "200000", "WATCHDOG_PID": "1"}) is None
    assert sdnotify.watchdog_interval({"WATCHDOG_USEC": "0"}) is None
    assert sdnotify.watchdog_interval({"WATCHDOG_USEC": "soon"}) is None
    assert sdnotify.watchdog_interval({}) is None


def test_health_file_mirrors_ready_watchdog_and_stopping(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    health = tmp_path / "health.json"
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.setenv("CLINICAM_HEALTH_FILE", str(health))
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    sdnotify.notify("WATCHDOG=1")
    assert not health.exists()  # not ready yet: nothing to report
    sdnotify.ready("up")
    first = sdnotify.read_health(health)
    assert first is not None
    assert (first.pid, first.watchdog_s) == (os.getpid(), 30.0)
    assert first.release == os.path.realpath(sys.argv[0])
    sdnotify.notify("WATCHDOG=1")
    beat = sdnotify.read_health(health)
    assert beat is not None
    assert beat.ready_mono == first.ready_mono and beat.beat_mono >= first.beat_mono
    sdnotify.stopping()
    assert not health.exists()


async def test_unhealthy_program_stops_pinging_after_the_grace(
    notify_socket: NotifySocket, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", notify_socket.address)
    monkeypatch.delenv("CLINICAM_HEALTH_FILE", raising=False)
    healthy = True
    task = asyncio.create_task(
        sdnotify.watchdog_loop(0.1, healthy=lambda: healthy, grace_s=0.2)  # every 0.05 s
    )
    try:
        await asyncio.sleep(0.3)
        healthy = False
        broke = time.monotonic()
        await asyncio.sleep(0.7)
        pings = notify_socket.pings()
        assert max(pings) - broke < 0.35  # pinged through the grace, then stopped
        assert [t for t in pings if t > broke + 0.4] == []
        healthy = True
        await asyncio.sleep(0.2)
        assert notify_socket.pings()[-1] > broke + 0.7  # recovered: pings again
    finally:
        task.cancel()


# --- a real event loop that stalls --------------------------------------------------

STALL_PROGRAM = """
import asyncio, time
from clinicam import sdnotify

async def block_the_loop():
    sdnotify.notify("STATUS=stalling")
    time.sleep(1.0)  # a blocking call on the loop: nothing else runs
    sdnotify.notify("STATUS=resumed")

async def main():
    sdnotify.ready("stall test")
    watchdog = sdnotify.start_watchdog()
    assert watchdog is not None
    await asyncio.sleep(1.0)
    await asyncio.create_task(block_the_loop())
    await asyncio.sleep(1.0)
    sdnotify.stopping()
    sdnotify.stop_watchdog(watchdog)

asyncio.run(main())
"""


def test_watchdog_pings_stop_while_the_loop_is_blocked(notify_socket: NotifySocket) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", STALL_PROGRAM],
        cwd=ROOT,
        env=pretend_systemd(notify_socket),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    stopped = notify_socket.wait_for("STOPPING=1", 5.0)
    assert notify_socket.messages[0][1] == "READY=1\nSTATUS=stall test"
    stall = notify_socket.wait_for("STATUS=stalling", 0)
    resumed = notify_socket.wait_for("STATUS=resumed", 0)

    before, during = notify_socket.pings(0, stall), notify_socket.pings(stall, resumed)
    after = notify_socket.pings(resumed, stopped)
    assert during == []
    for healthy in (before, after):  # ~1 s each at a ping every 0.1 s
        assert len(healthy) >= 7, healthy
        assert 0.07 < statistics.median(gaps(healthy)) < 0.15, gaps(healthy)
    assert after[0] - before[-1] >= 1.0  # the stall shows as a hole in the pings
    assert after[0] - notify_socket.messages[resumed][0] < 1.5 * PING_S  # resume at once


# --- the real programs --------------------------------------------------------------


def _run_program(
    args: list[str], receiver: NotifySocket, health: Path, log: Path, ready_check: Callable[[], Any]
) -> tuple[str, subprocess.Popen[bytes]]:
    """Start ``python -m clinicam_app ARGS`` under the pretend systemd; return READY's status."""
    env = pretend_systemd(receiver, CLINICAM_HEALTH_FILE=str(health))
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "clinicam_app", *args],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        ready = receiver.wait_for("READY=1", START_TIMEOUT_S)
        ready_check()
        text = receiver.messages[ready][1]
        status = next(line for line in text.splitlines() if line.startswith("STATUS="))
        return status, proc
    except BaseException:
        proc.kill()
        proc.wait()
        print(log.read_text())
        raise


def _stop_and_check(proc: subprocess.Popen[bytes], receiver: NotifySocket, health: Path) -> None:
    report = sdnotify.read_health(health)
    assert report is not None and report.pid == proc.pid
    ready = receiver.wait_for("READY=1", 0)
    receiver.wait_for("WATCHDOG=1", 2.0, after=ready)
    time.sleep(0.6)
    pings = receiver.pings(ready)
    assert len(pings) >= 4, pings  # keeps coming every 0.1 s
    assert max(gaps(pings)) < 1.0  # no long stall on a busy CI machine either
    proc.send_signal(signal.SIGTERM)
    stopping = receiver.wait_for("STOPPING=1", 20.0, after=ready)
    assert proc.wait(timeout=30) == 0
    assert not health.exists()
    late = receiver.pings(stopping)
    assert late == [], "no watchdog pings after STOPPING=1"


def test_server_notifies_ready_after_listening_and_stopping_on_sigterm(
    tmp_path: Path, notify_socket: NotifySocket
) -> None:
    port = free_port()
    data: dict[str, Any] = {
        "state_dir": str(tmp_path / "state"),
        "http": {"host": HOST, "port": port, "cookie_secure": False},
        "mqtt": {"port": 1, "username": "server", "password": "x"},  # nothing listens
    }
    ServerConfig.model_validate(data)
    config = tmp_path / "server.toml"
    config.write_text(dumps(data))

    def port_is_open() -> None:
        with socket.create_connection((HOST, port), timeout=2):
            pass  # READY=1 came after the site started: this connects

    health = tmp_path / "health.json"
    status, proc = _run_program(
        ["server", "--config", str(config)], notify_socket, health, tmp_path / "log", port_is_open
    )
    try:
        assert status == f"STATUS=serving on http://{HOST}:{port}"
        _stop_and_check(proc, notify_socket, health)
    finally:
        proc.kill()
        proc.wait()


def test_appliance_notifies_ready_pings_and_stopping(
    tmp_path: Path, notify_socket: NotifySocket
) -> None:
    url = f"http://{HOST}:{free_port()}"  # no server: the uplink keeps retrying
    data: dict[str, Any] = {
        "device_id": "cam-a",
        "backend": "sim",
        "state_dir": str(tmp_path / "state"),
        "mqtt": {"port": free_port(), "username": "cam-a", "password": "x"},  # no broker
        "server": {"url": url},
    }
    config = tmp_path / "appliance.toml"
    config.write_text(dumps(data))
    health = tmp_path / "health.json"
    status, proc = _run_program(
        ["appliance", "run", "--config", str(config)],
        notify_socket,
        health,
        tmp_path / "log",
        lambda: None,
    )
    try:
        assert status.startswith("STATUS=cam-a (sim): broker 127.0.0.1:")
        assert status.endswith(f"streaming to {url}")
        _stop_and_check(proc, notify_socket, health)
    finally:
        proc.kill()
        proc.wait()

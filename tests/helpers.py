"""Helpers shared by the tests: processes, ports, readiness waits, image measures."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from clinicam_app.procs import free_port

__all__ = [
    "CHROMIUM",
    "CHROMIUM_ARGS",
    "PC_CONNECTED",
    "demo_info",
    "free_port",
    "image_shift",
    "join_demo_room",
    "launch_demo",
    "percentile",
    "pid_alive",
    "running_demo",
    "start_demo",
    "stop_demo",
    "wait_until",
]


def wait_until(predicate: Callable[[], Any], timeout_s: float, what: str, step: float = 0.1) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout_s
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:
            last_exc = exc
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what} ({last_exc})")


def http_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


# Several browsers share CI's two cores with the whole stack: ask them for VGA webcams.
TEST_WEBCAM_ENV = {
    "CLINICAM_SERVER__WEBCAM__WIDTH": "640",
    "CLINICAM_SERVER__WEBCAM__HEIGHT": "480",
    "CLINICAM_SERVER__WEBCAM__FPS": "15",
}


CHROMIUM = "/usr/bin/chromium"  # Debian's; never a browser downloaded by a test tool
# The page's call is up. ``pc`` is a global of the page's script: while a navigation
# (the station's sign-in redirect) has not yet run it, the name does not exist at all.
PC_CONNECTED = "typeof pc !== 'undefined' && pc !== null && pc.connectionState === 'connected'"

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--allow-loopback-in-peer-connection",
]


def launch_demo(
    state_dir: Path,
    password: str,
    *extra: str,
    env: dict[str, str] | None = None,
    log: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``clinicam demo`` on a free port in its own session (so Ctrl-C can be sent)."""
    out = log.open("wb") if log is not None else subprocess.DEVNULL
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "clinicam_app",
            "demo",
            "--port",
            str(free_port()),
            "--state-dir",
            str(state_dir),
            "--password",
            password,
            "--loopback-only",
            *extra,
        ],
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, **TEST_WEBCAM_ENV, **(env or {})},
    )


def demo_info(
    proc: subprocess.Popen[bytes], state_dir: Path, timeout_s: float = 120
) -> dict[str, Any]:
    """The demo's ``demo.json`` as soon as it is written (the demo is up)."""
    info_file = state_dir / "demo.json"
    deadline = time.monotonic() + timeout_s
    while not info_file.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"demo did not start (exit code {proc.returncode})")
        time.sleep(0.02)
    info: dict[str, Any] = json.loads(info_file.read_text())
    return info


def start_demo(
    state_dir: Path, password: str, *extra: str, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    """Run ``clinicam demo`` and wait until the appliance streams to the server."""
    proc = launch_demo(state_dir, password, *extra, env=env, log=state_dir.parent / "demo.log")
    try:
        info = demo_info(proc, state_dir)

        def streaming() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"demo exited with {proc.returncode}")
            health = http_json(info["url"] + "/healthz")
            return bool(health["appliances"]["appliance-1"]["streaming"])

        wait_until(streaming, 90, "the demo to stream")
    except BaseException:  # never leave a half-started demo running behind a failed test
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        raise
    return proc, info


@contextmanager
def running_demo(
    state_dir: Path, password: str, *extra: str, env: dict[str, str] | None = None
) -> Iterator[dict[str, Any]]:
    """A streaming demo (:func:`start_demo`) for as long as the block runs; then Ctrl-C."""
    proc, info = start_demo(state_dir, password, *extra, env=env)
    try:
        yield info
    finally:
        if proc.poll() is None:
            stop_demo(proc, whole_group=True)


def join_demo_room(page: Any, info: dict[str, Any], password: str, *, tap: bool = False) -> None:
    """Sign in as the demo's expert from the lobby's address and join its consultation
    (by touch when ``tap``), as a person would: the page asks for the login first."""
    press = page.tap if tap else page.click
    page.goto(info["url"])
    page.fill("#username", info["username"])
    page.fill("#password", password)
    press("#login-button")
    press("a.join")
    page.wait_for_url("**/room/**")


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def stop_demo(proc: subprocess.Popen[bytes], *, whole_group: bool) -> int:
    """Ctrl-C: to the whole process group (a terminal) or only to the demo process."""
    if whole_group:
        os.killpg(proc.pid, signal.SIGINT)
    else:
        proc.send_signal(signal.SIGINT)
    return proc.wait(timeout=60)


def image_shift(before: np.ndarray, after: np.ndarray) -> tuple[int, int]:
    """(dx, dy) such that ``after[y, x] ≈ before[y - dy, x - dx]`` (phase correlation)."""
    a = before.astype(np.float64) - before.mean()
    b = after.astype(np.float64) - after.mean()
    window = np.outer(np.hanning(a.shape[0]), np.hanning(a.shape[1]))
    fa, fb = np.fft.fft2(a * window), np.fft.fft2(b * window)
    cross = fb * np.conj(fa)
    cross /= np.abs(cross) + 1e-9
    corr = np.abs(np.fft.ifft2(cross))
    dy, dx = np.unravel_index(int(np.argmax(corr)), corr.shape)
    h, w = corr.shape
    return (int(dx) - w if dx > w // 2 else int(dx)), (int(dy) - h if dy > h // 2 else int(dy))

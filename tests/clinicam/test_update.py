"""``clinicam appliance update``: a release that does not come up healthy is rolled back.

CI has no systemd, so the restart command is a stand-in for ``systemctl restart``: it
stops the running program and starts ``<root>/current/bin/clinicam-fake`` as a plain
background process, the way systemd would start ExecStart. The fake programs use the
real :mod:`clinicam.sdnotify`, so the health file they write is the one the updater
reads in the field. A watchdog ping every 0.2 s keeps the good one's report fresh.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import threading
from pathlib import Path

import pytest

from clinicam import sdnotify
from clinicam_app.update import main_update

ROOT = Path(__file__).resolve().parents[2]
# Time for a release to come up. A healthy one is seen at once; only releases that never
# become healthy wait this long. 3 s was too short for a cold Python start on a loaded CI.
HEALTH_TIMEOUT_S = "10"
# A ping every 0.2 s against a 0.4 s watchdog: one ping may be 0.2 s late on a loaded
# machine before the report counts as stale (0.2 s with 0.1 s was one flake in six CI runs).
WATCHDOG_USEC = "400000"
# Long enough to see the stalled program's last ping (0.1 s after ready) go stale (0.4 s).
SETTLE_S = "0.7"

FAKE_PROGRAM = """#!{python}
import asyncio, signal, sys, time
sys.path.insert(0, {root!r})
from clinicam import sdnotify

MODE = {mode!r}

async def main():
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await asyncio.sleep(0.2)  # starting up
    if MODE == "exits":
        sys.exit(1)
    if MODE != "never-ready":
        sdnotify.ready("fake " + MODE)
    watchdog = sdnotify.start_watchdog()
    if MODE == "dies-after-ready":
        await asyncio.sleep(0.3)
        sys.exit(1)
    if MODE == "stalls":
        await asyncio.sleep(0.1)  # one ping, then
        time.sleep(60)  # the loop hangs: no more watchdog pings
    await stop.wait()
    sdnotify.stopping()
    sdnotify.stop_watchdog(watchdog)

asyncio.run(main())
"""

FAKE_SYSTEMCTL = """
import os, signal, subprocess, sys, time
from pathlib import Path

def alive(pid):
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")

assert sys.argv[1:] == ["restart", "clinicam-appliance"], sys.argv
service = Path(os.environ["FAKE_SERVICE_DIR"])
pidfile = service / "main.pid"
if pidfile.exists():  # stop: SIGTERM, then SIGKILL after 1 s (TimeoutStopSec)
    pid = int(pidfile.read_text())
    if alive(pid):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 1.0
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
with (service / "service.log").open("ab") as log:
    current = Path(os.environ["FAKE_ROOT"]) / "current"
    program = current / "bin" / "clinicam-fake"  # a prebuilt release
    if not program.exists():
        program = current / "venv" / "bin" / "clinicam-fake"  # one pip installed from a wheel
    proc = subprocess.Popen(
        [str(program)], stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
    )
pidfile.write_text(str(proc.pid))
"""


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


class Appliance:
    """An install root, a pretend service manager, and releases to install."""

    def __init__(self, tmp: Path) -> None:
        self.root = tmp / "opt"
        self.service = tmp / "service"
        self.sources = tmp / "src"
        self.health = tmp / "run" / "health.json"
        self.log = tmp / "state" / "update.log"
        self.systemctl = tmp / "fake_systemctl.py"
        for folder in (self.service, self.sources, self.health.parent):
            folder.mkdir(parents=True)
        self.systemctl.write_text(FAKE_SYSTEMCTL)

    def release(self, name: str, mode: str = "good") -> Path:
        """A ready release folder whose program behaves as ``mode`` says."""
        program = self.sources / name / "bin" / "clinicam-fake"
        program.parent.mkdir(parents=True)
        program.write_text(FAKE_PROGRAM.format(python=sys.executable, root=str(ROOT), mode=mode))
        program.chmod(0o755)
        return self.sources / name

    def update(self, source: Path, *extra: str) -> int:
        restart = f"{shlex.quote(sys.executable)} {shlex.quote(str(self.systemctl))} restart "
        return main_update(
            [
                str(source),
                "--prebuilt",
                "--root",
                str(self.root),
                "--restart-command",
                restart + "{service}",
                "--health-file",
                str(self.health),
                "--health-timeout",
                HEALTH_TIMEOUT_S,
                "--settle",
                SETTLE_S,
                "--log",
                str(self.log),
                "--config",
                str(self.root / "no-config.toml"),
                *extra,
            ]
        )

    def link(self, name: str) -> str | None:
        path = self.root / name
        return os.readlink(path) if path.is_symlink() else None

    @property
    def main_pid(self) -> int:
        return int((self.service / "main.pid").read_text())

    def running_release(self) -> str:
        """The release of the live, healthy, freshly pinging program."""
        report = sdnotify.read_health(self.health)
        assert report is not None, "no health report"
        assert report.pid == self.main_pid and alive(report.pid)
        assert report.watchdog_s is not None
        assert sdnotify.monotonic() - report.beat_mono < report.watchdog_s
        return Path(report.release).relative_to(self.root.resolve() / "releases").parts[0]

    def events(self) -> list[str]:
        return [json.loads(line)["event"] for line in self.log.read_text().splitlines()]

    def stop(self) -> None:
        pidfile = self.service / "main.pid"
        if pidfile.exists() and alive(self.main_pid):
            os.kill(self.main_pid, 9)


class LinkWatch:
    """Resolves ``current`` as fast as it can in a thread while an update runs."""

    def __init__(self, link: Path) -> None:
        self.link = link
        self.checks = 0
        self.misses: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._stop.is_set():
            self.checks += 1
            if not (self.link / "bin" / "clinicam-fake").exists():
                self.misses.append(self.checks)

    def __enter__(self) -> LinkWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


@pytest.mark.parametrize("mode", ["exits", "never-ready", "dies-after-ready", "stalls"])
def test_unhealthy_update_leaves_the_old_version_running(appliance: Appliance, mode: str) -> None:
    assert appliance.update(appliance.release("1.0")) == 0  # first install
    assert appliance.link("current") == "releases/1.0"
    assert appliance.running_release() == "1.0"
    first_pid = appliance.main_pid

    with LinkWatch(appliance.root / "current") as watch:
        code = appliance.update(appliance.release("2.0-bad", mode))

    assert code == 1
    assert appliance.link("current") == "releases/1.0"
    assert appliance.link("previous") is None  # as before the update
    assert appliance.running_release() == "1.0"
    assert appliance.main_pid != first_pid  # restarted after the bad one
    events = appliance.events()
    assert events[-4:] == ["installed", "switched", "unhealthy", "rolled back"], events
    assert watch.misses == [] and watch.checks > 100


def test_healthy_update_switches_and_keeps_the_previous_release(appliance: Appliance) -> None:
    assert appliance.update(appliance.release("1.0")) == 0
    with LinkWatch(appliance.root / "current") as watch:
        assert appliance.update(appliance.release("1.1")) == 0
    assert watch.misses == [] and watch.checks > 100
    assert (appliance.link("current"), appliance.link("previous")) == (
        "releases/1.1",
        "releases/1.0",
    )
    assert appliance.running_release() == "1.1"
    assert appliance.events()[-1] == "updated"

    assert appliance.update(appliance.release("1.2"), "--keep", "2") == 0
    assert (appliance.link("current"), appliance.link("previous")) == (
        "releases/1.2",
        "releases/1.1",
    )
    assert sorted(p.name for p in (appliance.root / "releases").iterdir()) == ["1.1", "1.2"]
    assert appliance.update(appliance.sources / "1.2") == 0  # already current: nothing done
    assert appliance.events()[-1] == "already current"


def test_first_install_that_fails_reports_failure(appliance: Appliance) -> None:
    assert appliance.update(appliance.release("1.0", "exits")) == 1
    assert appliance.events()[-2:] == ["unhealthy", "not rolled back"]

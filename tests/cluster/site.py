"""A site of several processes on this machine: one web front and media workers, real
``clinicam`` processes sharing a SQLite database, a state folder and a redis-server."""

from __future__ import annotations

import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from clinicam.tomlwrite import dumps
from clinicam_app.procs import stop as stop_process
from server.auth import hash_secret
from server.config import ServerConfig
from server.device_tokens import ensure_key, token_hash
from tests.helpers import free_port

ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
PASSWORD = "correct horse battery"
SECRET = "a-cluster-secret-of-32-characters-or-more"
START_TIMEOUT_S = 60.0


NAMES = ("alice", "bob", "carol", "dave", "erin", "frank")


def write_site_config(
    path: Path, state_dir: Path, redis_url: str, front_port: int, appliances: int = 2
) -> dict[str, str]:
    """``appliances`` appliances cam-1…, each with a consultation c1… chaired by its own
    expert (alice chairs c1 on cam-1, bob c2 on cam-2, …); returns the devices' tokens."""
    digest = hash_secret(PASSWORD)
    key = ensure_key(state_dir)
    tokens = {f"cam-{n}": f"cam-{n}.{secrets.token_urlsafe(24)}" for n in range(1, appliances + 1)}
    data: dict[str, Any] = {
        "log_level": "INFO",
        "state_dir": str(state_dir),
        "database_url": f"sqlite:///{state_dir / 'clinicam.db'}",
        "http": {"host": HOST, "port": front_port, "cookie_secure": False},
        "mqtt": {"port": 1, "username": "server", "password": "x"},  # nothing listens
        "ice": {"loopback_only": True},
        "experts": [
            {"username": u, "display_name": u.title(), "password_hash": digest, "role": "chair"}
            for u in NAMES[:appliances]
        ],
        "devices": [
            {"device_id": d, "clinic": f"Clinic {d}", "token_hash": token_hash(key, t)}
            for d, t in tokens.items()
        ],
        "patients": [{"id": f"P-{n}", "name": f"Patient {n}"} for n in range(1, appliances + 1)],
        "consultations": [
            {
                "id": f"c{n}",
                "patient_id": f"P-{n}",
                "appliance": f"cam-{n}",
                "chair": NAMES[n - 1],
                "experts": [NAMES[n - 1]],
            }
            for n in range(1, appliances + 1)
        ],
        "cluster": {"redis_url": redis_url, "secret": SECRET, "key_prefix": "site:"},
    }
    ServerConfig.model_validate(data)  # a mistake here fails now, not in the child
    path.write_text(dumps(data))
    return tokens


class Process:
    """One ``python -m clinicam_app ...`` process: started, SIGKILLed, stopped."""

    def __init__(self, name: str, argv: list[str], port: int, log: Path) -> None:
        self.name = name
        self.argv = argv
        self.port = port
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self) -> None:
        self.launch()
        self.wait_listening()

    def launch(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "clinicam_app", *self.argv],
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def wait_listening(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited at start:\n{self.log_tail()}")
            try:
                socket.create_connection((HOST, self.port), timeout=1.0).close()
            except OSError:
                time.sleep(0.05)
                continue
            return
        raise AssertionError(f"{self.name} not listening after {START_TIMEOUT_S:.0f} s")

    def kill(self) -> None:
        """SIGKILL: no clean-up, no goodbye to Redis."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            stop_process(self.proc, self.name, timeout_s=10)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


class Site:
    """The front and ``workers`` media workers of one configuration file."""

    def __init__(self, folder: Path, redis_url: str, workers: int = 2, appliances: int = 2) -> None:
        self.config = folder / "server.toml"
        self.state_dir = folder / "state"
        self.state_dir.mkdir()
        front_port = free_port()
        self.tokens = write_site_config(
            self.config, self.state_dir, redis_url, front_port, appliances
        )
        common = ["--config", str(self.config)]
        self.front = Process("front", ["server", *common], front_port, folder / "front.log")
        self.workers: list[Process] = []
        for n in range(workers):
            port, name = free_port(), f"media-{chr(ord('a') + n)}"
            argv = ["media-worker", *common, "--id", name, "--listen", f"{HOST}:{port}"]
            self.workers.append(Process(name, argv, port, folder / f"{name}.log"))

    def start(self) -> None:
        self.front.start()  # it migrates the database; the workers then find it ready
        for worker in self.workers:
            worker.launch()
        for worker in self.workers:
            worker.wait_listening()

    def worker(self, name: str) -> Process:
        return next(w for w in self.workers if w.name == name)

    def stop(self) -> None:
        for process in (*self.workers, self.front):
            process.stop()

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.log_tail()}" for p in (self.front, *self.workers))

"""The whole system on the testbed: mosquitto and the server in the ``server`` namespace,
a simulated appliance in the ``clinic`` namespace, talking only over the clinic's shaped
link (R17). Real processes, started as ``clinicam`` starts them in production: only the
addresses differ from the demo (the broker and server listen on every address of their
namespace, the appliance reaches them at the testbed's server address).
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from clinicam import tomlwrite
from clinicam_app.broker import BrokerUser, MosquittoBroker, find_mosquitto
from tests.netlab.testbed import SERVER, SERVER_ADDRESS, Testbed

MQTT_PORT = 18830
HTTP_PORT = 18080
DEVICE = "appliance-1"
CONSULTATION = "demo-consultation"
EXPERT = "demo"


class ClinicStack:
    """Broker + server on the hub, one appliance behind the clinic's link."""

    def __init__(
        self,
        bed: Testbed,
        workdir: Path,
        *,
        adaptive: bool = True,
        bitrate_kbps: int = 2500,
        fps: int = 15,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.bed = bed
        self.workdir = workdir
        self.adaptive = adaptive
        self.bitrate_kbps = bitrate_kbps
        self.fps = fps
        self.env = dict(env or {})
        self.password = secrets.token_urlsafe(9)
        self._server_mqtt = secrets.token_urlsafe(12)
        self._device_mqtt = secrets.token_urlsafe(12)
        self.device_token = secrets.token_urlsafe(18)
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.url = f"http://{SERVER_ADDRESS}:{HTTP_PORT}"

    def _server_config(self) -> dict[str, Any]:
        from server.auth import hash_secret

        digest = hash_secret(self.password)
        return {
            "log_level": "WARNING",
            "state_dir": str(self.workdir / "server"),
            "http": {"host": "0.0.0.0", "port": HTTP_PORT, "cookie_secure": False},
            "mqtt": {
                "host": "127.0.0.1",
                "port": MQTT_PORT,
                "username": "server",
                "password": self._server_mqtt,
            },
            "live": {"fps": self.fps},
            "experts": [
                {"username": EXPERT, "display_name": "Dr. Demo", "password_hash": digest},
            ],
            "patients": [{"id": "P-0001", "name": "Demo Patient (synthetic)", "group": "demo"}],
            "devices": [
                {
                    "device_id": DEVICE,
                    "clinic": "Testbed Clinic",
                    "token_hash": hash_secret(self.device_token),
                }
            ],
            "consultations": [
                {
                    "id": CONSULTATION,
                    "patient_id": "P-0001",
                    "appliance": DEVICE,
                    "chair": EXPERT,
                    "experts": [EXPERT],
                }
            ],
        }

    def _appliance_config(self) -> dict[str, Any]:
        return {
            "device_id": DEVICE,
            "backend": "sim",
            "state_dir": str(self.workdir / "appliance"),
            "log_level": "WARNING",
            "server": {"url": self.url, "token": self.device_token, "reconnect_max_s": 2.0},
            "mqtt": {
                "host": SERVER_ADDRESS,
                "allow_plaintext": True,  # the testbed's own isolated namespaces
                "port": MQTT_PORT,
                "username": DEVICE,
                "password": self._device_mqtt,
            },
            "camera": {
                "fps": self.fps,
                "bitrate_kbps": self.bitrate_kbps,
                "adaptive": self.adaptive,
            },
            "recorder": {"segment_s": 4.0, "backfill_check_s": 3.0},
            "telemetry_interval_s": 2.0,
            "sim": {"register_file": str(self.workdir / "pca9685.bin")},
        }

    def start(self, timeout_s: float = 60.0) -> None:
        """Start everything; return once the appliance streams to the server."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        broker = MosquittoBroker(
            self.workdir / "broker",
            [
                BrokerUser("server", self._server_mqtt, is_server=True),
                BrokerUser(DEVICE, self._device_mqtt),
            ],
            host="0.0.0.0",
            port=MQTT_PORT,
        )
        conf = broker.write_config()
        self._spawn(SERVER, "mosquitto", [find_mosquitto(), "-c", str(conf)])
        server_toml = self.workdir / "server.toml"
        server_toml.write_text(tomlwrite.dumps(self._server_config()))
        appliance_toml = self.workdir / "appliance.toml"
        appliance_toml.write_text(tomlwrite.dumps(self._appliance_config()))
        cli = [sys.executable, "-m", "clinicam_app"]
        self._spawn(SERVER, "server", [*cli, "server", "--config", str(server_toml)])
        self.wait(lambda: self.health() is not None, timeout_s, "the server")
        self._spawn("clinic", "appliance", [*cli, "appliance", "--config", str(appliance_toml)])
        self.wait(self.streaming, timeout_s, "the appliance to stream")

    def _spawn(self, party: str, name: str, argv: list[str]) -> None:
        log = (self.workdir / f"{name}.log").open("wb")
        env = {"PYTHONPATH": str(Path(__file__).resolve().parents[2]), **self.env}
        self.procs[name] = self.bed.popen(
            party,
            ["env", *(f"{k}={v}" for k, v in env.items()), *argv],
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def server_python(self, code: str, timeout_s: float = 30.0) -> str:
        """Run Python in the server's namespace (the root namespace has no route there)."""
        done = self.bed.run(
            SERVER,
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(done.stderr.strip()[-2000:])
        return done.stdout

    def health(self) -> dict[str, Any] | None:
        code = (
            "import json, urllib.request\n"
            f"try: print(urllib.request.urlopen('http://127.0.0.1:{HTTP_PORT}/healthz', "
            "timeout=3).read().decode())\nexcept OSError: print('null')\n"
        )
        try:
            result: dict[str, Any] | None = json.loads(self.server_python(code))
        except (RuntimeError, ValueError):
            return None
        return result

    def streaming(self) -> bool:
        health = self.health()
        return bool(health and health["appliances"].get(DEVICE, {}).get("streaming"))

    def wait(self, predicate: Any, timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while not predicate():
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    log = (self.workdir / f"{name}.log").read_text(errors="replace")[-3000:]
                    raise AssertionError(f"{name} exited ({proc.returncode}):\n{log}")
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            time.sleep(0.5)

    def stop(self) -> None:
        for proc in reversed(list(self.procs.values())):
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.procs.clear()

"""``clinicam demo``: the whole system on one machine, as three networked processes.

mosquitto (real broker, generated credentials and ACL), the server and one simulated
appliance each run as their own process and talk only over loopback sockets, exactly
as they would across a clinic's network. Any of them that crashes — mosquitto too, on
the same port — is restarted after a growing delay (like systemd's Restart=on-failure),
and the others reconnect by themselves; one that keeps crashing stops the demo. Ctrl-C
stops all of them.
"""

from __future__ import annotations

import json
import logging
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clinicam import tomlwrite
from clinicam.files import write_atomically
from clinicam.i18n import _, say
from clinicam_app import procs
from clinicam_app.broker import BrokerUser, MosquittoBroker

_LOGGER = logging.getLogger(__name__)

DEMO_EXPERT = "demo"
DEMO_DEVICE = "appliance-1"
DEMO_CONSULTATION = "demo-consultation"
MAX_RESTARTS = 5  # per process, within RESTART_WINDOW_S
RESTART_WINDOW_S = 60.0
BROKER = "mosquitto"

# --colour-card: the card held up to the right of the patient, a tungsten lamp's cast.
COLOUR_CARD_SIM: dict[str, Any] = {"lighting": "tungsten", "colour_card": [0.75, 0.35, 0.26]}


@dataclass(frozen=True)
class DemoOptions:
    """What the user can choose on the command line."""

    host: str = "127.0.0.1"
    port: int = 8080
    state_dir: Path | None = None
    password: str | None = None
    loopback_only: bool = False
    log_level: str = "INFO"
    experts: int = 1
    clinics: int = 1
    database_url: str | None = None  # default: SQLite in the state folder
    colour_card: bool = False  # a tungsten-lit clinic with the colour card in view


@dataclass(frozen=True)
class DemoDevice:
    """One simulated appliance: its clinic, consultation and fresh credentials."""

    index: int  # 1, 2, …
    mqtt_password: str
    secret: str

    @property
    def device_id(self) -> str:
        return DEMO_DEVICE if self.index == 1 else f"appliance-{self.index}"

    @property
    def token(self) -> str:
        """Its API token: ``<device-id>.<secret>`` (see server/device_tokens.py)."""
        return f"{self.device_id}.{self.secret}"

    @property
    def clinic(self) -> str:
        return "Demo Clinic" if self.index == 1 else f"Demo Clinic {self.index}"

    @property
    def consultation(self) -> str:
        return DEMO_CONSULTATION if self.index == 1 else f"{DEMO_CONSULTATION}-{self.index}"

    @property
    def patient(self) -> str:
        return "P-0001" if self.index == 1 else f"P-01{self.index:02d}"

    @property
    def suffix(self) -> str:
        """Its files in the state folder: ``clinicam-appliance<suffix>.toml`` and so on."""
        return "" if self.index == 1 else f"-{self.index}"


@dataclass(frozen=True)
class DemoSecrets:
    """Fresh credentials for every run."""

    expert_password: str
    server_mqtt: str
    devices: tuple[DemoDevice, ...]


def _write_private(path: Path, text: str) -> None:
    """Owner-only file, complete or absent: readers never see it half written."""
    write_atomically(path, text.encode())


DEMO_ADMIN = "admin"
DEMO_NURSE = "nurse"  # clinic staff of the first clinic: runs its station from a tablet


def demo_experts(count: int) -> list[tuple[str, str]]:
    """(username, display name) of the demo's experts; the first is the chair."""
    return [(DEMO_EXPERT, "Dr. Demo")] + [
        (f"expert{i}", f"Dr. Expert {i}") for i in range(2, count + 1)
    ]


def _server_config(
    opts: DemoOptions,
    port: int,
    broker: MosquittoBroker,
    sec: DemoSecrets,
    state: Path,
) -> dict[str, Any]:
    from server.auth import hash_secret  # only needed here, with the server extra
    from server.device_tokens import ensure_key, token_hash

    password_hash = hash_secret(sec.expert_password)
    device_key = ensure_key(state / "server")  # the server's state_dir
    return {
        "log_level": opts.log_level,
        "state_dir": str(state / "server"),
        **({} if opts.database_url is None else {"database_url": opts.database_url}),
        "http": {"host": opts.host, "port": port},
        "mqtt": {
            "host": "127.0.0.1",
            "port": broker.port,
            "username": "server",
            "password": sec.server_mqtt,
        },
        "ice": {"loopback_only": opts.loopback_only},
        # Appliances enrolled from /admin get their broker accounts in the demo's mosquitto.
        "broker_admin": {
            "password_file": str(broker.password_file),
            "acl_file": str(broker.acl_file),
            "pid_file": str(broker.pid_file),
        },
        # A demonstration: the shipped model's synthetic-data branches count (the chart
        # and the room say so); a clinical site leaves this off.
        "models": {"demonstration_branches": True},
        "experts": [
            {
                "username": user,
                "display_name": name,
                "password_hash": password_hash,
                "role": "chair" if user == DEMO_EXPERT else "expert",
            }
            for user, name in demo_experts(opts.experts)
        ]
        + [
            {
                "username": DEMO_ADMIN,
                "display_name": "Records admin",
                "password_hash": password_hash,
                "role": "admin",
            },
            {
                "username": DEMO_NURSE,
                "display_name": "Nurse (Demo Clinic)",
                "password_hash": password_hash,
                "role": "clinic",
                "clinic": sec.devices[0].clinic,
            },
        ],
        "patients": [
            {"id": "P-0001", "name": "Demo Patient (synthetic)", "group": "demo-clinic"},
            {"id": "P-0002", "name": "Second Patient (synthetic)", "group": "referrals"},
        ]
        + [
            {"id": d.patient, "name": f"Patient of {d.clinic} (synthetic)", "group": d.device_id}
            for d in sec.devices[1:]
        ],
        # Experts at the demo clinic may view its patients, the chair may also edit;
        # anything else (P-0002) needs an admin's approval or break-glass.
        "access_rules": [
            {"role": "chair", "groups": ["demo-clinic"], "operations": ["view", "edit"]},
            {"role": "expert", "groups": ["demo-clinic"], "operations": ["view"]},
        ],
        "devices": [
            {
                "device_id": d.device_id,
                "clinic": d.clinic,
                "token_hash": token_hash(device_key, d.token),
            }
            for d in sec.devices
        ],
        "consultations": [
            {
                "id": d.consultation,
                "title": "Demo consultation" + (f" at {d.clinic}" if d.index > 1 else ""),
                "patient_id": d.patient,
                "appliance": d.device_id,
                "chair": DEMO_EXPERT,
                "experts": [user for user, _pw in demo_experts(opts.experts)],
            }
            for d in sec.devices
        ],
    }


def _seeded(config: dict[str, Any]) -> dict[str, Any]:
    """Put the demo's people, appliances and consultations into the server's database
    (this run's credentials replace the last run's) and return the rest of its settings."""
    from server.config import ServerConfig
    from server.directory.seed import seed_directory

    seed_directory(ServerConfig.model_validate(config))
    return {k: v for k, v in config.items() if k not in ("experts", "devices", "consultations")}


def _appliance_config(
    opts: DemoOptions, url: str, mqtt_port: int, device: DemoDevice, state: Path
) -> dict[str, Any]:
    return {
        "device_id": device.device_id,
        "backend": "sim",
        # the demo's, not the user's home
        "state_dir": str(state / f"appliance{device.suffix}"),
        "log_level": opts.log_level,
        "server": {"url": url, "token": device.token},
        "mqtt": {
            "host": "127.0.0.1",
            "port": mqtt_port,
            "username": device.device_id,
            "password": device.mqtt_password,
        },
        "ice": {"loopback_only": opts.loopback_only},
        "sim": {
            "register_file": str(state / f"pca9685{device.suffix}.bin"),
            **(COLOUR_CARD_SIM if opts.colour_card else {}),
        },
    }


def _http_port(opts: DemoOptions) -> int:
    try:
        import socket

        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((opts.host, opts.port))
        return opts.port
    except OSError:
        port = procs.free_port(opts.host)
        _LOGGER.warning("port %d is busy; using %d instead", opts.port, port)
        return port


def run_demo(opts: DemoOptions) -> int:
    """Start broker, server and appliance; block until Ctrl-C or a child dies."""
    own_dir = opts.state_dir is None
    state = (
        Path(tempfile.mkdtemp(prefix="clinicam-demo-"))
        if opts.state_dir is None
        else opts.state_dir
    )
    state.mkdir(parents=True, exist_ok=True)
    state.chmod(0o700)
    sec = DemoSecrets(
        expert_password=opts.password or secrets.token_urlsafe(9),
        server_mqtt=secrets.token_urlsafe(18),
        devices=tuple(
            DemoDevice(i, secrets.token_urlsafe(18), secrets.token_urlsafe(32))
            for i in range(1, opts.clinics + 1)
        ),
    )
    mqtt_port = procs.free_port()
    http_port = _http_port(opts)
    url = f"http://{opts.host}:{http_port}"
    stations = {d.device_id: f"{url}/station/{d.device_id}#token={d.token}" for d in sec.devices}
    station_url = stations[DEMO_DEVICE]
    broker = MosquittoBroker(
        state / "broker",
        [
            BrokerUser("server", sec.server_mqtt, is_server=True),
            *(BrokerUser(d.device_id, d.mqtt_password) for d in sec.devices),
        ],
        host="127.0.0.1",
        port=mqtt_port,
    )
    server_toml = state / "clinicam-server.toml"
    _write_private(
        server_toml,
        tomlwrite.dumps(_seeded(_server_config(opts, http_port, broker, sec, state))),
    )
    cli = [sys.executable, "-m", "clinicam_app"]
    commands = {"server": [*cli, "server", "--config", str(server_toml)]}
    for device in sec.devices:
        appliance_toml = state / f"clinicam-appliance{device.suffix}.toml"
        config = _appliance_config(opts, url, mqtt_port, device, state)
        _write_private(appliance_toml, tomlwrite.dumps(config))
        commands[f"appliance{device.suffix}"] = [*cli, "appliance", "--config", str(appliance_toml)]
    children: dict[str, subprocess.Popen[bytes]] = {}
    backoff = {
        name: procs.RestartBackoff(MAX_RESTARTS, RESTART_WINDOW_S) for name in [BROKER, *commands]
    }
    due: dict[str, float] = {}  # crashed, restarting at this (monotonic) time
    stopping = False

    def _request_stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    def _write_info() -> None:
        pids = {name: p.pid for name, p in children.items()}
        if broker.process is not None:
            pids[BROKER] = broker.process.pid
        info = {
            "url": url,
            "username": DEMO_EXPERT,
            "password": sec.expert_password,
            "consultation": f"{url}/room/{DEMO_CONSULTATION}",
            "station": station_url,
            "stations": stations,
            "consultations": {d.consultation: f"{url}/room/{d.consultation}" for d in sec.devices},
            "state_dir": str(state),
            "register_file": str(state / "pca9685.bin"),
            "mqtt_port": mqtt_port,
            "pids": pids,
        }
        _write_private(state / "demo.json", json.dumps(info, indent=2))

    def _exit_code(name: str) -> int | None:
        """The exit code of a crashed child, or None while it runs (or waits to restart)."""
        if name in due:
            return None
        proc = broker.process if name == BROKER else children[name]
        if proc is None:
            return -1  # a restart that did not come up
        return proc.poll()

    def _restart(name: str) -> None:
        if name != BROKER:
            children[name] = procs.spawn(commands[name])
            return
        broker.stop()
        try:
            # Same port, same accounts (those enrolled since too): everyone reconnects.
            broker.start(fresh_accounts=False)
        except (RuntimeError, TimeoutError, OSError) as exc:
            _LOGGER.error("mosquitto did not come back: %s", exc)
            broker.stop()

    def _supervise() -> int | None:
        """Restart a crashed child after its back-off (like systemd); None = keep going."""
        now = time.monotonic()
        for name in [BROKER, *children]:
            code = _exit_code(name)
            if code is None:
                continue
            delay = backoff[name].next_delay(now)
            if delay is None:
                _LOGGER.error("%s keeps failing (code %s); stopping the demo", name, code)
                return 1
            _LOGGER.warning("%s exited (code %s); restarting it in %.1f s", name, code, delay)
            due[name] = now + delay
        for name, when in list(due.items()):
            if now >= when:
                del due[name]
                _restart(name)
                _write_info()
        return None

    signal.signal(signal.SIGINT, _request_stop)
    signal.signal(signal.SIGTERM, _request_stop)
    started = time.monotonic()
    code = 0
    try:
        broker.start()
        children["server"] = procs.spawn(commands["server"])
        procs.wait_for_port(opts.host, http_port, 30.0, children["server"])
        for name, command in commands.items():
            if name != "server":
                children[name] = procs.spawn(command)
        _write_info()
        banner = _(
            "\n"
            "  Clinicam demo is running (mosquitto, the server and {appliances}).\n"
            "  Open      {url}\n"
            "  User      {users} (records admin: {admin}; clinic staff: {nurse})\n"
            "  Password  {password}\n"
            "  Clinic station (the bedside screen; joins when an expert is in the room)\n"
            "{stations}"
            "  Press Ctrl-C to stop everything.\n",
            appliances=_("a simulated appliance")
            if opts.clinics == 1
            else _("simulated appliances"),
            url=url,
            users=", ".join(u for u, _pw in demo_experts(opts.experts)),
            admin=DEMO_ADMIN,
            nurse=DEMO_NURSE,
            password=sec.expert_password,
            stations="".join(f"            {u}\n" for u in stations.values()),
        )
        say(banner)
        sys.stdout.flush()
        _LOGGER.info("demo up in %.1f s", time.monotonic() - started)
        while not stopping:
            failed = _supervise()
            if failed is not None:
                code, stopping = failed, True
            time.sleep(0.2)
    except (RuntimeError, TimeoutError, FileNotFoundError, OSError) as exc:
        _LOGGER.error("demo could not start: %s", exc)
        code = 1
    finally:
        for name, proc in reversed(children.items()):
            procs.stop(proc, name)
        broker.stop()
        if own_dir:
            shutil.rmtree(state, ignore_errors=True)
        _LOGGER.info("demo stopped")
    return code

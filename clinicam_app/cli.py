"""The one ``clinicam`` command."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import importlib.util
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from clinicam import __version__
from clinicam.configfile import ConfigError, load_config
from clinicam.const import ENV_APPLIANCE_PREFIX, ENV_SERVER_PREFIX
from clinicam.logsetup import setup_logging

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from firmware.config import ApplianceConfig

_LOGGER = logging.getLogger("clinicam")

DESCRIPTION = """\
Clinicam: remote consultation for rural clinics.

  clinicam demo                 run broker, server and a simulated appliance here
  clinicam server -c FILE       run the server (experts' web pages, WebRTC, control)
  clinicam appliance -c FILE    run the camera appliance (real Pi or simulated)
  clinicam appliance calibrate -c FILE   walk through the servo calibration
  clinicam hash-password        make an argon2id hash for a config file
  clinicam device-token DEVICE  make a device token and its hash (-c server.toml)
  clinicam audit verify -c FILE check the hash-chained audit log (or --database URL)
  clinicam audit checkpoint -c FILE   sign the log's head; keep the line elsewhere

Configuration is TOML; environment variables override it, e.g.
CLINICAM_SERVER__HTTP__PORT=8443 or CLINICAM_APPLIANCE__MQTT__HOST=hub.local.
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="clinicam",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"clinicam {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    demo = sub.add_parser(
        "demo",
        help="run the whole system on this machine",
        description="Start mosquitto, the server and one simulated appliance "
        "as separate processes on loopback, print the URL and credentials, "
        "and stop everything on Ctrl-C.",
    )
    demo.add_argument("--host", default="127.0.0.1", help="address for the web server")
    demo.add_argument(
        "--port",
        type=int,
        default=8080,
        help="web server port (another free port is used if it is busy)",
    )
    demo.add_argument(
        "--state-dir",
        type=Path,
        help="keep generated configs and state here (default: a temporary folder removed on exit)",
    )
    demo.add_argument("--password", help="the demo experts' password (default: random)")
    demo.add_argument(
        "--experts",
        type=int,
        default=1,
        choices=range(1, 9),
        metavar="N",
        help="invite N experts (demo, expert2, …; 1–8, default 1) to try the "
        "conference from several browsers",
    )
    demo.add_argument(
        "--clinics",
        type=int,
        default=1,
        choices=range(1, 5),
        metavar="N",
        help="N clinics, each with its own simulated appliance, consultation and clinic "
        "station (1–4, default 1)",
    )
    demo.add_argument(
        "--loopback-only",
        action="store_true",
        help="keep WebRTC on 127.0.0.1 (the browser must allow loopback candidates)",
    )
    demo.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])

    for name, text in (("server", "run the server"), ("appliance", "run the appliance")):
        p = sub.add_parser(
            name,
            help=text,
            description=f"{text.capitalize()} with a TOML "
            "configuration file; a bad file stops start-up naming the key.",
        )
        if name == "appliance":
            p.add_argument(
                "action",
                nargs="?",
                default="run",
                choices=["run", "calibrate", "doctor", "provision", "update", "kiosk-page"],
                help="'calibrate' walks a technician through the servo calibration and "
                "writes it into the config file; 'doctor' checks camera, I2C, servos, GPIO, "
                "broker, server, clock, disk and temperature; 'provision' applies "
                "clinicam.toml from the boot partition (first boot); 'update SOURCE' installs "
                "a release beside the current one and rolls back if it is not healthy; "
                "'kiosk-page --output FILE' writes the start page of the clinic station on "
                "the appliance's own screen",
            )
            p.add_argument(
                "rest",
                nargs=argparse.REMAINDER,
                help="arguments of doctor/provision/update ('--help' after the action)",
            )
        p.add_argument("-c", "--config", type=Path, help="TOML configuration file")
        p.add_argument(
            "--check", action="store_true", help="only validate the configuration and exit"
        )

    sub.add_parser(
        "hash-password", help="print an argon2id hash of a password read from the terminal or stdin"
    )

    device_token = sub.add_parser(
        "device-token",
        help="make a new token for an appliance and the hash for the server's [[devices]]",
        description="Prints a new token '<device>.<secret>' for the appliance's server.token "
        "and its hash (HMAC-SHA256 under the key in the server's state_dir, made if missing) "
        "for token_hash in the server's [[devices]] table. Replaces argon2 token hashes from "
        "older releases, which are slow to check.",
    )
    device_token.add_argument("device", help="the device_id")
    device_token.add_argument("-c", "--config", type=Path, help="server TOML file")

    audit = sub.add_parser(
        "audit",
        help="check the server's audit log",
        description="'verify' walks the hash-chained audit log and reports every "
        "edited, deleted, reordered or non-canonical entry by seq (exit 1), or "
        "'audit log OK' (exit 0); with --checkpoint it also finds entries cut off the "
        "end and a rewritten head. 'checkpoint' verifies the log, then prints a signed "
        "{seq, hash, at} record of its head (and appends it to --out): keep those lines "
        "and the public key (audit-signing.pub) outside the server. "
        "The database is not changed.",
    )
    audit.add_argument(
        "action", choices=["verify", "checkpoint"], help="what to do with the audit log"
    )
    audit.add_argument(
        "--checkpoint",
        type=Path,
        help="verify: a file of signed checkpoints (one JSON line each) the log must match",
    )
    audit.add_argument(
        "--key",
        type=Path,
        help="Ed25519 key (PEM): checkpoint signs with the private key (created if missing); "
        "verify needs the public key or the private key file "
        "(default: audit-signing.key / .pub in the config's state_dir)",
    )
    audit.add_argument("--out", type=Path, help="checkpoint: also append the record to this file")
    where = audit.add_mutually_exclusive_group()
    where.add_argument(
        "-c", "--config", type=Path, help="server TOML file (its state_dir holds clinicam.db)"
    )
    where.add_argument(
        "--database",
        help="database URL, e.g. sqlite:///state/clinicam.db or postgresql+psycopg://…",
    )
    model = sub.add_parser(
        "model",
        help="train, export or rebuild the relevance model (needs the 'train' extra)",
        description="train: --data DIR --out DIR [--epochs N] [--seed S] [--version V] "
        "(dataset layout: models/README.md); export: --model DIR --data DIR --out FILE.tflite; "
        "build-demo: rebuild the shipped demonstration model. Arguments after the action "
        "go to the tool; '--help' after it lists them.",
    )
    model.add_argument("action", choices=["train", "export", "build-demo"])
    model.add_argument("args", nargs=argparse.REMAINDER, help="the tool's own arguments")

    records = sub.add_parser(
        "records",
        help="import patient records from a hospital system",
        description="import-dicom files every DICOM file under FOLDER for one patient; "
        "import-fhir files a FHIR R4 Bundle (patients, observations, conditions, "
        "attachments). Progress is printed; skipped files are listed with the reason.",
    )
    records.add_argument("action", choices=["import-dicom", "import-fhir"])
    records.add_argument("source", type=Path, help="the DICOM folder or the Bundle JSON file")
    records.add_argument("--patient", help="import-dicom: the patient's identifier")
    records.add_argument("--name", help="import-dicom: the patient's name if new")
    records.add_argument("-c", "--config", type=Path, help="server TOML file")
    return parser


def _run_server(config_path: Path | None, check: bool) -> int:
    from server.config import ServerConfig
    from server.device_tokens import DeviceKeyMissing, check_key

    config = load_config(ServerConfig, config_path, env_prefix=ENV_SERVER_PREFIX)
    try:
        check_key(config)
    except DeviceKeyMissing as exc:
        print(f"clinicam server: {exc}", file=sys.stderr)
        return 2
    if check:
        print("server configuration OK")
        return 0
    setup_logging(config.log_level, "server")
    from server.app import run_server

    asyncio.run(run_server(config))
    return 0


def _appliance_tool(action: str, config_path: Path | None, rest: list[str]) -> int:
    """doctor / provision / update / kiosk-page: each tool parses its own arguments."""
    if action == "doctor":
        from firmware.doctor import main_doctor

        return main_doctor([*(["--config", str(config_path)] if config_path else []), *rest])
    if action == "provision":
        from firmware.provision import main_provision

        return main_provision(rest)
    if action == "kiosk-page":
        from firmware.kiosk import main_kiosk_page

        return main_kiosk_page([*(["--config", str(config_path)] if config_path else []), *rest])
    from clinicam_app.update import main_update

    return main_update(rest)


def _run_appliance(config_path: Path | None, check: bool, action: str) -> int:
    from firmware.config import ApplianceConfig

    config = load_config(ApplianceConfig, config_path, env_prefix=ENV_APPLIANCE_PREFIX)
    if check:
        print("appliance configuration OK")
        return 0
    if action == "calibrate":
        return _calibrate(config, config_path)
    setup_logging(config.log_level, config.device_id)
    from firmware.app import run_appliance

    asyncio.run(run_appliance(config))
    return 0


def _calibrate(config: ApplianceConfig, config_path: Path | None) -> int:
    from firmware.calibrate import CalibrationAborted, run_calibration, write_calibration

    if config_path is None:
        print("error: calibrate needs --config FILE (the result is written there)", file=sys.stderr)
        return 2
    if config.backend == "pi":
        import board

        i2c = board.I2C()
    else:
        from firmware.hardware.sim import build_sim_rig

        i2c = build_sim_rig(config).bus
    try:
        result = run_calibration(config.pantilt, i2c=i2c, ask=input, say=print)
    except (CalibrationAborted, EOFError):
        print("calibration aborted; nothing written")
        return 1
    except ValueError as exc:
        print(f"calibration not usable: {exc}; nothing written", file=sys.stderr)
        return 1
    write_calibration(config_path, result)
    print(f"calibration written to {config_path}:")
    for name, axis in (("pan", result.pan), ("tilt", result.tilt)):
        print(
            f"  {name}: centre {axis.centre_deg:.0f}°, limits {axis.min_deg:+.0f}° .. "
            f"{axis.max_deg:+.0f}°, {'inverted' if axis.invert else 'not inverted'}"
        )
    return 0


def _hash_password() -> int:
    from server.auth import hash_secret

    secret = getpass.getpass("Password: ") if sys.stdin.isatty() else sys.stdin.readline()
    secret = secret.rstrip("\n")
    if not secret:
        print("error: empty password", file=sys.stderr)
        return 2
    print(hash_secret(secret))
    return 0


def _device_token(device_id: str, config_path: Path | None) -> int:
    import re

    from clinicam.const import DEVICE_ID_PATTERN
    from server.config import ServerConfig
    from server.device_tokens import issue_device_token

    if not re.fullmatch(DEVICE_ID_PATTERN, device_id):
        print(f"error: not a device id: {device_id!r}", file=sys.stderr)
        return 2
    config = load_config(ServerConfig, config_path, env_prefix=ENV_SERVER_PREFIX)
    issued = issue_device_token(config.state_dir, device_id)
    print(
        f"# the appliance's clinicam.toml, [server] (secret: shown only now)\n"
        f'token = "{issued.token}"\n'
        f"# the server's [[devices]] table of {device_id}\n"
        f'token_hash = "{issued.token_hash}"'
    )
    return 0


def _audit_database(config_path: Path | None, database: str | None) -> tuple[str, Path | None]:
    """The database URL and the state folder (None when given only a URL)."""
    from server.db import DATABASE_FILE, default_database_url

    if database is not None:
        return database, None
    from server.config import ServerConfig

    config = load_config(ServerConfig, config_path, env_prefix=ENV_SERVER_PREFIX)
    if config.database_url:
        return config.database_url, config.state_dir
    if not (config.state_dir / DATABASE_FILE).is_file():
        raise ConfigError(f"no database at {config.state_dir / DATABASE_FILE}")
    return default_database_url(config.state_dir), config.state_dir


def _audit_key(key: Path | None, state_dir: Path | None, name: str) -> Path:
    if key is not None:
        return key
    if state_dir is None:
        raise ConfigError("--key FILE is needed with --database")
    return state_dir / name


def _audit(args: argparse.Namespace) -> int:
    from server.audit import checkpoint as cp
    from server.audit.verify import verify_database

    try:
        url, state_dir = _audit_database(args.config, args.database)
        anchors: list[tuple[int, str]] | None = None
        private = None
        refused: list[str] = []
        if args.action == "verify" and args.checkpoint is not None:
            default = cp.PUBLIC_KEY_FILE
            if state_dir is not None and not (state_dir / default).is_file():
                default = cp.KEY_FILE
            public = cp.verifying_key(_audit_key(args.key, state_dir, default))
            checked = cp.read_checkpoints(args.checkpoint, public)
            anchors, refused = list(checked.anchors), checked.refused
        elif args.action == "checkpoint":
            private = cp.signing_key(_audit_key(args.key, state_dir, cp.KEY_FILE), create=True)
    except (ConfigError, cp.CheckpointError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    result = verify_database(url, anchors)
    for line in refused:
        print(f"checkpoint refused: {line}", file=sys.stderr)
    if private is not None:  # checkpoint
        if not result.ok:
            print(result.describe(), file=sys.stderr)
            print("error: no checkpoint for a broken log", file=sys.stderr)
            return 1
        return _audit_checkpoint(url, private, args.out)
    print(result.describe(), file=sys.stdout if result.ok else sys.stderr)
    return 0 if result.ok and not refused else 1


def _audit_checkpoint(url: str, key: Ed25519PrivateKey, out: Path | None) -> int:
    from server.audit import checkpoint as cp
    from server.audit.log import canonical_json
    from server.db import connect_database

    database = connect_database(url)
    try:
        with database.session() as session:
            record = cp.make_checkpoint(session, key)
    finally:
        database.close()
    if out is not None:
        cp.append_checkpoint(out, record)
    print(canonical_json(record))
    return 0


def _model(action: str, argv: list[str]) -> int:
    if importlib.util.find_spec("tensorflow") is None:
        print(
            "clinicam model: TensorFlow is not installed; run ./install.sh --role dev "
            "or pip install -e '.[train]'",
            file=sys.stderr,
        )
        return 2
    if action == "train":
        from models.train import main as train_main

        return train_main(argv)
    if action == "export":
        from models.export import main as export_main

        return export_main(argv)
    from models.build_demo import main as build_main

    return build_main(argv)


def _records(
    action: str, source: Path, patient: str | None, name: str | None, config_path: Path | None
) -> int:
    from server import import_cli as cli
    from server.config import ServerConfig

    config = load_config(ServerConfig, config_path, env_prefix=ENV_SERVER_PREFIX)
    if action == "import-fhir":
        return cli.import_fhir(config, source)
    if not patient:
        print("error: import-dicom needs --patient <identifier>", file=sys.stderr)
        return 2
    return cli.import_dicom(config, source, patient, name)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "demo":
            from clinicam_app.demo import DemoOptions, run_demo

            setup_logging(args.log_level, "demo")
            return run_demo(
                DemoOptions(
                    host=args.host,
                    port=args.port,
                    state_dir=args.state_dir,
                    password=args.password,
                    loopback_only=args.loopback_only,
                    experts=args.experts,
                    clinics=args.clinics,
                    log_level=args.log_level,
                )
            )
        if args.command == "server":
            return _run_server(args.config, args.check)
        if args.command == "appliance":
            if args.action in ("doctor", "provision", "update", "kiosk-page"):
                return _appliance_tool(args.action, args.config, list(args.rest))
            if args.rest:  # options after the action: "appliance run --config FILE"
                late = argparse.ArgumentParser(prog=f"clinicam appliance {args.action}")
                late.add_argument("-c", "--config", type=Path, default=args.config)
                late.add_argument("--check", action="store_true", default=args.check)
                more = late.parse_args(args.rest)
                args.config, args.check = more.config, more.check
            return _run_appliance(args.config, args.check, args.action)
        if args.command == "hash-password":
            return _hash_password()
        if args.command == "device-token":
            return _device_token(args.device, args.config)
        if args.command == "audit":
            return _audit(args)
        if args.command == "model":
            return _model(args.action, list(args.args))
        if args.command == "records":
            return _records(args.action, args.source, args.patient, args.name, args.config)
    except ConfigError as exc:
        print(f"clinicam {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 2

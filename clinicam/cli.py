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
    from firmware.config import ApplianceConfig

_LOGGER = logging.getLogger("clinicam")

DESCRIPTION = """\
Clinicam: remote consultation for rural clinics.

  clinicam demo                 run broker, server and a simulated appliance here
  clinicam server -c FILE       run the server (experts' web pages, WebRTC, control)
  clinicam appliance -c FILE    run the camera appliance (real Pi or simulated)
  clinicam appliance calibrate -c FILE   walk through the servo calibration
  clinicam hash-password        make an argon2id hash for a config file
  clinicam audit verify -c FILE check the hash-chained audit log (or --database URL)

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

    audit = sub.add_parser(
        "audit",
        help="check the server's audit log",
        description="'verify' walks the hash-chained audit log and reports the first "
        "edited, deleted or reordered entry (exit 1), or 'audit log OK' (exit 0). "
        "The database is not changed.",
    )
    audit.add_argument("action", choices=["verify"], help="what to do with the audit log")
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

    config = load_config(ServerConfig, config_path, env_prefix=ENV_SERVER_PREFIX)
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
    from clinicam.update import main_update

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


def _audit_verify(config_path: Path | None, database: str | None) -> int:
    from server.audit import verify_database
    from server.records.db import DATABASE_FILE, default_database_url

    if database is None:
        from server.config import ServerConfig

        config = load_config(ServerConfig, config_path, env_prefix=ENV_SERVER_PREFIX)
        if config.database_url:
            database = config.database_url
        elif not (config.state_dir / DATABASE_FILE).is_file():
            print(f"error: no database at {config.state_dir / DATABASE_FILE}", file=sys.stderr)
            return 2
        else:
            database = default_database_url(config.state_dir)
    result = verify_database(database)
    print(result.describe(), file=sys.stdout if result.ok else sys.stderr)
    return 0 if result.ok else 1


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
    from server.config import ServerConfig
    from server.records import cli

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
            from clinicam.demo import DemoOptions, run_demo

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
        if args.command == "audit":
            return _audit_verify(args.config, args.database)
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

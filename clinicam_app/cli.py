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

from clinicam.broker_files import Bridge, bridge_text
from clinicam.configfile import ConfigError, load_config
from clinicam.const import ENV_APPLIANCE_PREFIX, ENV_SERVER_PREFIX
from clinicam.files import write_atomically
from clinicam.i18n import _, localized, message_of, say
from clinicam.logsetup import setup_logging
from clinicam_app.cli_parser import build_parser

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from firmware.config import ApplianceConfig
    from server.config import ServerConfig

_LOGGER = logging.getLogger("clinicam")


def _run_server(config_path: Path | None, check: bool) -> int:
    from server.config import ServerConfig

    return _serve(load_config(ServerConfig, config_path, env_prefix=ENV_SERVER_PREFIX), check)


def _serve(config: ServerConfig, check: bool) -> int:
    from server.device_tokens import DeviceKeyMissing, check_key

    try:
        check_key(config.state_dir, config.devices)
    except DeviceKeyMissing as exc:
        say(_("clinicam server: {problem}", problem=message_of(exc)), file=sys.stderr)
        return 2
    from server.records.blob_stores import check_blob_store

    check_blob_store(config.blobs)  # a bucket refused: ConfigError, nothing started
    if check:
        say(_("server configuration OK"))
        return 0
    setup_logging(config.log_level, "server")
    from server.app import run_server
    from server.directory.seed import ConfigConflict

    try:
        asyncio.run(run_server(config))
    except ConfigConflict as exc:  # the file's directory differs from the database's
        say(_("clinicam server: {problem}", problem=message_of(exc)), file=sys.stderr)
        return 2
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
        say(_("appliance configuration OK"))
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
        say(
            _("error: calibrate needs --config FILE (the result is written there)"),
            file=sys.stderr,
        )
        return 2
    if config.backend == "pi":
        import board

        i2c = board.I2C()
    else:
        from firmware.hardware.sim import build_sim_rig

        i2c = build_sim_rig(config).bus
    try:
        result = run_calibration(
            config.pantilt, i2c=i2c, ask=lambda prompt: input(localized(prompt)), say=say
        )
    except (CalibrationAborted, EOFError):
        say(_("calibration aborted; nothing written"))
        return 1
    except ValueError as exc:
        say(
            _("calibration not usable: {problem}; nothing written", problem=message_of(exc)),
            file=sys.stderr,
        )
        return 1
    write_calibration(config_path, result)
    say(_("calibration written to {path}:", path=config_path))
    for name, axis in ((_("pan"), result.pan), (_("tilt"), result.tilt)):
        say(
            _(
                "  {axis}: centre {centre}°, limits {low}° .. {high}°, {inverted}",
                axis=name,
                centre=f"{axis.centre_deg:.0f}",
                low=f"{axis.min_deg:+.0f}",
                high=f"{axis.max_deg:+.0f}",
                inverted=_("inverted") if axis.invert else _("not inverted"),
            )
        )
    return 0


def _hash_password() -> int:
    from server.auth import hash_secret

    secret = (
        getpass.getpass(localized(_("Password: "))) if sys.stdin.isatty() else sys.stdin.readline()
    )
    secret = secret.rstrip("\n")
    if not secret:
        say(_("error: empty password"), file=sys.stderr)
        return 2
    print(hash_secret(secret))
    return 0


def _device_token(device_id: str, config_path: Path | None) -> int:
    import re

    from clinicam.const import DEVICE_ID_PATTERN
    from server.config import ServerConfig
    from server.device_tokens import issue_device_token

    if not re.fullmatch(DEVICE_ID_PATTERN, device_id):
        say(_("error: not a device id: {device}", device=repr(device_id)), file=sys.stderr)
        return 2
    config = load_config(ServerConfig, config_path, env_prefix=ENV_SERVER_PREFIX)
    issued = issue_device_token(config.state_dir, device_id)
    say(_("# the appliance's clinicam.toml, [server] (secret: shown only now)"))
    print(f'token = "{issued.token}"')  # i18n: not for people (TOML to copy)
    say(_("# the server's [[devices]] table of {device}", device=device_id))
    print(f'token_hash = "{issued.token_hash}"')  # i18n: not for people (TOML to copy)
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
        raise ConfigError(_("no database at {path}", path=config.state_dir / DATABASE_FILE))
    return default_database_url(config.state_dir), config.state_dir


def _audit_key(key: Path | None, state_dir: Path | None, name: str) -> Path:
    if key is not None:
        return key
    if state_dir is None:
        raise ConfigError(_("--key FILE is needed with --database"))
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
        say(_("error: {problem}", problem=message_of(exc)), file=sys.stderr)
        return 2
    result = verify_database(url, anchors)
    for line in refused:
        say(_("checkpoint refused: {reason}", reason=line), file=sys.stderr)
    if private is not None:  # checkpoint
        if not result.ok:
            say(result.describe(), file=sys.stderr)
            say(_("error: no checkpoint for a broken log"), file=sys.stderr)
            return 1
        return _audit_checkpoint(url, private, args.out)
    say(result.describe(), file=sys.stdout if result.ok else sys.stderr)
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
        say(
            _(
                "clinicam model: TensorFlow is not installed; run ./install.sh --role dev "
                "or pip install -e '.[train]'"
            ),
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


def _records(args: argparse.Namespace) -> int:
    from server import import_cli as cli
    from server.config import ServerConfig

    action, patient, name = args.action, args.patient, args.name
    create_patients = args.create_patients
    config = load_config(ServerConfig, args.config, env_prefix=ENV_SERVER_PREFIX)
    if action == "export-fhir":
        if args.out is None:
            say(_("error: export-fhir needs --out <file>"), file=sys.stderr)
            return 2
        return cli.export_fhir(config, args.source, args.out, deidentified=args.deidentified)
    source = Path(args.source)
    if action == "import-fhir":
        return cli.import_fhir(config, source, create_patients=create_patients)
    if not patient:
        say(_("error: import-dicom needs --patient <identifier>"), file=sys.stderr)
        return 2
    return cli.import_dicom(config, source, patient, name, create_patients=create_patients)


def _broker_bridge(args: argparse.Namespace) -> int:
    """Write (or print) a hub broker's bridge section; a bad value changes nothing."""
    host, _sep, port = str(args.remote).rpartition(":")
    try:
        password = args.password_file.read_text().strip()
        text = bridge_text(Bridge(args.name, host, int(port), args.username, password, args.cafile))
    except (OSError, ValueError) as exc:
        say(_("clinicam broker-bridge: {problem}", problem=str(exc)), file=sys.stderr)
        return 2
    if args.output is None:
        print(text, end="")  # i18n: not for people (mosquitto's configuration)
        return 0
    write_atomically(args.output, text.encode(), mode=0o640)
    say(_("wrote {path}; restart mosquitto to connect the bridge", path=str(args.output)))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
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
                    database_url=args.database_url,
                    colour_card=args.colour_card,
                )
            )
        if args.command == "server":
            return _run_server(args.config, args.check)
        if args.command == "media-worker":
            from clinicam_app.media_worker import worker_config

            return _serve(worker_config(args), args.check)
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
        if args.command == "broker-bridge":
            return _broker_bridge(args)
        if args.command == "audit":
            return _audit(args)
        if args.command == "report":
            from clinicam_app.report_verify import verify_report

            return verify_report(args.file, args.key)
        if args.command == "model":
            return _model(args.action, list(args.args))
        if args.command == "blobs":
            from server.blobs_cli import migrate
            from server.config import ServerConfig

            config = load_config(ServerConfig, args.config, env_prefix=ENV_SERVER_PREFIX)
            return migrate(config, args.to)
        if args.command == "records":
            return _records(args)
    except ConfigError as exc:
        say(
            _("clinicam {command}: {problem}", command=args.command, problem=message_of(exc)),
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        return 130
    return 2

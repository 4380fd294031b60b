"""The ``clinicam`` command's arguments, with help in the technician's language."""

from __future__ import annotations

import argparse
from pathlib import Path

from clinicam import __version__
from clinicam.i18n import _, localized
from clinicam_app.media_worker import add_parser as add_media_worker

L = localized  # help is rendered once, when the parser is built

DESCRIPTION = _(
    "Clinicam: remote consultation for rural clinics.\n"
    "\n"
    "  clinicam demo                 run broker, server and a simulated appliance here\n"
    "  clinicam server -c FILE       run the server (experts' web pages, WebRTC, control)\n"
    "  clinicam appliance -c FILE    run the camera appliance (real Pi or simulated)\n"
    "  clinicam appliance calibrate -c FILE   walk through the servo calibration\n"
    "  clinicam hash-password        make an argon2id hash for a config file\n"
    "  clinicam device-token DEVICE  make a device token and its hash (-c server.toml)\n"
    "  clinicam audit verify -c FILE check the hash-chained audit log (or --database URL)\n"
    "  clinicam audit checkpoint -c FILE   sign the log's head; keep the line elsewhere\n"
    "\n"
    "Configuration is TOML; environment variables override it, e.g.\n"
    "CLINICAM_SERVER__HTTP__PORT=8443 or CLINICAM_APPLIANCE__MQTT__HOST=hub.local.\n"
)


def _demo(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = sub.add_parser(
        "demo",
        help=L(_("run the whole system on this machine")),
        description=L(
            _(
                "Start mosquitto, the server and one simulated appliance as separate "
                "processes on loopback, print the URL and credentials, and stop "
                "everything on Ctrl-C."
            )
        ),
    )
    demo.add_argument("--host", default="127.0.0.1", help=L(_("address for the web server")))
    demo.add_argument(
        "--port",
        type=int,
        default=8080,
        help=L(_("web server port (another free port is used if it is busy)")),
    )
    demo.add_argument(
        "--state-dir",
        type=Path,
        help=L(
            _("keep generated configs and state here (default: a temporary folder removed on exit)")
        ),
    )
    demo.add_argument("--password", help=L(_("the demo experts' password (default: random)")))
    demo.add_argument(
        "--database-url",
        help=L(
            _(
                "the server's database, e.g. postgresql+psycopg://user@host/clinicam "
                "(default: SQLite in the state folder)"
            )
        ),
    )
    demo.add_argument(
        "--experts",
        type=int,
        default=1,
        choices=range(1, 9),
        metavar="N",
        help=L(
            _(
                "invite N experts (demo, expert2, …; 1–8, default 1) to try the "
                "conference from several browsers"
            )
        ),
    )
    demo.add_argument(
        "--clinics",
        type=int,
        default=1,
        choices=range(1, 5),
        metavar="N",
        help=L(
            _(
                "N clinics, each with its own simulated appliance, consultation and clinic "
                "station (1–4, default 1)"
            )
        ),
    )
    demo.add_argument(
        "--loopback-only",
        action="store_true",
        help=L(_("keep WebRTC on 127.0.0.1 (the browser must allow loopback candidates)")),
    )
    demo.add_argument(
        "--colour-card",
        action="store_true",
        help=L(
            _(
                "light the simulated clinic with a tungsten lamp and hold a 24-patch colour "
                "card up in the camera's view, to try colour calibration"
            )
        ),
    )
    demo.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])


def _runners(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    for name, text, description in (
        (
            "server",
            _("run the server"),
            _(
                "Run the server with a TOML configuration file; "
                "a bad file stops start-up naming the key."
            ),
        ),
        (
            "appliance",
            _("run the appliance"),
            _(
                "Run the appliance with a TOML configuration file; "
                "a bad file stops start-up naming the key."
            ),
        ),
    ):
        p = sub.add_parser(name, help=L(text), description=L(description))
        if name == "appliance":
            p.add_argument(
                "action",
                nargs="?",
                default="run",
                choices=["run", "calibrate", "doctor", "provision", "update", "kiosk-page"],
                help=L(
                    _(
                        "'calibrate' walks a technician through the servo calibration and "
                        "writes it into the config file; 'doctor' checks camera, I2C, servos, "
                        "GPIO, broker, server, clock, disk and temperature; 'provision' "
                        "applies clinicam.toml from the boot partition (first boot); "
                        "'update SOURCE' installs a release beside the current one and rolls "
                        "back if it is not healthy; 'kiosk-page --output FILE' writes the "
                        "start page of the clinic station on the appliance's own screen"
                    )
                ),
            )
            p.add_argument(
                "rest",
                nargs=argparse.REMAINDER,
                help=L(_("arguments of doctor/provision/update ('--help' after the action)")),
            )
        p.add_argument("-c", "--config", type=Path, help=L(_("TOML configuration file")))
        p.add_argument(
            "--check",
            action="store_true",
            help=L(_("only validate the configuration and exit")),
        )


def _secrets(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sub.add_parser(
        "hash-password",
        help=L(_("print an argon2id hash of a password read from the terminal or stdin")),
    )
    device_token = sub.add_parser(
        "device-token",
        help=L(_("make a new token for an appliance and the hash for the server's [[devices]]")),
        description=L(
            _(
                "Prints a new token '<device>.<secret>' for the appliance's server.token "
                "and its hash (HMAC-SHA256 under the key in the server's state_dir, made if "
                "missing) for token_hash in the server's [[devices]] table. Replaces argon2 "
                "token hashes from older releases, which are slow to check."
            )
        ),
    )
    device_token.add_argument("device", help=L(_("the device_id")))
    device_token.add_argument("-c", "--config", type=Path, help=L(_("server TOML file")))


def _bridge(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    bridge = sub.add_parser(
        "broker-bridge",
        help=L(_("write the mosquitto settings that bridge a clinic hub to a regional broker")),
        description=L(
            _(
                "Writes mosquitto's 'connection' section for this hub (install it as "
                "/etc/mosquitto/conf.d/clinicam-bridge.conf and restart mosquitto): the "
                "appliances' commands come down, their status goes up, with MQTT 5 "
                "properties kept. On the regional broker the hub's account may reach only "
                "the appliances it serves."
            )
        ),
    )
    bridge.add_argument("--name", required=True, help=L(_("the hub's name, e.g. hill-clinic")))
    bridge.add_argument("--remote", required=True, help=L(_("the regional broker as HOST:PORT")))
    bridge.add_argument(
        "--username", required=True, help=L(_("the hub's account on the regional broker"))
    )
    bridge.add_argument(
        "--password-file",
        type=Path,
        required=True,
        help=L(_("a file holding that account's password (kept out of the shell history)")),
    )
    bridge.add_argument("--cafile", help=L(_("CA certificate to verify the regional broker's TLS")))
    bridge.add_argument(
        "--output", type=Path, help=L(_("write the section here (default: print it)"))
    )


def _audit(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    audit = sub.add_parser(
        "audit",
        help=L(_("check the server's audit log")),
        description=L(
            _(
                "'verify' walks the hash-chained audit log and reports every "
                "edited, deleted, reordered or non-canonical entry by seq (exit 1), or "
                "'audit log OK' (exit 0); with --checkpoint it also finds entries cut off the "
                "end and a rewritten head. 'checkpoint' verifies the log, then prints a signed "
                "record (seq, hash, at) of its head (and appends it to --out): keep those "
                "lines and the public key (audit-signing.pub) outside the server. "
                "The database is not changed."
            )
        ),
    )
    audit.add_argument(
        "action", choices=["verify", "checkpoint"], help=L(_("what to do with the audit log"))
    )
    audit.add_argument(
        "--checkpoint",
        type=Path,
        help=L(_("verify: a file of signed checkpoints (one JSON line each) the log must match")),
    )
    audit.add_argument(
        "--key",
        type=Path,
        help=L(
            _(
                "Ed25519 key (PEM): checkpoint signs with the private key (created if "
                "missing); verify needs the public key or the private key file "
                "(default: audit-signing.key / .pub in the config's state_dir)"
            )
        ),
    )
    audit.add_argument(
        "--out", type=Path, help=L(_("checkpoint: also append the record to this file"))
    )
    where = audit.add_mutually_exclusive_group()
    where.add_argument(
        "-c",
        "--config",
        type=Path,
        help=L(_("server TOML file (its state_dir holds clinicam.db)")),
    )
    where.add_argument(
        "--database",
        help=L(_("database URL, e.g. sqlite:///state/clinicam.db or postgresql+psycopg://…")),
    )


def _report(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    report = sub.add_parser(
        "report",
        help=L(_("check a signed consultation report")),
        description=L(
            _(
                "'verify FILE' checks a downloaded consultation report (its signed "
                "envelope): prints whether the signature is valid, the signer and the key "
                "id (exit 0), or why it is not (exit 1). Any changed byte fails."
            )
        ),
    )
    report.add_argument("action", choices=["verify"], help=L(_("what to do with the report")))
    report.add_argument("file", type=Path, help=L(_("the report envelope (.json)")))
    report.add_argument(
        "--key",
        type=Path,
        help=L(_("the site's report-signing public key (PEM): the report must be signed by it")),
    )


def _tools(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    model = sub.add_parser(
        "model",
        help=L(_("train, export or rebuild the relevance model (needs the 'train' extra)")),
        description=L(
            _(
                "train: --data DIR --out DIR [--epochs N] [--seed S] [--version V] "
                "(dataset layout: models/README.md); export: --model DIR --data DIR --out "
                "FILE.tflite; build-demo: rebuild the shipped demonstration model. Arguments "
                "after the action go to the tool; '--help' after it lists them."
            )
        ),
    )
    model.add_argument("action", choices=["train", "export", "build-demo"])
    model.add_argument("args", nargs=argparse.REMAINDER, help=L(_("the tool's own arguments")))
    records = sub.add_parser(
        "records",
        help=L(_("import patient records from a hospital system")),
        description=L(
            _(
                "import-dicom files every DICOM file under FOLDER for one patient; "
                "import-fhir files a FHIR R4 Bundle (patients, observations, conditions, "
                "attachments). Progress is printed; skipped files are listed with the reason."
            )
        ),
    )
    records.add_argument("action", choices=["import-dicom", "import-fhir", "export-fhir"])
    records.add_argument(
        "source",
        help=L(_("the DICOM folder or the Bundle JSON file")),
    )
    records.add_argument(
        "--out",
        type=Path,
        help=L(
            _(
                "export-fhir PATIENT --out FILE: write the patient's record (SOURCE is "
                "their identifier) to FILE as one FHIR R4 Bundle"
            )
        ),
    )
    records.add_argument(
        "--deidentified",
        action="store_true",
        help=L(
            _(
                "export-fhir: de-identified (pseudonyms, shifted dates, no voice notes or "
                "PDF); needs the patient's export consent"
            )
        ),
    )
    records.add_argument("--patient", help=L(_("import-dicom: the patient's identifier")))
    records.add_argument("--name", help=L(_("import-dicom: the patient's name if new")))
    records.add_argument(
        "--create-patients",
        action="store_true",
        help=L(
            _(
                "create the patients the import names that are not registered yet "
                "(audited); without it they are refused"
            )
        ),
    )
    records.add_argument("-c", "--config", type=Path, help=L(_("server TOML file")))
    blobs = sub.add_parser(
        "blobs",
        help=L(_("move the site's record content between the local folder and S3")),
        description=L(
            _(
                "migrate copies every blob the database references from the store "
                "[blobs] backend names to the other one, verifying each copy's SHA-256; "
                "run it again to continue an interrupted run. Switch [blobs] backend "
                "afterwards."
            )
        ),
    )
    blobs.add_argument("action", choices=["migrate"])
    blobs.add_argument(
        "--to", required=True, choices=["s3", "local"], help=L(_("the store to copy to"))
    )
    blobs.add_argument("-c", "--config", type=Path, help=L(_("server TOML file")))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="clinicam",
        description=L(DESCRIPTION),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"clinicam {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _demo(sub)
    _runners(sub)
    add_media_worker(sub, L)
    _secrets(sub)
    _bridge(sub)
    _audit(sub)
    _report(sub)
    _tools(sub)
    return parser

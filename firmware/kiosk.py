"""The clinic station on the appliance's own screen (R16): the kiosk's start page.

``clinicam appliance kiosk-page --config FILE --output PATH`` writes a small local HTML
file that sends the kiosk browser to this appliance's station page on its server, with
the device token in the URL fragment (the station page keeps it in memory; a fragment
is never sent to a server or written to its logs). The file is the clinicam user's
alone (0600, in a runtime folder), so the token appears on no command line.
``systemd/clinicam-kiosk.service`` runs it before starting Chromium in ``cage``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from urllib.parse import quote

from clinicam.configfile import ConfigError, load_config
from clinicam.const import ENV_APPLIANCE_PREFIX
from clinicam.i18n import _, localized, message_of, say
from firmware.config import ApplianceConfig

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Clinicam clinic station</title></head>
<body style="background:#111;color:#fff;font:2rem sans-serif">Starting the clinic station…
<script>location.replace({target});</script></body></html>
"""


def station_url(config: ApplianceConfig) -> str:
    """This appliance's station page on its server, with its token in the fragment."""
    token = quote(config.server.token.get_secret_value(), safe="")
    return f"{config.server.url}/station/{quote(config.device_id, safe='')}#token={token}"


def write_kiosk_page(config: ApplianceConfig, output: Path) -> None:
    """Write the start page atomically, readable only by its owner."""
    target = json.dumps(station_url(config)).replace("</", "<\\/")
    temp = output.with_name(f".{output.name}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(PAGE.format(target=target))
    os.replace(temp, output)


def main_kiosk_page(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="clinicam appliance kiosk-page",
        description=localized(
            _("Write the kiosk browser's start page (the clinic station of this appliance).")
        ),
    )
    parser.add_argument(
        "-c", "--config", type=Path, help=localized(_("the appliance's TOML configuration"))
    )
    parser.add_argument(
        "--output", type=Path, required=True, help=localized(_("the HTML file to write"))
    )
    args = parser.parse_args(argv)
    try:
        config = load_config(ApplianceConfig, args.config, env_prefix=ENV_APPLIANCE_PREFIX)
    except ConfigError as exc:
        say(
            _("clinicam appliance kiosk-page: {problem}", problem=message_of(exc)),
            file=sys.stderr,
        )
        return 2
    try:
        write_kiosk_page(config, args.output)
    except OSError as exc:
        say(
            _(
                "clinicam appliance kiosk-page: cannot write {path}: {problem}",
                path=args.output,
                problem=str(exc),
            ),
            file=sys.stderr,
        )
        return 1
    return 0

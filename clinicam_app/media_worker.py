"""``clinicam media-worker``: one more process taking consultations' WebRTC and compositing.

It is the server itself, started from the site's own configuration file with the
worker's name and address: it shares the database, the broker, the state folder's keys
and the object store with the web front, and a front sends it the media path of the
appliances pinned to it (``[cluster]``, issue 21).
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clinicam.configfile import ConfigError, load_config
from clinicam.const import ENV_SERVER_PREFIX
from clinicam.i18n import _

if TYPE_CHECKING:
    from server.config import ServerConfig

_LISTEN = re.compile(r"^(?P<host>[^\s:]+|\[[0-9a-fA-F:]+\]):(?P<port>\d{1,5})$")


def add_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], L: Callable[[str], Any]
) -> None:
    """The subcommand (``L`` makes help texts lazy in the reader's language)."""
    p = sub.add_parser(
        "media-worker",
        help=L(_("run a media worker for a site with several processes ([cluster])")),
        description=L(
            _(
                "Runs the server as a media worker: it announces itself in Redis, takes the "
                "WebRTC and compositing of the appliances the web fronts pin to it, and "
                "gives them up when it stops. Use the site's configuration file (with its "
                "[cluster] section); the worker's name and address are given here."
            )
        ),
    )
    p.add_argument("-c", "--config", type=Path, help=L(_("the site's server TOML file")))
    p.add_argument("--id", required=True, help=L(_("this worker's name, e.g. media-1")))
    p.add_argument(
        "--listen", required=True, help=L(_("where it listens, HOST:PORT (an internal address)"))
    )
    p.add_argument(
        "--url",
        help=L(_("how the web fronts reach it (default: http://HOST:PORT from --listen)")),
    )
    p.add_argument(
        "--check", action="store_true", help=L(_("only validate the configuration and exit"))
    )


def worker_config(args: argparse.Namespace) -> ServerConfig:
    """The site's configuration, made this worker's (ConfigError if it cannot be)."""
    from server.config import ServerConfig

    config: ServerConfig = load_config(ServerConfig, args.config, env_prefix=ENV_SERVER_PREFIX)
    if config.cluster is None:
        raise ConfigError(_("a media worker needs the site's [cluster] section"))
    listen = _LISTEN.match(args.listen)
    if listen is None or not 0 < int(listen["port"]) < 65536:
        raise ConfigError(_("--listen must be HOST:PORT, e.g. 10.0.0.7:8101"))
    host, port = listen["host"].strip("[]"), int(listen["port"])
    url = args.url or f"http://{listen['host']}:{port}"
    cluster = config.cluster.model_validate(
        {**config.cluster.model_dump(), "worker_id": args.id, "worker_url": url}
    )
    http = config.http.model_copy(update={"host": host, "port": port})
    return config.model_copy(update={"cluster": cluster, "http": http})

"""One readable log format for every Clinicam process."""

from __future__ import annotations

import logging
import sys


def setup_logging(level: str, name: str) -> None:
    """Log to stderr as ``time level [name] logger: message`` (journald adds its own time)."""
    logging.basicConfig(
        level=level.upper(),
        stream=sys.stderr,
        format=f"%(asctime)s %(levelname)-7s [{name}] %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        force=True,
    )
    for noisy in ("aioice", "aiortc", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))

"""Parse each command once and route it to the handler of its domain."""

from __future__ import annotations

import logging

from clinicam.protocol import CommandAck, CommandRejected, PtzHome, PtzRelative, parse_command
from firmware.control.ptz import PtzCommands

_LOGGER = logging.getLogger(__name__)


class CommandRouter:
    """Validates payloads and dispatches by ``op``; invalid input changes nothing."""

    def __init__(self, ptz: PtzCommands) -> None:
        self._ptz = ptz

    async def handle(self, payload: bytes) -> CommandAck:
        try:
            command = parse_command(payload)
        except CommandRejected as exc:
            _LOGGER.warning("command refused: %s", exc)
            return CommandAck(ok=False, error=f"invalid command: {exc}")
        if isinstance(command, PtzRelative | PtzHome):
            return self._ptz.handle(command)
        return CommandAck(ok=False, error="unsupported command")  # pragma: no cover

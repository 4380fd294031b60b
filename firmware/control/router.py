"""Parse each command once, refuse what must not run, route the rest by domain.

Exactly one acknowledgement per command: ok with the resulting state, or an error
naming the field and the reason. Invalid, expired and (while privacy is on) motion
commands change nothing; a duplicate id is answered with the original ack again.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from clinicam.protocol import (
    MOTION_OPS,
    AnyCommand,
    ApplianceState,
    CommandAck,
    CommandRejected,
    parse_command,
)

_LOGGER = logging.getLogger(__name__)

Result = dict[str, Any] | None
DomainHandler = Callable[[Any], Awaitable[Result]]
LEDGER_SIZE = 512


class CommandFailed(Exception):
    """A valid command that cannot be carried out now; the message says why."""


class CommandRouter:
    """Validation, de-duplication, privacy gate and dispatch, in that order."""

    def __init__(
        self,
        handlers: Mapping[str, DomainHandler],
        *,
        state: Callable[[], ApplianceState],
        private: Callable[[], bool],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._handlers = handlers
        self._state = state
        self._private = private
        self._clock = clock
        self._ledger: OrderedDict[str, CommandAck] = OrderedDict()
        self.executed = 0

    def _remember(self, command_id: str, ack: CommandAck) -> CommandAck:
        self._ledger[command_id] = ack
        while len(self._ledger) > LEDGER_SIZE:
            self._ledger.popitem(last=False)
        return ack

    async def handle(self, payload: bytes, expires_at: float | None = None) -> CommandAck:
        try:
            command = parse_command(payload)
        except CommandRejected as exc:
            _LOGGER.warning("command refused: %s", exc)
            return CommandAck(ok=False, id=exc.command_id, error=f"invalid command: {exc}")
        previous = self._ledger.get(command.id)
        if previous is not None:
            _LOGGER.info(
                "duplicate command %s (%s) acknowledged again, not executed", command.id, command.op
            )
            return previous.model_copy(update={"duplicate": True})
        if expires_at is not None and self._clock() > expires_at:
            _LOGGER.warning("command %s (%s) expired before it could run", command.id, command.op)
            return self._remember(
                command.id,
                CommandAck(ok=False, id=command.id, op=command.op, error="expired: not executed"),
            )
        if command.op in MOTION_OPS and self._private():
            _LOGGER.info("command %s refused: privacy mode is on", command.op)
            return self._remember(
                command.id,
                CommandAck(
                    ok=False,
                    id=command.id,
                    op=command.op,
                    error="privacy mode is on: the camera does not move until it is turned off",
                ),
            )
        return self._remember(command.id, await self._execute(command))

    async def _execute(self, command: AnyCommand) -> CommandAck:
        handler = self._handlers.get(command.op.split(".")[0])
        if handler is None:
            return CommandAck(
                ok=False,
                id=command.id,
                op=command.op,
                error=f"op: '{command.op}' is not supported by this appliance",
            )
        try:
            result = await handler(command)
        except CommandFailed as exc:
            _LOGGER.info("command %s (%s) failed: %s", command.id, command.op, exc)
            return CommandAck(ok=False, id=command.id, op=command.op, error=str(exc))
        self.executed += 1
        _LOGGER.info(
            "command %s %s done", command.op, command.model_dump_json(exclude={"op", "id"})
        )
        return CommandAck(ok=True, id=command.id, op=command.op, state=self._state(), result=result)

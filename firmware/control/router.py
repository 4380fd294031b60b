"""Parse each command once, refuse what must not run, route the rest by domain.

Exactly one acknowledgement per command: ok with the resulting state, or an error
naming the field and the reason. Invalid, expired and (while privacy is on) motion
commands change nothing; a duplicate id is answered with the original ack again.

Every command has a deadline — its ``not_after`` (UTC) and/or the MQTT message expiry
(monotonic) — and is refused once either has passed, or without one at all. The
duplicate ledger keeps each id until the command's deadline has passed on both
clocks, so a replay is always either recognised or refused as expired; when the ledger
is full it refuses new commands rather than forgetting ids (and keeps refusing until
every command refused for that reason is past its deadline too).
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from clinicam.const import MAX_COMMAND_LIFETIME_S
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
LEDGER_LIMIT = 4096  # ids of live commands; ≈800 commands/s for a 5 s command life


class CommandFailed(Exception):
    """A valid command that cannot be carried out now; the message says why, and
    ``code`` (if any) says it to a program: it is the failed ack's ``result.code``."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Deadline:
    """When a command may no longer start: on the wall clock (its ``not_after``) and on
    the monotonic clock (its MQTT message expiry); ``None`` where it has none."""

    wall: float | None = None
    mono: float | None = None

    def passed(self, wall_now: float, mono_now: float) -> bool:
        """Past on either clock: the command must not start."""
        return (self.wall is not None and wall_now > self.wall) or (
            self.mono is not None and mono_now > self.mono
        )

    def over(self, wall_now: float, mono_now: float) -> bool:
        """Past on every clock it has: no delivery of the command can start any more."""
        return (self.wall is None or wall_now > self.wall) and (
            self.mono is None or mono_now > self.mono
        )

    def later(self, other: Deadline) -> Deadline:
        """Over only when both are."""

        def latest(a: float | None, b: float | None) -> float | None:
            return b if a is None else a if b is None else max(a, b)

        return Deadline(latest(self.wall, other.wall), latest(self.mono, other.mono))


def _refused(command: AnyCommand, error: str) -> CommandAck:
    return CommandAck(ok=False, id=command.id, op=command.op, error=error)


class CommandRouter:
    """Validation, de-duplication, privacy gate and dispatch, in that order."""

    def __init__(
        self,
        handlers: Mapping[str, DomainHandler],
        *,
        state: Callable[[], ApplianceState],
        private: Callable[[], bool],
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        ledger_limit: int = LEDGER_LIMIT,
    ) -> None:
        self._handlers = handlers
        self._state = state
        self._private = private
        self._clock = clock
        self._wall_clock = wall_clock
        self._ledger: OrderedDict[str, tuple[CommandAck, Deadline]] = OrderedDict()
        self._ledger_limit = ledger_limit
        self._busy_until = Deadline()  # refusing (ledger was full) until this is over
        self.executed = 0

    def _remember(self, command_id: str, ack: CommandAck, deadline: Deadline) -> CommandAck:
        self._ledger[command_id] = (ack, deadline)
        return ack

    def _forget_expired(self, wall_now: float, mono_now: float, *, everywhere: bool) -> None:
        """Drop ids whose commands can no longer start (oldest first, or all of them)."""
        if everywhere:
            for key in [k for k, (_, d) in self._ledger.items() if d.over(wall_now, mono_now)]:
                del self._ledger[key]
            return
        while self._ledger:
            key, (_, deadline) = next(iter(self._ledger.items()))
            if not deadline.over(wall_now, mono_now):
                break
            del self._ledger[key]

    @staticmethod
    def _too_far_ahead(deadline: Deadline, wall_now: float, mono_now: float) -> str | None:
        ahead = max(
            deadline.wall - wall_now if deadline.wall is not None else 0.0,
            deadline.mono - mono_now if deadline.mono is not None else 0.0,
        )
        if ahead <= MAX_COMMAND_LIFETIME_S:
            return None
        return (
            f"deadline {ahead:.0f} s ahead, more than {MAX_COMMAND_LIFETIME_S:.0f} s: "
            "not executed (is the appliance's clock behind?)"
        )

    async def handle(self, payload: bytes, expires_at: float | None = None) -> CommandAck:
        try:
            command = parse_command(payload)
        except CommandRejected as exc:
            _LOGGER.warning("command refused: %s", exc)
            return CommandAck(ok=False, id=exc.command_id, error=f"invalid command: {exc}")
        wall_now, mono_now = self._wall_clock(), self._clock()
        self._forget_expired(wall_now, mono_now, everywhere=False)
        previous = self._ledger.get(command.id)
        if previous is not None:
            _LOGGER.info(
                "duplicate command %s (%s) acknowledged again, not executed", command.id, command.op
            )
            return previous[0].model_copy(update={"duplicate": True})
        deadline = Deadline(command.not_after, expires_at)
        if deadline.wall is None and deadline.mono is None:
            _LOGGER.warning("command %s (%s) refused: no deadline", command.id, command.op)
            return _refused(  # so is every copy of it: nothing to remember
                command, "no deadline: a command must carry not_after or a message expiry"
            )
        if deadline.passed(wall_now, mono_now):
            _LOGGER.warning("command %s (%s) expired before it could run", command.id, command.op)
            return _refused(command, "expired: not executed")  # every copy of it is, too
        if len(self._ledger) >= self._ledger_limit:
            self._forget_expired(wall_now, mono_now, everywhere=True)
        if len(self._ledger) >= self._ledger_limit or not self._busy_until.over(wall_now, mono_now):
            # Refused without remembering its id: so refuse everything new until this
            # command's deadline is over, or its redelivery could run once there is room.
            self._busy_until = self._busy_until.later(deadline)
            _LOGGER.warning("command %s (%s) refused: too many commands", command.id, command.op)
            return _refused(command, "busy: too many commands in a short time; not executed")
        too_far = self._too_far_ahead(deadline, wall_now, mono_now)
        if too_far is not None:
            _LOGGER.warning("command %s (%s) refused: %s", command.id, command.op, too_far)
            return self._remember(command.id, _refused(command, too_far), deadline)
        if command.op in MOTION_OPS and self._private():
            _LOGGER.info("command %s refused: privacy mode is on", command.op)
            return self._remember(
                command.id,
                _refused(
                    command, "privacy mode is on: the camera does not move until it is turned off"
                ),
                deadline,
            )
        return self._remember(command.id, await self._execute(command), deadline)

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
            result = {"code": exc.code} if exc.code is not None else None
            return CommandAck(ok=False, id=command.id, op=command.op, error=str(exc), result=result)
        self.executed += 1
        _LOGGER.info(
            "command %s %s done", command.op, command.model_dump_json(exclude={"op", "id"})
        )
        return CommandAck(ok=True, id=command.id, op=command.op, state=self._state(), result=result)

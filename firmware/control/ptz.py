"""Pan-tilt commands: the seed's "target = current + adjustment", clamped to limits."""

from __future__ import annotations

import logging

from clinicam.protocol import CommandAck, PtzHome, PtzRelative, PtzState
from firmware.hardware.protocols import PanTilt

_LOGGER = logging.getLogger(__name__)


class PtzCommands:
    """Turns validated PTZ commands into pan-tilt moves."""

    def __init__(self, pantilt: PanTilt) -> None:
        self._pantilt = pantilt

    def state(self) -> PtzState:
        pan, tilt = self._pantilt.position
        return PtzState(pan=round(pan, 3), tilt=round(tilt, 3))

    def handle(self, command: PtzRelative | PtzHome) -> CommandAck:
        if isinstance(command, PtzRelative):
            pan, tilt = self._pantilt.position
            target = self._pantilt.move_to(pan + command.pan, tilt + command.tilt)
        else:
            target = self._pantilt.move_to(0.0, 0.0)
        _LOGGER.info("command %s → pan %.1f° tilt %.1f°", command.op, *target)
        return CommandAck(ok=True, op=command.op, ptz=self.state())

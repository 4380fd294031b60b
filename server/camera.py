"""Camera commands from the expert who holds control (R2, R3): the rules and the audit.

Only camera operations pass (``CAMERA_OPS``: position, presets, focus, colour, zoom,
snapshot, stream); anything else — an update, privacy, the model — is refused before the
floor is even asked, audited, and never sent. Every outcome is audited with what is
known: ok, the appliance's error, not sent, or not confirmed (the command may have run
but cannot start any more).
"""

from __future__ import annotations

import logging
import secrets
from typing import Any, Protocol

from clinicam.i18n import _
from clinicam.protocol import AnyCommand, CommandAck, CommandRejected, validate_command
from server.audit.trail import AuditTrail
from server.config import ConsultationConfig
from server.mqtt_link import CAMERA_OPS, ApplianceLink, CommandNotSent, CommandUnconfirmed
from server.room import RoomRegistry

_LOGGER = logging.getLogger(__name__)
CALIBRATE_TIMEOUT_S = 15.0  # two frames, finding the card twice and the fit (a Pi: seconds)


class CameraPath(Protocol):
    """What a camera command passes through: the rooms (floor), the appliances' link and
    the audit trail (the server's state has them all)."""

    @property
    def rooms(self) -> RoomRegistry: ...

    @property
    def appliances(self) -> ApplianceLink: ...

    @property
    def audit(self) -> AuditTrail: ...


class NotACameraCommand(Exception):
    """A valid command that this path does not forward; the message says which."""


class ControlHeldElsewhere(Exception):
    """Another expert holds control (R2); the message names them."""


async def camera_command(
    state: CameraPath, consultation: ConsultationConfig, username: str, body: dict[str, Any]
) -> CommandAck:
    """Validate, check and forward one camera command; the appliance's ack.

    Raises :class:`CommandRejected` (invalid), :class:`NotACameraCommand`,
    :class:`ControlHeldElsewhere`, :class:`CommandNotSent` or :class:`CommandUnconfirmed`.
    """
    body = {**body, "id": f"{username}-{secrets.token_hex(6)}"}  # ids are the server's
    body.pop("not_after", None)  # deadlines too: the link sets it
    if body.get("op") == "snapshot":  # filed into this consultation's patient's record
        body["requested_by"] = username
        body["consultation"] = consultation.id
    command: AnyCommand = validate_command(body)
    target = f"patient:{consultation.patient_id}"
    detail = {
        "op": command.op,
        "params": command.model_dump(mode="json", exclude={"op", "not_after"}),
        "appliance": consultation.appliance,
        "consultation": consultation.id,
    }
    if command.op not in CAMERA_OPS:
        _LOGGER.warning("refused %s from %s: not a camera command", command.op, username)
        await state.audit.record(
            username, "camera.refused", target, {**detail, "reason": "not a camera command"}
        )
        raise NotACameraCommand(_("op: '{op}' is not a camera command", op=command.op))
    floor = state.rooms.get(consultation).floor
    if not floor.may_control(username):  # R2: only the holder's requests are forwarded
        _LOGGER.info(
            "command %s from %s refused: control is held by %s", command.op, username, floor.holder
        )
        await state.audit.record(
            username, "camera.refused", target, {**detail, "holder": floor.holder}
        )
        raise ControlHeldElsewhere(_("camera control is held by {holder}", holder=floor.holder))
    try:
        ack = await state.appliances.send(
            consultation.appliance,
            command,
            allowed=CAMERA_OPS,
            **({"timeout_s": CALIBRATE_TIMEOUT_S} if command.op == "colour.calibrate" else {}),
        )
    except (CommandNotSent, CommandUnconfirmed) as exc:
        outcome = "unconfirmed" if isinstance(exc, CommandUnconfirmed) else "not sent"
        _LOGGER.warning(
            "command %s from %s to %s %s: %s",
            command.op,
            username,
            consultation.appliance,
            outcome,
            exc,
        )
        await state.audit.record(
            username, "camera.command", target, {**detail, "result": f"{outcome}: {exc}"}
        )
        raise
    result = "ok" if ack.ok else ack.error
    await state.audit.record(username, "camera.command", target, {**detail, "result": result})
    _LOGGER.info(
        "command %s %s from %s to %s: %s",
        command.op,
        command.model_dump_json(exclude={"op", "id", "not_after"}),
        username,
        consultation.appliance,
        result,
    )
    return ack


__all__ = [
    "CommandNotSent",
    "CommandRejected",
    "CommandUnconfirmed",
    "ControlHeldElsewhere",
    "NotACameraCommand",
    "camera_command",
]

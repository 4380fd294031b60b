"""Messages that cross the MQTT wire between server and appliance.

Every command is a pydantic model with a literal ``op``; the union is parsed in one
place so that a malformed payload is refused with a reason and never acted on.
Pan and tilt are degrees relative to the rig's centre: pan + is right, tilt + is up.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field, TypeAdapter, ValidationError

from clinicam.configfile import StrictModel

MAX_COMMAND_BYTES = 4096


class WireModel(StrictModel):
    """Base for wire messages: unknown fields and non-finite numbers are refused."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)


class PtzRelative(WireModel):
    """The seed's position adjustment: target = current + delta (clamped to limits)."""

    op: Literal["ptz.relative"] = "ptz.relative"
    pan: float = Field(0.0, ge=-180.0, le=180.0, description="Degrees; + is right.")
    tilt: float = Field(0.0, ge=-180.0, le=180.0, description="Degrees; + is up.")


class PtzHome(WireModel):
    """Return to the rig's centre (0, 0)."""

    op: Literal["ptz.home"] = "ptz.home"


Command = Annotated[PtzRelative | PtzHome, Field(discriminator="op")]
_COMMAND_ADAPTER: TypeAdapter[PtzRelative | PtzHome] = TypeAdapter(Command)


class CommandRejected(ValueError):
    """A payload that is not a valid command; the message says why."""


def parse_command(payload: bytes) -> PtzRelative | PtzHome:
    """Parse and validate one command payload (JSON)."""
    if len(payload) > MAX_COMMAND_BYTES:
        raise CommandRejected(f"payload too large ({len(payload)} bytes > {MAX_COMMAND_BYTES})")
    try:
        return _COMMAND_ADAPTER.validate_json(payload)
    except ValidationError as exc:
        reasons = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'payload'}: {e['msg']}" for e in exc.errors()
        )
        raise CommandRejected(reasons) from None


class PtzState(WireModel):
    """Where the pan-tilt head was last commanded to (degrees from centre)."""

    pan: float
    tilt: float


class ApplianceState(WireModel):
    """Retained state the appliance publishes after every change."""

    ptz: PtzState
    streaming: bool


class CommandAck(WireModel):
    """One acknowledgement per command, sent to the command's response topic."""

    ok: bool
    op: str | None = None
    error: str | None = None
    ptz: PtzState | None = None

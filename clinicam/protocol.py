"""Messages that cross the MQTT wire between server and appliance.

Every command is a pydantic model with a literal ``op`` and a command ``id`` (unique
per command; a redelivered duplicate is acknowledged again but not executed again).
The union is parsed in one place so that a malformed payload is refused with a
reason naming the field and is never acted on. Pan and tilt are degrees relative to
the rig's centre: pan + is right, tilt + is up. Camera controls follow libcamera's
names and units (``LensPosition`` in dioptres, ``ColourGains`` red/blue).
"""

from __future__ import annotations

import json
from typing import Annotated, Literal, Self

from pydantic import ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from clinicam.configfile import StrictModel
from clinicam.i18n import TextList, _
from clinicam.release import MAX_RELEASE_BYTES, VERSION_PATTERN

MAX_COMMAND_BYTES = 4096
MAX_PRESETS = 32
ZOOM_MAX = 8.0
LENS_MAX_DIOPTRES = 15.0
AWB_MODES = ("auto", "incandescent", "tungsten", "fluorescent", "indoor", "daylight", "cloudy")

CommandId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
Degrees = Annotated[float, Field(ge=-180.0, le=180.0)]


class WireModel(StrictModel):
    """Base for wire messages: unknown fields and non-finite numbers are refused."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)


class CommandBase(WireModel):
    """Fields every command has."""

    id: CommandId = Field(description="Unique per command; duplicates are not re-executed.")
    not_after: float | None = Field(
        None,
        gt=0.0,
        le=1e11,
        description="Deadline, UTC seconds since the epoch: the appliance refuses to start "
        "the command later. The server's link sets it to the end of its wait for the ack.",
    )


class PtzRelative(CommandBase):
    """The seed's position adjustment: target = current + delta (slides along limits)."""

    op: Literal["ptz.relative"] = "ptz.relative"
    pan: Degrees = Field(0.0, description="Degrees; + is right.")
    tilt: Degrees = Field(0.0, description="Degrees; + is up.")


class PtzAbsolute(CommandBase):
    """Go to (pan, tilt) degrees from the centre (clamped to the soft limits)."""

    op: Literal["ptz.absolute"] = "ptz.absolute"
    pan: Degrees
    tilt: Degrees


UnitInterval = Annotated[float, Field(ge=0.0, le=1.0)]


class PtzLookAt(CommandBase):
    """Click to centre: turn so that point (x, y) of the displayed frame becomes its centre.

    (x, y) are fractions of the frame's width and height from its top left corner. The
    appliance works the angles out from its own lens, crop and position (the client's
    idea of them is not asked for), clamped to the soft limits; the zoom stays."""

    op: Literal["ptz.look_at"] = "ptz.look_at"
    x: UnitInterval = Field(description="0 left edge … 1 right edge of the displayed frame.")
    y: UnitInterval = Field(description="0 top edge … 1 bottom edge of the displayed frame.")


class PtzFrame(CommandBase):
    """Drag to zoom: centre the box (fractions of the displayed frame, from its top left
    corner) and zoom digitally so that it fills the view (aspect kept, up to ZOOM_MAX)."""

    op: Literal["ptz.frame"] = "ptz.frame"
    x: UnitInterval
    y: UnitInterval
    width: float = Field(ge=0.005, le=1.0, description="Box width, fraction of the frame's.")
    height: float = Field(ge=0.005, le=1.0, description="Box height, fraction of the frame's.")

    @model_validator(mode="after")
    def _inside(self) -> Self:
        if self.x + self.width > 1.0 + 1e-9 or self.y + self.height > 1.0 + 1e-9:
            raise ValueError("the box must lie inside the frame (x + width ≤ 1, y + height ≤ 1)")
        return self


class PtzContinuous(CommandBase):
    """Move at a velocity until stopped or until ``timeout_s`` passes without a refresh."""

    op: Literal["ptz.continuous"] = "ptz.continuous"
    pan_speed: float = Field(0.0, ge=-180.0, le=180.0, description="Degrees per second.")
    tilt_speed: float = Field(0.0, ge=-180.0, le=180.0, description="Degrees per second.")
    timeout_s: float = Field(gt=0.0, le=1.0, description="Dead-man: stop if not refreshed.")


class PtzStop(CommandBase):
    op: Literal["ptz.stop"] = "ptz.stop"


class PtzHome(CommandBase):
    """Return to the rig's centre (0, 0)."""

    op: Literal["ptz.home"] = "ptz.home"


class PresetSave(CommandBase):
    op: Literal["preset.save"] = "preset.save"
    slot: int = Field(ge=1, le=MAX_PRESETS)
    name: str = Field("", max_length=40, pattern=r"^[^\x00-\x1f]*$")


class PresetGoto(CommandBase):
    op: Literal["preset.goto"] = "preset.goto"
    slot: int = Field(ge=1, le=MAX_PRESETS)


class PresetDelete(CommandBase):
    op: Literal["preset.delete"] = "preset.delete"
    slot: int = Field(ge=1, le=MAX_PRESETS)


class Focus(CommandBase):
    """Auto one-shot, continuous, manual (dioptres) or a relative step."""

    op: Literal["focus"] = "focus"
    mode: Literal["auto", "continuous", "manual", "step"]
    lens_position: float | None = Field(
        None, ge=0.0, le=LENS_MAX_DIOPTRES, description="Dioptres (manual); 0 = infinity."
    )
    step: float | None = Field(None, ge=-5.0, le=5.0, description="Dioptres (step).")

    @model_validator(mode="after")
    def _fields_for_mode(self) -> Self:
        if self.mode == "manual" and self.lens_position is None:
            raise ValueError("lens_position is required for mode 'manual'")
        if self.mode == "step" and self.step is None:
            raise ValueError("step is required for mode 'step'")
        if self.mode != "manual" and self.lens_position is not None:
            raise ValueError("lens_position is only for mode 'manual'")
        if self.mode != "step" and self.step is not None:
            raise ValueError("step is only for mode 'step'")
        return self


class Colour(CommandBase):
    """White balance (AWB mode or manual gains) and picture adjustments."""

    op: Literal["colour"] = "colour"
    awb: Literal[AWB_MODES] | None = None  # type: ignore[valid-type]
    gains: (
        tuple[Annotated[float, Field(gt=0.0, le=32.0)], Annotated[float, Field(gt=0.0, le=32.0)]]
        | None
    ) = Field(None, description="Manual (red, blue) gains; turns AWB off.")
    brightness: float | None = Field(None, ge=-1.0, le=1.0)
    contrast: float | None = Field(None, ge=0.0, le=32.0)
    saturation: float | None = Field(None, ge=0.0, le=32.0)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.awb is not None and self.gains is not None:
            raise ValueError("give either awb (automatic) or gains (manual), not both")
        if all(
            v is None
            for v in (self.awb, self.gains, self.brightness, self.contrast, self.saturation)
        ):
            raise ValueError(
                "nothing to change: give awb, gains, brightness, contrast or saturation"
            )
        return self


class ColourCalibrate(CommandBase):
    """Calibrate colour on the 24-patch card held in view (issue 22): find it, fit colour
    gains and a colour-correction matrix, apply them, measure the result (ΔE2000) and
    keep it for the lighting preset, re-applied whenever that preset is chosen."""

    op: Literal["colour.calibrate"] = "colour.calibrate"
    lighting: Literal[AWB_MODES] | None = Field(  # type: ignore[valid-type]
        None,
        description="The lighting preset (white balance preset) the room is under; "
        "default: the one selected now.",
    )


class Zoom(CommandBase):
    """Digital zoom centred on the view (a sensor-resolution crop)."""

    op: Literal["zoom"] = "zoom"
    level: float = Field(ge=1.0, le=ZOOM_MAX)


class Snapshot(CommandBase):
    """A full-sensor-resolution still taken while streaming; kept and announced."""

    op: Literal["snapshot"] = "snapshot"
    requested_by: str = Field("", max_length=64, pattern=r"^[^\x00-\x1f]*$")
    consultation: str = Field(
        "", max_length=63, pattern=r"^[a-z0-9-]*$", description="Filed under its patient."
    )


class StreamSettings(CommandBase):
    """Change the live stream's resolution, frame rate and bitrate."""

    op: Literal["stream"] = "stream"
    width: int = Field(ge=320, le=3840, multiple_of=2)
    height: int = Field(ge=240, le=2160, multiple_of=2)
    fps: int = Field(ge=1, le=60)
    bitrate_kbps: int = Field(ge=100, le=50_000)


class Privacy(CommandBase):
    """Pause (or resume) the live video and all camera motion."""

    op: Literal["privacy"] = "privacy"
    enabled: bool


class RelevanceRequest(CommandBase):
    """Compute disease relevance for one patient (R7): fetch the course data from the
    server with ``token`` (scoped to that patient, short-lived), run the model, post the
    result back. Acknowledged at once; the result arrives over HTTPS."""

    op: Literal["model.relevance"] = "model.relevance"
    patient: int = Field(ge=1, le=10**12, description="The server's patient id.")
    consultation: str = Field("", max_length=63, pattern=r"^[a-z0-9-]*$")
    token: str = Field(min_length=20, max_length=200, pattern=r"^[A-Za-z0-9_-]+$")
    requested_by: str = Field("", max_length=64, pattern=r"^[^\x00-\x1f]*$")
    synthetic: bool = Field(
        False, description="Let branches trained on synthetic data count (the site's choice)."
    )


class ApplianceUpdate(CommandBase):
    """Install release ``release`` from the server's release store (D5).

    The appliance downloads ``/api/appliances/<device>/releases/<release>`` from its
    configured server (never from an address sent to it), checks the size and sha256
    given here, and hands the wheel to the root updater service, which installs it
    beside the running release, switches, health-checks and rolls back on failure.
    Acknowledged once the download has started; progress is in the state's ``update``.
    """

    op: Literal["appliance.update"] = "appliance.update"
    release: str = Field(max_length=40, pattern=VERSION_PATTERN)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=1, le=MAX_RELEASE_BYTES)
    requested_by: str = Field("", max_length=64, pattern=r"^[^\x00-\x1f]*$")


AnyCommand = (
    PtzRelative
    | PtzAbsolute
    | PtzContinuous
    | PtzStop
    | PtzHome
    | PtzLookAt
    | PtzFrame
    | PresetSave
    | PresetGoto
    | PresetDelete
    | Focus
    | Colour
    | ColourCalibrate
    | Zoom
    | Snapshot
    | StreamSettings
    | ApplianceUpdate
    | Privacy
    | RelevanceRequest
)
Command = Annotated[AnyCommand, Field(discriminator="op")]
_COMMAND_ADAPTER: TypeAdapter[AnyCommand] = TypeAdapter(Command)
MOTION_OPS = frozenset(
    {
        "ptz.relative",
        "ptz.absolute",
        "ptz.continuous",
        "ptz.home",
        "ptz.look_at",
        "ptz.frame",
        "preset.goto",
        "zoom",
    }
)


class CommandRejected(ValueError):
    """A payload that is not a valid command; the message says which field and why."""

    def __init__(self, message: str, command_id: str | None = None) -> None:
        super().__init__(message)
        self.command_id = command_id


_OPS = frozenset(model.model_fields["op"].default for model in AnyCommand.__args__)


def describe_errors(exc: ValidationError) -> str:
    """``field: reason; field: reason`` from a pydantic error (union tags left out)."""
    parts: list[str] = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        if loc and loc[0] in _OPS:
            loc = loc[1:]
        # pydantic's own wording stays English; the field names are the protocol's.
        parts.append(_("{field}: {problem}", field=".".join(loc) or "payload", problem=err["msg"]))
    return TextList(parts)


def _claimed_id(payload: bytes) -> str | None:
    """The ``id`` a rejected payload claims, so that its error ack can carry it."""
    try:
        data = json.loads(payload)
    except (ValueError, RecursionError):
        return None
    value = data.get("id") if isinstance(data, dict) else None
    return value if isinstance(value, str) and len(value) <= 64 else None


def parse_command(payload: bytes) -> AnyCommand:
    """Parse and validate one command payload (JSON)."""
    if len(payload) > MAX_COMMAND_BYTES:
        raise CommandRejected(
            _(
                "payload too large ({size} bytes > {limit})",
                size=len(payload),
                limit=MAX_COMMAND_BYTES,
            )
        )
    try:
        return _COMMAND_ADAPTER.validate_json(payload)
    except ValidationError as exc:
        raise CommandRejected(describe_errors(exc), _claimed_id(payload)) from None


def validate_command(data: object) -> AnyCommand:
    """Validate an already-decoded command (the server's HTTP side)."""
    try:
        return _COMMAND_ADAPTER.validate_python(data)
    except ValidationError as exc:
        raise CommandRejected(describe_errors(exc)) from None


class PtzState(WireModel):
    """Where the pan-tilt head is heading (degrees from centre) and whether it moves."""

    pan: float
    tilt: float
    moving: bool = False


class FocusState(WireModel):
    mode: Literal["auto", "continuous", "manual"]
    lens_position: float
    af_state: Literal["idle", "scanning", "focused", "failed"]


class ColourCalibration(WireModel):
    """The colour calibration in use: for which lighting preset, how good (mean ΔE2000
    over the card's 24 patches after, and before, calibrating) and when (UTC)."""

    lighting: str
    delta_e: float = Field(ge=0.0, le=200.0)
    delta_e_before: float = Field(ge=0.0, le=200.0)
    at: str = ""


class ColourState(WireModel):
    awb: str | None = None
    gains: tuple[float, float] | None = None
    brightness: float
    contrast: float
    saturation: float
    calibration: ColourCalibration | None = None


class StreamState(WireModel):
    width: int
    height: int
    fps: int
    bitrate_kbps: int
    connected: bool


class UplinkFigures(WireModel):
    """The appliance's view of its uplink, in its telemetry (R17)."""

    target_kbps: int = Field(ge=0, le=1_000_000)
    remb_kbps: int | None = Field(None, ge=0, le=10_000_000)
    loss: float = Field(ge=0.0, le=1.0)
    rtt_ms: float | None = Field(None, ge=0.0, le=600_000.0)
    rung: int = Field(ge=0, le=20)
    rungs: int = Field(ge=1, le=20)


class TelemetryFigures(StrictModel):
    """The numbers of an appliance's periodic telemetry that the server's metrics keep
    (O7); other keys are the fleet's and are ignored here."""

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False, frozen=True)

    cpu_temp_c: float | None = Field(None, ge=-60.0, le=200.0)
    load_1m: float | None = Field(None, ge=0.0, le=10_000.0)
    fps: float | None = Field(None, ge=0.0, le=1000.0)
    bitrate_kbps: float | None = Field(None, ge=0.0, le=10_000_000.0)
    dropped_frames: int | None = Field(None, ge=0)
    uptime_s: int | None = Field(None, ge=0)
    buffer_bytes: int | None = Field(None, ge=0)  # the local archive buffer (its "recording")


class UpdateStatus(WireModel):
    """Where the last update the server asked for stands."""

    release: str
    state: Literal["downloading", "waiting", "installing", "updated", "failed", "rolled back"]
    detail: str = ""
    at: str = ""  # UTC, ISO 8601


class ApplianceState(WireModel):
    """Retained state the appliance publishes after every change."""

    ptz: PtzState
    zoom: float = 1.0
    focus: FocusState | None = None
    colour: ColourState | None = None
    stream: StreamState | None = None
    privacy: bool = False
    model_version: str | None = None
    version: str | None = None  # the Clinicam release running
    update: UpdateStatus | None = None


class CommandAck(WireModel):
    """One acknowledgement per command, sent to the device's ack topic."""

    ok: bool
    id: str | None = None
    op: str | None = None
    error: str | None = None
    duplicate: bool = False
    state: ApplianceState | None = None
    result: dict[str, str | int | float | bool | None] | None = None

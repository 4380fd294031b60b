"""Typed appliance configuration (``clinicam-appliance.toml`` + ``CLINICAM_APPLIANCE__*``)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal, Self

from pydantic import Field, SecretStr, field_validator, model_validator

from clinicam.configfile import StrictModel
from clinicam.const import DEVICE_ID_PATTERN
from clinicam.i18n import _
from clinicam.ice import IceConfig
from clinicam.mqtt_config import MqttConfig
from firmware.hardware.colour_sim import LIGHTING_CASTS
from firmware.hardware.gpio import GpioConfig


class AxisCalibration(StrictModel):
    """One servo axis of one rig: pulse range, centre, direction and soft limits."""

    channel: int = Field(0, ge=0, le=15, description="PCA9685 output channel.")
    min_pulse_us: int = Field(750, ge=400, le=1500, description="Pulse for servo angle 0.")
    max_pulse_us: int = Field(2250, ge=1500, le=2800, description="Pulse for the full range.")
    actuation_range_deg: float = Field(180.0, ge=90.0, le=300.0, description="Servo travel.")
    centre_deg: float = Field(90.0, description="Servo angle at which the head looks straight.")
    invert: bool = Field(False, description="Servo mounted so that + turns the head the other way.")
    min_deg: float = Field(-80.0, le=0.0, description="Soft limit, degrees from centre.")
    max_deg: float = Field(80.0, ge=0.0, description="Soft limit, degrees from centre.")

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.min_pulse_us >= self.max_pulse_us:
            raise ValueError(_("min_pulse_us must be below max_pulse_us"))
        for limit in (self.min_deg, self.max_deg):
            servo = self.centre_deg + (-limit if self.invert else limit)
            if not 0.0 <= servo <= self.actuation_range_deg:
                raise ValueError(
                    _(
                        "soft limit {limit}° puts the servo at {servo}°, outside 0–{range}°",
                        limit=limit,
                        servo=servo,
                        range=self.actuation_range_deg,
                    )
                )
        return self


class PanTiltConfig(StrictModel):
    """The pan-tilt head."""

    i2c_address: int = Field(0x40, ge=0x03, le=0x77, description="PCA9685 I2C address.")
    pan: AxisCalibration = Field(
        default_factory=lambda: AxisCalibration(channel=0, min_deg=-85.0, max_deg=85.0)
    )
    tilt: AxisCalibration = Field(
        default_factory=lambda: AxisCalibration(channel=1, min_deg=-45.0, max_deg=45.0)
    )

    @model_validator(mode="after")
    def _distinct_channels(self) -> Self:
        if self.pan.channel == self.tilt.channel:
            raise ValueError(_("pan.channel and tilt.channel must differ"))
        return self


class CameraConfig(StrictModel):
    """The live stream."""

    width: int = Field(1280, ge=160, le=3840, multiple_of=2, description="Stream width.")
    height: int = Field(720, ge=120, le=2160, multiple_of=2, description="Stream height.")
    fps: int = Field(15, ge=1, le=60, description="Frames per second.")
    bitrate_kbps: int = Field(2500, ge=100, le=50_000, description="H.264 target bitrate.")
    keyframe_interval_s: float = Field(
        1.0, gt=0.0, le=10.0, description="Seconds between IDR frames (lost packets recover)."
    )
    adaptive: bool = Field(
        True,
        description="Follow the link (R17): lower the bitrate, then frame rate and size, when "
        "the server's receiver reports a slower or lossy link; never above the settings here.",
    )
    frame_trace: bool = Field(
        True,
        description="Stamp capture/encode/send times into each frame (SEI, ≈60 bytes) so the "
        "server can show where live latency goes.",
    )
    hfov_deg: float = Field(66.0, gt=10.0, lt=180.0, description="Horizontal field of view.")
    vfov_deg: float = Field(41.0, gt=5.0, lt=180.0, description="Vertical field of view.")
    sensor_width: int = Field(
        4608,
        ge=320,
        le=16384,
        multiple_of=2,
        description="Sensor width in pixels (ScalerCrop coordinates, stills); CM3: 4608.",
    )
    sensor_height: int = Field(
        2592,
        ge=240,
        le=16384,
        multiple_of=2,
        description="Sensor height in pixels (ScalerCrop coordinates, stills); CM3: 2592.",
    )


class SimConfig(StrictModel):
    """The simulated hardware used when ``backend = "sim"``."""

    register_file: Path | None = Field(
        None, description="Mirror the simulated PCA9685's 256 registers into this file."
    )
    servo_seconds_per_60deg: float = Field(0.1, ge=0.0, le=2.0, description="Servo speed.")
    scene_seed: int = Field(7, description="Seed of the generated scene.")
    scene_px_per_deg: float = Field(20.0, ge=4.0, le=80.0, description="Scene detail.")
    stamp_time: bool = Field(
        False, description="Burn a capture-time barcode into frames (latency benchmarks)."
    )
    subject_distance_m: float = Field(
        0.5,
        ge=0.02,
        le=1000.0,
        description="Distance to the simulated patient in metres; in focus at 1/d dioptres.",
    )
    lighting: str = Field(
        "daylight",
        pattern=r"^[a-z0-9-]{1,20}$",
        description="The simulated room's light: a name in lighting_casts (daylight, cloudy, "
        "indoor, fluorescent, tungsten, incandescent by default); daylight is neutral.",
    )
    lighting_casts: dict[str, tuple[float, ...]] = Field(
        default_factory=dict,
        description="Extra or changed lights: name → 9 numbers, the row-major 3×3 matrix the "
        "light applies to the daylit scene in linear RGB.",
    )
    colour_card: tuple[float, float, float] | None = Field(
        None,
        description="Hold the 24-patch colour card up at start: (x, y, width) as fractions of "
        "the home view (its centre and its width).",
    )

    @model_validator(mode="after")
    def _known_lighting(self) -> Self:
        for name, cast in self.lighting_casts.items():
            if len(cast) != 9 or not all(math.isfinite(v) and abs(v) <= 16 for v in cast):
                raise ValueError(f"lighting_casts.{name}: need 9 finite numbers, each -16..16")
        if self.lighting not in self.casts():
            raise ValueError(f"lighting: {self.lighting!r} is not in lighting_casts")
        return self

    def casts(self) -> dict[str, tuple[float, ...]]:
        """The built-in lights with the configured ones over them."""
        return LIGHTING_CASTS | self.lighting_casts


class ServerLinkConfig(StrictModel):
    """How the appliance reaches the Clinicam server."""

    url: str = Field("http://127.0.0.1:8080", description="Server base URL.")
    token: SecretStr = Field(SecretStr(""), description="This device's API token.")
    reconnect_max_s: float = Field(10.0, ge=0.5, le=300.0, description="Longest retry wait.")

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(_("must start with http:// or https://"))
        return value.rstrip("/")


class RecorderConfig(StrictModel):
    """The local recording kept through a link outage and back-filled to the archive (R17)."""

    enabled: bool = Field(True, description="Record the encoded stream locally.")
    max_mb: int = Field(256, ge=8, le=1_000_000, description="Oldest footage goes beyond this.")
    max_age_min: int = Field(120, ge=1, le=7 * 24 * 60, description="…or when older than this.")
    segment_s: float = Field(10.0, ge=2.0, le=120.0, description="Length of one segment file.")
    backfill_check_s: float = Field(
        15.0, ge=1.0, le=3600.0, description="How often to compare with the server's archive."
    )


class MicrophoneConfig(StrictModel):
    """The patient's microphone (muted whenever privacy mode is on)."""

    enabled: bool = Field(True, description="Send the patient's sound to the experts.")
    device: str = Field("default", max_length=100, description="ALSA capture device on a Pi.")


class ModelRuntimeConfig(StrictModel):
    """The relevance model the appliance runs (R7, D3)."""

    enabled: bool = Field(True, description="Answer model.relevance commands.")
    tflite: Path | None = Field(
        None, description="int8 TFLite model; default: the shipped demonstration model."
    )
    card: Path | None = Field(None, description="Its model card (default: beside the file).")
    threads: int = Field(1, ge=1, le=4, description="LiteRT threads (1 keeps video smooth).")
    follow_server: bool = Field(
        True, description="Download the server's model when it promotes a new version."
    )


class MotionConfig(StrictModel):
    """How the head moves: slew-rate limit, dead-man, idle release."""

    max_speed_deg_s: float = Field(
        90.0, gt=0.0, le=600.0, description="Slew-rate limit for every move (degrees/second)."
    )
    update_hz: float = Field(50.0, ge=5.0, le=200.0, description="Servo update rate while moving.")
    idle_release_s: float = Field(
        2.0, ge=0.0, le=600.0, description="Release servo power after this idle time (0: never)."
    )
    refocus_after_move_deg: float = Field(
        10.0, ge=0.0, le=360.0, description="One-shot autofocus after a larger move (0: never)."
    )


class ApplianceConfig(StrictModel):
    """Everything the appliance needs to run."""

    device_id: str = Field("appliance-1", pattern=DEVICE_ID_PATTERN, description="Device id.")
    backend: Literal["sim", "pi"] = Field("sim", description="'pi' on a Raspberry Pi.")
    language: Literal["zh-CN", "en"] = Field(
        "zh-CN",
        description="The clinic's language (zh-CN or en): what the appliance's own picture "
        "says, e.g. the privacy card sent while the camera is paused.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="DEBUG, INFO, WARNING or ERROR."
    )
    server: ServerLinkConfig = Field(default_factory=ServerLinkConfig)
    mqtt: MqttConfig = Field(default_factory=MqttConfig)
    ice: IceConfig = Field(default_factory=IceConfig)
    pantilt: PanTiltConfig = Field(default_factory=PanTiltConfig)
    camera: CameraConfig = Field(default_factory=CameraConfig)
    sim: SimConfig = Field(default_factory=SimConfig)
    motion: MotionConfig = Field(default_factory=MotionConfig)
    model: ModelRuntimeConfig = Field(default_factory=ModelRuntimeConfig)
    microphone: MicrophoneConfig = Field(default_factory=MicrophoneConfig)
    recorder: RecorderConfig = Field(default_factory=RecorderConfig)
    gpio: GpioConfig = Field(default_factory=GpioConfig)
    state_dir: Path = Field(
        default_factory=lambda: Path.home() / ".local" / "state" / "clinicam-appliance",
        description="Presets, snapshots and other state (kept across restarts).",
    )
    telemetry_interval_s: float = Field(
        10.0, ge=1.0, le=3600.0, description="Seconds between telemetry messages."
    )

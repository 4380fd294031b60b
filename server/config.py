"""Typed server configuration (``clinicam-server.toml`` + ``CLINICAM_SERVER__*``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

from pydantic import Field, field_validator, model_validator

from clinicam.configfile import StrictModel
from clinicam.const import DEVICE_ID_PATTERN, USERNAME_PATTERN
from clinicam.ice import IceConfig
from clinicam.mqtt_config import MqttConfig
from server.blob_config import BlobsConfig
from server.cluster_config import ClusterConfig


def _argon2id(value: str) -> str:
    if not value.startswith("$argon2id$"):
        raise ValueError("must be an argon2id hash ('clinicam hash-password' makes one)")
    return value


def _device_token_hash(value: str) -> str:
    if value.startswith("$argon2id$"):
        return value  # from an older release: still accepted, slow to check (see server)
    prefix, _, digest = value.partition("$")
    if prefix != "hmac-sha256" or len(digest) != 64 or digest.strip("0123456789abcdef"):
        raise ValueError(
            "must be a device token hash ('clinicam device-token' makes a token and its hash)"
        )
    return value


class HttpConfig(StrictModel):
    """The web server."""

    host: str = Field("127.0.0.1", description="Address to listen on.")
    port: int = Field(8080, ge=1, le=65535, description="Port to listen on.")
    cookie_secure: bool = Field(
        True, description="Mark the session cookie Secure (browsers accept it on localhost)."
    )
    session_idle_minutes: int = Field(30, ge=1, le=24 * 60, description="Idle logout.")
    max_failed_logins: int = Field(
        5,
        ge=1,
        le=100,
        description="Failed sign-ins per (account, address) before throttling; an address "
        "may fail 10×, an account 4× as often in all before it is throttled.",
    )


Role = Literal["expert", "chair", "admin", "technician", "clinic"]
Operation = Literal["view", "edit"]


class ExpertAccount(StrictModel):
    """Someone who can log in: an expert, a chair, an admin, a technician or clinic staff."""

    username: str = Field(pattern=USERNAME_PATTERN)
    display_name: str = Field(min_length=1, max_length=80)
    password_hash: str
    role: Role = Field(
        "expert",
        description="expert (records per grant), chair (can chair consultations), "
        "admin (grants, revocations, break-glass reports), technician (devices only), "
        "clinic (clinic staff: runs the clinic stations of their clinic's appliances).",
    )
    clinic: str | None = Field(
        None,
        min_length=1,
        max_length=80,
        description="For clinic staff: their clinic (a [[devices]] table's clinic).",
    )

    _hash = field_validator("password_hash")(_argon2id)

    @model_validator(mode="after")
    def _clinic_staff_have_a_clinic(self) -> Self:
        if (self.role == "clinic") != (self.clinic is not None):
            raise ValueError("clinic staff (role 'clinic') and only they name their 'clinic'")
        return self


class DeviceAccount(StrictModel):
    """An appliance allowed to stream to this server."""

    device_id: str = Field(pattern=DEVICE_ID_PATTERN)
    clinic: str = Field(min_length=1, max_length=80, description="Shown as 'Patient — <clinic>'.")
    token_hash: str = Field(
        description="hmac-sha256$… from 'clinicam device-token' (argon2id hashes from older "
        "releases still work but are slow to check)."
    )

    _hash = field_validator("token_hash")(_device_token_hash)


class ConsultationConfig(StrictModel):
    """A consultation binds a patient, an appliance, a chair and invited experts."""

    id: str = Field(pattern=DEVICE_ID_PATTERN)
    title: str = Field("Consultation", max_length=120)
    patient_id: str = Field(min_length=1, max_length=64)
    appliance: str = Field(pattern=DEVICE_ID_PATTERN)
    chair: str = Field(pattern=USERNAME_PATTERN)
    experts: list[str] = Field(min_length=1)

    @model_validator(mode="after")
    def _chair_invited(self) -> Self:
        if self.chair not in self.experts:
            raise ValueError(f"chair '{self.chair}' must be one of the invited experts")
        return self


class PatientConfig(StrictModel):
    """A patient known before any record exists (records can also come from imports)."""

    id: str = Field(min_length=1, max_length=64, description="The clinic's patient identifier.")
    name: str = Field(min_length=1, max_length=200)
    group: str | None = Field(None, max_length=64, description="Patient group for access rules.")


class AccessRule(StrictModel):
    """A preset permission rule (R14): who may get which operations on which patients."""

    user: str | None = Field(None, pattern=USERNAME_PATTERN, description="One user, or…")
    role: Role | None = Field(None, description="…everyone with this role.")
    patients: list[str] = Field(default_factory=list, description="Patient identifiers, or…")
    groups: list[str] = Field(default_factory=list, description="…patient groups, or…")
    all_patients: bool = Field(False, description="…every patient.")
    operations: list[Operation] = Field(min_length=1, description="view and/or edit.")
    max_minutes: int = Field(240, ge=1, le=7 * 24 * 60, description="Longest grant it gives.")

    @model_validator(mode="after")
    def _one_subject_one_scope(self) -> Self:
        if (self.user is None) == (self.role is None):
            raise ValueError("give exactly one of 'user' or 'role'")
        scopes = sum((bool(self.patients), bool(self.groups), self.all_patients))
        if scopes != 1:
            raise ValueError("give exactly one of 'patients', 'groups' or 'all_patients = true'")
        return self


class RecordsConfig(StrictModel):
    """Patient records: uploads, grants and retention."""

    max_upload_mb: int = Field(200, ge=1, le=10_000, description="Largest single upload.")
    max_image_megapixels: int = Field(
        50, ge=1, le=1000, description="Larger images are refused (decompression bombs)."
    )
    default_grant_minutes: int = Field(
        120, ge=1, le=7 * 24 * 60, description="Grant length when the request names none."
    )
    break_glass_minutes: int = Field(
        60, ge=5, le=24 * 60, description="How long emergency (break-glass) access lasts."
    )
    orphan_grace_s: float = Field(
        3600.0, ge=60.0, description="Unreferenced blobs older than this are collected."
    )


class ArchiveConfig(StrictModel):
    """The archive of the appliances' live video (R6)."""

    enabled: bool = Field(True, description="Store the appliances' video as segments.")
    segment_seconds: float = Field(10.0, ge=2.0, le=300.0, description="Segment length.")
    retention_days: int = Field(
        90, ge=0, le=36500, description="Delete segments older than this (0: keep forever)."
    )
    max_range_minutes: int = Field(
        120, ge=1, le=24 * 60, description="Longest time range one request may ask for."
    )


class RecordingConfig(StrictModel):
    """The whole call recorded (O4), for patients who consented: one neutral layout
    (the patient's live view large, the experts' webcams, names) and every voice."""

    enabled: bool = Field(True, description="Record consultations whose patient consented.")
    width: int = Field(640, ge=160, le=1920, multiple_of=2, description="Recorded width.")
    height: int = Field(360, ge=90, le=1080, multiple_of=2, description="Recorded height.")
    fps: int = Field(10, ge=1, le=30, description="Recorded frames per second.")
    bitrate_kbps: int = Field(400, ge=50, le=8000, description="Recorded video bitrate.")
    segment_seconds: float = Field(
        10.0, ge=2.0, le=300.0, description="Segment length: a crash loses at most one."
    )
    retention_days: int = Field(
        1095, ge=0, le=36500, description="Delete recordings older than this (0: keep forever)."
    )


class ModelsConfig(StrictModel):
    """The disease-relevance model (R7–R9)."""

    tflite: Path | None = Field(
        None, description="Model file in use; default: the shipped demonstration model."
    )
    card: Path | None = Field(None, description="Its model card (default: beside the file).")
    threads: int = Field(1, ge=1, le=16, description="LiteRT threads for the server runner.")
    appliance_timeout_s: float = Field(
        60.0, gt=0, le=3600, description="Run on the server if the appliance has not answered."
    )
    retrain_after: int = Field(
        50, ge=1, le=1_000_000, description="Confirmed, consented cases that start a retrain."
    )
    retrain: bool = Field(
        True, description="Retrain in the background (needs the 'train' extra on the server)."
    )
    retrain_epochs: int | None = Field(
        None, ge=1, le=1000, description="Epochs per branch (default: the model's own)."
    )
    retrain_base_per_class: int | None = Field(
        None, ge=4, le=10_000, description="Synthetic base records per label (default: 150)."
    )
    demonstration_branches: bool = Field(
        False,
        description="Let branches trained on synthetic data count (capped beside a real-data "
        "branch), on the server and on the appliances; for demonstrations only. Off: they "
        "carry no weight, their items are listed as skipped and the chart says so.",
    )


class LiveViewConfig(StrictModel):
    """The video each expert receives."""

    width: int = Field(1280, ge=160, le=3840, multiple_of=2, description="Output width.")
    height: int = Field(720, ge=120, le=2160, multiple_of=2, description="Output height.")
    fps: int = Field(
        15,
        ge=1,
        le=60,
        description="Output frame rate (a live frame is composed on arrival, at most this often).",
    )
    bitrate_kbps: int = Field(2500, ge=200, le=20_000, description="Composite H.264 bitrate.")
    stall_after_s: float = Field(2.0, gt=0.0, le=30.0, description="No frame this long = stalled.")
    low_latency: bool = Field(
        True,
        description="Ask browsers to show each composite frame as soon as it is decoded "
        "(RTP playout delay 0) instead of buffering for smoothness; turn off on links "
        "with heavy jitter to trade latency for smoother motion.",
    )


class WebcamConfig(StrictModel):
    """What the experts' browsers are asked to send (they may send less on weak links)."""

    width: int = Field(1920, ge=160, le=3840, description="Requested webcam width (R1: 1080p).")
    height: int = Field(1080, ge=120, le=2160, description="Requested webcam height.")
    fps: int = Field(30, ge=1, le=60, description="Requested webcam frame rate.")


class BrokerAdminConfig(StrictModel):
    """``[broker_admin]``: the server keeps mosquitto's password and ACL files (issue 19).

    Appliances enrolled from /admin get their broker account here; the server rewrites
    both files (atomically) after each enrolment, revocation or rotation and has mosquitto
    reload them, which keeps the other clients connected. Accounts the server did not
    make (its own, devices from the configuration file) are kept as the file has them.
    """

    password_file: Path = Field(description="mosquitto's password_file.")
    acl_file: Path = Field(description="mosquitto's acl_file.")
    pid_file: Path | None = Field(
        None, description="mosquitto's pid file: reload by SIGHUP to that process, or…"
    )
    reload_command: list[str] | None = Field(
        None,
        min_length=1,
        description="…a command that reloads it, e.g. ['systemctl', 'reload', 'mosquitto'].",
    )
    server_users: list[str] = Field(
        default_factory=list,
        description="Broker users with the whole clinicam/ tree (default: [mqtt] username).",
    )

    @model_validator(mode="after")
    def _one_way_to_reload(self) -> Self:
        if (self.pid_file is None) == (self.reload_command is None):
            raise ValueError("give exactly one of 'pid_file' or 'reload_command'")
        return self


class EnrollmentConfig(StrictModel):
    """``[enrollment]``: what an appliance enrolled from /admin is told to reach."""

    server_url: str | None = Field(
        None,
        pattern=r"^https?://[^/\s]+/?$",
        description="This server as appliances reach it (default: the address the "
        "enrolling admin's browser used).",
    )
    broker_host: str | None = Field(
        None,
        min_length=1,
        description="The broker as appliances reach it (default: [mqtt] host, or the "
        "server address's host when that is a loopback address).",
    )
    broker_port: int | None = Field(
        None, ge=1, le=65535, description="Its port (default: [mqtt] port)."
    )


class SmtpConfig(StrictModel):
    """The mail server invitations go out through (none: in-app notices and .ics only)."""

    host: str = Field(min_length=1, max_length=253, description="SMTP server.")
    port: int = Field(587, ge=1, le=65535, description="SMTP port (587: submission).")
    starttls: bool = Field(True, description="Upgrade the connection with STARTTLS.")
    username: str | None = Field(None, max_length=254, description="Sign-in, if required.")
    password: str | None = Field(None, max_length=1024, description="Its password.")
    from_address: str = Field(
        min_length=3, max_length=254, description="The invitations' From address."
    )
    site_url: str | None = Field(
        None,
        max_length=300,
        description="The site's address as people reach it (e.g. https://hospital.example); "
        "join links in mail start with it.",
    )
    timeout_s: float = Field(20.0, gt=0, le=300, description="Give up on the server after this.")


class MetricsConfig(StrictModel):
    """Prometheus metrics at ``/metrics`` (O7): an admin's session may read them, and so
    may a scraper sending ``Authorization: Bearer <token>`` for the token set here."""

    enabled: bool = Field(True, description="Serve /metrics.")
    token_sha256: str | None = Field(
        None,
        pattern=r"^[0-9a-f]{64}$",
        description="SHA-256 (hex) of the scraper's bearer token, as sha256sum prints it "
        "for a file holding just the token; none: admins' sessions only.",
    )


class AccountsConfig(StrictModel):
    """Accounts kept in the database: password policy, set-password links, two-factor."""

    min_password_length: int = Field(
        10, ge=8, le=128, description="Shortest password a person may choose."
    )
    set_password_link_hours: int = Field(
        72,
        ge=1,
        le=30 * 24,
        description="How long a new account's (or a reset's) one-time set-password link works.",
    )
    totp_required_roles: list[Role] = Field(
        default_factory=list,
        description='Roles that must sign in with a TOTP code too, e.g. ["admin"]; a person '
        "of such a role without one sets it up at their next sign-in, before anything else.",
    )
    totp_issuer: str = Field(
        "Clinicam",
        min_length=1,
        max_length=40,
        description="The name authenticator apps show beside the account.",
    )


class ServerConfig(StrictModel):
    """Everything the server needs to run."""

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="DEBUG, INFO, WARNING or ERROR."
    )
    state_dir: Path = Field(
        default_factory=lambda: Path.home() / ".local" / "state" / "clinicam-server",
        description="Sessions and other state kept across restarts.",
    )
    database_url: str | None = Field(
        None,
        description="SQLAlchemy URL, e.g. postgresql+psycopg://user@host/clinicam; "
        "default: SQLite (WAL) in state_dir.",
    )
    language: Literal["zh-CN", "en"] = Field(
        "en",
        description="The site's language (zh-CN or en): what a page speaks when neither the "
        "person's own choice nor their browser's languages name one we offer.",
    )
    http: HttpConfig = Field(default_factory=HttpConfig)
    mqtt: MqttConfig = Field(default_factory=MqttConfig)
    ice: IceConfig = Field(default_factory=IceConfig)
    live: LiveViewConfig = Field(default_factory=LiveViewConfig)
    webcam: WebcamConfig = Field(default_factory=WebcamConfig)
    experts: list[ExpertAccount] = Field(
        default_factory=list,
        description="[[experts]] tables: username, display_name, password_hash (argon2id).",
    )
    devices: list[DeviceAccount] = Field(
        default_factory=list,
        description="[[devices]] tables: device_id, clinic, token_hash "
        "('clinicam device-token' makes one).",
    )
    watermark: bool = Field(
        False,
        description="Burn each viewer's name and the time into their composite and into "
        "archive playback (R15); costs one encode per viewer instead of one per layout.",
    )
    smtp: SmtpConfig | None = Field(
        None, description="[smtp]: send invitations by e-mail (default: none, in-app only)."
    )
    records: RecordsConfig = Field(default_factory=RecordsConfig)
    blobs: BlobsConfig = Field(default_factory=BlobsConfig)
    broker_admin: BrokerAdminConfig | None = Field(
        None, description="Keep mosquitto's password and ACL files (enrolment from /admin)."
    )
    enrollment: EnrollmentConfig = Field(default_factory=EnrollmentConfig)
    accounts: AccountsConfig = Field(default_factory=AccountsConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    cluster: ClusterConfig | None = Field(
        None, description="[cluster]: media workers pinned by leases in Redis (none: one process)."
    )
    archive: ArchiveConfig = Field(default_factory=ArchiveConfig)
    recording: RecordingConfig = Field(default_factory=RecordingConfig)
    models: ModelsConfig = Field(default_factory=ModelsConfig)
    patients: list[PatientConfig] = Field(
        default_factory=list, description="[[patients]] tables: id, name, group."
    )
    access_rules: list[AccessRule] = Field(
        default_factory=list,
        description="[[access_rules]] tables: user or role; patients, groups or all_patients; "
        "operations; max_minutes.",
    )
    consultations: list[ConsultationConfig] = Field(
        default_factory=list,
        description="[[consultations]] tables: id, title, patient_id, appliance, chair, experts.",
    )

    @model_validator(mode="after")
    def _references(self) -> Self:
        users = [e.username for e in self.experts]
        if len(set(users)) != len(users):
            raise ValueError("expert usernames must be unique")
        devices = {d.device_id for d in self.devices}
        for c in self.consultations:
            if c.appliance not in devices:
                raise ValueError(f"consultation '{c.id}': unknown appliance '{c.appliance}'")
            unknown = sorted(set(c.experts) - set(users))
            if unknown:
                raise ValueError(f"consultation '{c.id}': unknown experts {unknown}")
        clinics = {d.clinic for d in self.devices}
        for account in self.experts:
            if account.clinic is not None and account.clinic not in clinics:
                raise ValueError(
                    f"user '{account.username}': no appliance is at clinic '{account.clinic}'"
                )
        staff = sorted({u for c in self.consultations for u in c.experts} & self._clinic_staff())
        if staff:
            raise ValueError(
                f"clinic staff join through the clinic station, not as experts: {staff}"
            )
        for number, rule in enumerate(self.access_rules, start=1):
            if rule.user is not None and rule.user not in users:
                raise ValueError(f"access rule {number}: unknown user '{rule.user}'")
        ids = [p.id for p in self.patients]
        if len(set(ids)) != len(ids):
            raise ValueError("patient identifiers must be unique")
        return self

    def _clinic_staff(self) -> set[str]:
        return {e.username for e in self.experts if e.role == "clinic"}

    def stations_of(self, username: str) -> list[DeviceAccount]:
        """The appliances whose clinic station ``username`` (clinic staff) may run."""
        account = self.expert(username)
        if account is None or account.clinic is None:
            return []
        return [d for d in self.devices if d.clinic == account.clinic]

    def expert(self, username: str) -> ExpertAccount | None:
        return next((e for e in self.experts if e.username == username), None)

    def consultation(self, cid: str) -> ConsultationConfig | None:
        return next((c for c in self.consultations if c.id == cid), None)

    def device(self, device_id: str) -> DeviceAccount | None:
        return next((d for d in self.devices if d.device_id == device_id), None)

"""Constants shared by the server and the appliance."""

from __future__ import annotations

from typing import Final

TOPIC_ROOT: Final = "clinicam"
TOPIC_CMD: Final = "cmd"
TOPIC_ACK: Final = "ack"
TOPIC_STATE: Final = "state"
TOPIC_AVAILABILITY: Final = "availability"
TOPIC_CAPABILITIES: Final = "capabilities"
TOPIC_TELEMETRY: Final = "telemetry"
TOPIC_EVENT: Final = "event"

AVAILABILITY_ONLINE: Final = "online"
AVAILABILITY_OFFLINE: Final = "offline"

DEFAULT_COMMAND_EXPIRY_S: Final = 10
DEFAULT_ACK_TIMEOUT_S: Final = 5.0
DEVICE_SESSION_EXPIRY_S: Final = 300

ENV_SERVER_PREFIX: Final = "CLINICAM_SERVER"
ENV_APPLIANCE_PREFIX: Final = "CLINICAM_APPLIANCE"

DEVICE_ID_PATTERN: Final = r"^[a-z0-9][a-z0-9-]{0,62}$"
USERNAME_PATTERN: Final = r"^[a-z0-9][a-z0-9._-]{0,62}$"


def device_topic(device_id: str, leaf: str) -> str:
    """Topic ``clinicam/<device>/<leaf>``."""
    return f"{TOPIC_ROOT}/{device_id}/{leaf}"

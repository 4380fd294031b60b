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

# The server waits this long for an ack, and a command lives exactly as long: its
# deadline (``not_after``) and its MQTT message expiry end with the wait.
DEFAULT_ACK_TIMEOUT_S: Final = 5.0
# The appliance refuses a command whose deadline is further ahead than this (it would
# have to remember the command's id that long to refuse a replay).
MAX_COMMAND_LIFETIME_S: Final = 30.0
DEVICE_SESSION_EXPIRY_S: Final = 300

ENV_SERVER_PREFIX: Final = "CLINICAM_SERVER"
ENV_APPLIANCE_PREFIX: Final = "CLINICAM_APPLIANCE"

DEVICE_ID_PATTERN: Final = r"^[a-z0-9][a-z0-9-]{0,62}$"
USERNAME_PATTERN: Final = r"^[a-z0-9][a-z0-9._-]{0,62}$"


def device_topic(device_id: str, leaf: str) -> str:
    """Topic ``clinicam/<device>/<leaf>``."""
    return f"{TOPIC_ROOT}/{device_id}/{leaf}"

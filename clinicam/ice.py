"""Keep WebRTC traffic on loopback when a deployment (the demo, CI) asks for it.

aioice never offers 127.0.0.1 as a host candidate, so a loopback-only stack would
have nothing to connect over. When ``loopback_only`` is configured we make aioice
offer exactly 127.0.0.1, and we drop non-loopback candidates from remote SDP.
"""

from __future__ import annotations

import ipaddress
import logging

from aiortc import RTCConfiguration, RTCIceServer
from pydantic import Field, field_validator

from clinicam.aiortc_compat import gather_host_addresses
from clinicam.configfile import StrictModel
from clinicam.i18n import _

_LOGGER = logging.getLogger(__name__)


def _loopback_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    return ["127.0.0.1"] if use_ipv4 else []


def restrict_ice_to_loopback() -> None:
    """Make every aiortc peer connection in this process gather only 127.0.0.1."""
    gather_host_addresses(_loopback_host_addresses)
    _LOGGER.info("ICE restricted to loopback (127.0.0.1)")


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # mDNS (.local) names and anything else


def keep_loopback_candidates(sdp: str) -> str:
    """Remove ``a=candidate`` lines whose address is not loopback."""
    kept = []
    for line in sdp.splitlines():
        if line.startswith("a=candidate:"):
            parts = line.split()
            if len(parts) < 6 or not _is_loopback(parts[4]):
                continue
        kept.append(line)
    return "\r\n".join(kept) + "\r\n"


class IceConfig(StrictModel):
    """Where WebRTC may find a path; defaults send nothing to third-party servers."""

    loopback_only: bool = Field(
        False, description="Offer and accept only 127.0.0.1 candidates (demo, CI)."
    )
    servers: list[str] = Field(
        default_factory=list,
        description="STUN/TURN URLs, e.g. 'stun:stun.example.org:3478'. Empty: host only.",
    )

    @field_validator("servers")
    @classmethod
    def _check_urls(cls, value: list[str]) -> list[str]:
        for url in value:
            if not url.startswith(("stun:", "stuns:", "turn:", "turns:")):
                raise ValueError(_("'{url}' is not a stun:/turn: URL", url=url))
        return value

    def rtc_configuration(self) -> RTCConfiguration:
        """aiortc configuration; an empty server list stops aiortc's default public STUN."""
        return RTCConfiguration(iceServers=[RTCIceServer(url) for url in self.servers])

"""Wi-Fi networks as NetworkManager keyfiles (what Raspberry Pi OS Bookworm uses).

One file per network, ``clinicam-<ssid-slug>.nmconnection`` in
``/etc/NetworkManager/system-connections`` (NetworkManager ignores keyfiles that are
not owned by root with mode 0600). The connection's UUID is derived from the SSID, so
provisioning the same network again produces the same file.

Values are written with GKeyFile's escapes. An SSID that is not plain printable text
(or that looks like a list of numbers) is written as NetworkManager's byte list,
``ssid=67;108;105;``, which keyfile readers accept for any SSID.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from pathlib import PurePosixPath

from firmware.provisioning.schema import WifiNetwork

SYSTEM_CONNECTIONS = PurePosixPath("/etc/NetworkManager/system-connections")
FILE_PREFIX = "clinicam-"
FILE_SUFFIX = ".nmconnection"
UUID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:clinicam:provisioning:wifi")
_SAFE_SSID = re.compile(r"^[!-~](?:[ -~]*[!-~])?$")  # printable, no edge spaces


def connection_uuid(ssid: str) -> str:
    """A UUID that is always the same for the same SSID."""
    return str(uuid.uuid5(UUID_NAMESPACE, ssid))


def slug(ssid: str) -> str:
    """Lower-case letters, digits and '-' from the SSID (may be empty)."""
    return re.sub(r"[^a-z0-9]+", "-", ssid.lower()).strip("-")[:40]


def file_names(networks: Iterable[WifiNetwork]) -> list[str]:
    """``clinicam-<slug>.nmconnection`` per network; a clash or empty slug adds the UUID."""
    nets = list(networks)
    slugs = [slug(net.ssid) for net in nets]
    names = []
    for net, base in zip(nets, slugs, strict=True):
        if not base or slugs.count(base) > 1:
            base = f"{base}-{connection_uuid(net.ssid)[:8]}".lstrip("-")
        names.append(f"{FILE_PREFIX}{base}{FILE_SUFFIX}")
    return names


def _escape(value: str) -> str:
    """GKeyFile string escapes: backslash, control characters and a leading space."""
    out = value.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")
    return "\\s" + out[1:] if out.startswith(" ") else out


def ssid_value(ssid: str) -> str:
    """The ``ssid=`` value: the text when it is safe, else NetworkManager's byte list."""
    if _SAFE_SSID.match(ssid) and ";" not in ssid and "\\" not in ssid and not ssid.isdigit():
        return ssid
    return "".join(f"{byte};" for byte in ssid.encode())


def render(network: WifiNetwork, connection_id: str) -> str:
    """The keyfile text for one network."""
    lines = [
        "[connection]",
        f"id={_escape(connection_id)}",
        f"uuid={connection_uuid(network.ssid)}",
        "type=wifi",
        "autoconnect=true",
        f"autoconnect-priority={network.priority}",
        "",
        "[wifi]",
        "mode=infrastructure",
        f"ssid={ssid_value(network.ssid)}",
        f"hidden={'true' if network.hidden else 'false'}",
        "",
    ]
    if network.psk is not None:
        lines += [
            "[wifi-security]",
            "key-mgmt=wpa-psk",
            f"psk={_escape(network.psk.get_secret_value())}",
            "",
        ]
    lines += ["[ipv4]", "method=auto", "", "[ipv6]", "addr-gen-mode=default", "method=auto", ""]
    return "\n".join(lines)

"""Device tokens that are cheap to check: ``<device-id>.<random secret>``.

The server stores ``hmac-sha256$<hex>``: HMAC-SHA256 of the whole token under a server
key (``device-token.key`` in the server's state folder, 0600, made on first use). A
token is checked with one HMAC and ``hmac.compare_digest``: a wrong token costs
microseconds, not an argon2 run on the event loop. The secret is 256 random bits, so
no slow hash is needed against guessing; the key means a leaked configuration file
alone does not even allow an offline check.

Token hashes from older releases (argon2id) still work: they are checked in the
bounded slow-check pool, throttled per (device, address) and per address, and a token
once verified is remembered by its SHA-256 so the appliance's next requests are
cheap. The server warns at start-up about each such device.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from clinicam.files import write_atomically
from clinicam.i18n import _
from server.auth import LoginThrottle
from server.config import DeviceAccount, ServerConfig
from server.roster import Roster
from server.slow_checks import SlowChecks

_LOGGER = logging.getLogger(__name__)

KEY_FILE = "device-token.key"
HASH_PREFIX = "hmac-sha256$"
LEGACY_PREFIX = "$argon2id$"
KEY_BYTES = 32


class DeviceRefused(Exception):
    """Unknown device or wrong token."""


class DeviceKeyMissing(ValueError):
    """Devices have keyed token hashes but the server key is not there."""


@dataclass(frozen=True)
class IssuedToken:
    device_id: str
    token: str  # for the appliance's server.token; shown once
    token_hash: str  # for the server's [[devices]] table


def key_path(state_dir: Path) -> Path:
    return state_dir / KEY_FILE


def load_key(state_dir: Path) -> bytes | None:
    try:
        key = key_path(state_dir).read_bytes()
    except FileNotFoundError:
        return None
    if len(key) != KEY_BYTES:
        raise DeviceKeyMissing(_("{path} is not a device token key", path=key_path(state_dir)))
    return key


def ensure_key(state_dir: Path) -> bytes:
    """The server's device token key, made (0600) if there is none yet."""
    key = load_key(state_dir)
    if key is None:
        key = secrets.token_bytes(KEY_BYTES)
        write_atomically(key_path(state_dir), key)
    return key


def token_hash(key: bytes, token: str) -> str:
    return HASH_PREFIX + hmac.new(key, token.encode(), hashlib.sha256).hexdigest()


def issue_device_token(state_dir: Path, device_id: str) -> IssuedToken:
    """A fresh token for ``device_id`` and its hash under this server's key."""
    token = f"{device_id}.{secrets.token_urlsafe(32)}"
    return IssuedToken(device_id, token, token_hash(ensure_key(state_dir), token))


def reissue_hint(device_id: str) -> str:
    return _(
        "run 'clinicam device-token --config <server.toml> {device}', put its "
        "token_hash into the server's [[devices]] table and its token into the "
        "appliance's server.token",
        device=device_id,
    )


def check_key(state_dir: Path, devices: Sequence[DeviceAccount]) -> None:
    """Raise :class:`DeviceKeyMissing` (with what to do) if keyed hashes have no key."""
    keyed = [d.device_id for d in devices if d.token_hash.startswith(HASH_PREFIX)]
    if keyed and load_key(state_dir) is None:
        raise DeviceKeyMissing(
            _(
                "devices {devices} have keyed token hashes, but the server's key {path} is "
                "missing (was state_dir moved or wiped?): restore that file, or for each "
                "device {hint}",
                devices=str(keyed),
                path=key_path(state_dir),
                hint=reissue_hint("<device>"),
            )
        )


@dataclass
class DeviceTokens:
    """Who is calling: the device in the URL, if the bearer token is its own."""

    config: ServerConfig
    roster: Roster
    checks: SlowChecks
    throttle: LoginThrottle  # only for argon2 hashes from older releases
    _key: bytes = field(init=False)
    _verified: dict[tuple[str, str], bytes] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_key(self.config.state_dir, self.roster.devices)
        self._key = load_key(self.config.state_dir) or b""
        for device in self.roster.devices:
            if device.token_hash.startswith(LEGACY_PREFIX):
                _LOGGER.warning(
                    "device %s still has an argon2 token hash from an older release: it "
                    "works, but each wrong token costs an argon2 check; to switch, %s",
                    device.device_id,
                    reissue_hint(device.device_id),
                )

    async def authenticate(self, device_id: str, token: str, address: str) -> DeviceAccount:
        """Raises :class:`DeviceRefused`, :class:`server.auth.Throttled` (older hashes
        only) or :class:`server.slow_checks.ChecksBusy`."""
        device = self.roster.device(device_id)
        if device is None or not token:
            raise DeviceRefused("unknown device or wrong token")
        if device.token_hash.startswith(HASH_PREFIX):
            mine = token.partition(".")[0] == device_id
            if mine and hmac.compare_digest(
                token_hash(self._token_key(), token), device.token_hash
            ):
                return device
            raise DeviceRefused("unknown device or wrong token")
        return await self._legacy(device, token, address)

    def _token_key(self) -> bytes:
        """The server's key, read again if it was made since the start (the first appliance
        enrolled from /admin makes it)."""
        if not self._key:
            self._key = load_key(self.config.state_dir) or b""
        return self._key

    async def _legacy(self, device: DeviceAccount, token: str, address: str) -> DeviceAccount:
        key = (device.device_id, device.token_hash)
        digest = hashlib.sha256(token.encode()).digest()
        known = self._verified.get(key)
        if known is not None and hmac.compare_digest(known, digest):
            return device
        attempt = self.throttle.begin(f"device:{device.device_id}", address)
        ok = await attempt.check(self.checks, device.token_hash, token)
        if not ok:
            attempt.failed()
            raise DeviceRefused("unknown device or wrong token")
        attempt.succeeded()
        self._verified[key] = digest
        return device

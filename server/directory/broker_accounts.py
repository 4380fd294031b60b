"""The broker accounts of enrolled appliances: mosquitto's password and ACL files.

Written from the appliances table after every enrolment, revocation and rotation (and at
start, which repairs a write that failed): each file atomically, then mosquitto is told
to reload them (SIGHUP to its pid, or a configured command). A reload keeps connected
clients connected, except those whose password no longer matches, which mosquitto
disconnects: a revoked or rotated appliance is cut off, the others keep their sessions.

Accounts the server did not make (its own when it has no password here, devices from
the configuration file, a technician's) are kept as the file has them, unless their
device is revoked.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
from collections.abc import Mapping
from pathlib import Path

from clinicam import broker_files
from clinicam.files import write_atomically
from clinicam.i18n import _
from clinicam.mqtt_config import MqttConfig
from server.config import BrokerAdminConfig

_LOGGER = logging.getLogger(__name__)

RELOAD_TIMEOUT_S = 20.0


class BrokerNotUpdated(Exception):
    """The files could not be written or mosquitto could not be told to reload them."""


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ""


def _write_like(path: Path, text: str) -> None:
    """Atomically, keeping the mode (and, as root, the owner) the file had: mosquitto may
    run as another user that must go on reading it."""
    mode, owner = 0o600, None
    try:
        st = path.stat()
        mode = st.st_mode & 0o777
        if os.geteuid() == 0:
            owner = (st.st_uid, st.st_gid)
    except FileNotFoundError:
        pass
    write_atomically(path, text.encode(), mode=mode, owner=owner)


class BrokerAccounts:
    """Keeps mosquitto's files in step with the enrolled appliances."""

    def __init__(self, config: BrokerAdminConfig, mqtt: MqttConfig) -> None:
        self._config = config
        self._mqtt = mqtt

    @property
    def server_users(self) -> list[str]:
        if self._config.server_users:
            return list(self._config.server_users)
        return [self._mqtt.username] if self._mqtt.username else []

    def apply(self, devices: Mapping[str, str | None]) -> None:
        """Set each device's account (device id → mosquitto hash; None removes it), write
        both files and reload mosquitto. Raises :class:`BrokerNotUpdated`."""
        try:
            accounts = broker_files.parse_password_file(_read(self._config.password_file))
            for device_id, password_hash in devices.items():
                if password_hash is None:
                    accounts.pop(device_id, None)
                else:
                    accounts[device_id] = password_hash
            self._own_account(accounts)
            _write_like(self._config.password_file, broker_files.password_file_text(accounts))
            _write_like(self._config.acl_file, broker_files.acl_text(self.server_users))
        except (OSError, ValueError) as exc:
            raise BrokerNotUpdated(
                _("the broker's files could not be written: {problem}", problem=str(exc))
            ) from exc
        self.reload()

    def _own_account(self, accounts: dict[str, str]) -> None:
        """The server's own account, from its [mqtt] password (kept if it still matches)."""
        username, password = self._mqtt.username, self._mqtt.password.get_secret_value()
        if not username or not password or username not in self.server_users:
            return
        known = accounts.get(username)
        if known is None or not broker_files.password_matches(known, password):
            accounts[username] = broker_files.hash_password(password)

    def reload(self) -> None:
        """Tell mosquitto to read its files again. Raises :class:`BrokerNotUpdated`."""
        try:
            if self._config.reload_command is not None:
                subprocess.run(
                    self._config.reload_command,
                    check=True,
                    capture_output=True,
                    timeout=RELOAD_TIMEOUT_S,
                )
            else:
                assert self._config.pid_file is not None  # the config gives one of the two
                pid = int(self._config.pid_file.read_text().strip())
                os.kill(pid, signal.SIGHUP)
        except subprocess.CalledProcessError as exc:
            detail = (exc.stderr or b"").decode(errors="replace").strip()[:200]
            raise BrokerNotUpdated(
                _("the broker's reload command failed: {problem}", problem=detail or str(exc))
            ) from exc
        except (OSError, ValueError, subprocess.TimeoutExpired) as exc:
            raise BrokerNotUpdated(
                _("mosquitto could not be told to reload: {problem}", problem=str(exc))
            ) from exc
        _LOGGER.info("mosquitto reloads its password and ACL files")

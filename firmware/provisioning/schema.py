"""The schema of ``clinicam.toml``, the file a technician drops on the boot partition.

Every table refuses unknown keys, so a misspelt setting is reported instead of
silently ignored. The ``[camera]`` and ``[pantilt]`` tables are taken as they are
here and validated later, merged into the appliance configuration, by
:class:`~firmware.config.ApplianceConfig` itself (see :mod:`firmware.provisioning.plan`).

The time zone is checked against the zone files of the system being provisioned:
pass ``context={"root": Path}`` to ``model_validate``.
"""

from __future__ import annotations

import re
import zoneinfo
from pathlib import Path, PurePosixPath
from typing import Any, Literal, Self
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator

from clinicam.configfile import StrictModel
from clinicam.const import DEVICE_ID_PATTERN
from clinicam.i18n import _

PSK_MIN, PSK_MAX = 8, 63
SSID_MAX_BYTES = 32
ZONEINFO = PurePosixPath("usr/share/zoneinfo")
_TZ_NAME = re.compile(r"^[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+)*$")


def timezone_known(name: str, root: Path) -> bool:
    """True if ``name`` is a time zone of the system at ``root`` (or of Python's tz data)."""
    if not _TZ_NAME.match(name):
        return False
    zones = root / ZONEINFO
    if zones.is_dir():
        return (zones / name).is_file()
    return name in zoneinfo.available_timezones()


class DeviceSection(StrictModel):
    """``[device]``: who this appliance is and where it stands."""

    id: str = Field(pattern=DEVICE_ID_PATTERN, description="Device id, as on the server.")
    timezone: str | None = Field(None, description="tz database name, e.g. Africa/Nairobi.")
    language: Literal["zh-CN", "en"] | None = Field(
        None, description="The appliance's language, and the provisioning log's."
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        root = (info.context or {}).get("root", Path("/"))
        if not timezone_known(value, Path(root)):
            raise ValueError(_("unknown time zone '{zone}'", zone=value))
        return value


class ServerSection(StrictModel):
    """``[server]``: the Clinicam server and this device's API token."""

    url: str = Field(description="Server base URL, http:// or https://.")
    token: SecretStr = Field(description="This device's API token.")

    @field_validator("url")
    @classmethod
    def _plain_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(_("must be a full address starting with https:// (or http://)"))
        if parts.username or parts.password:
            raise ValueError(_("must not contain a user name or password (use token)"))
        return value.rstrip("/")

    @field_validator("token")
    @classmethod
    def _not_empty(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().strip():
            raise ValueError(_("must not be empty"))
        return value


class MqttSection(StrictModel):
    """``[mqtt]``: the broker, with a password or a client certificate."""

    host: str = Field(min_length=1, description="Broker host name or address.")
    port: int | None = Field(None, ge=1, le=65535, description="Default 8883 with TLS, else 1883.")
    username: str | None = Field(None, min_length=1, description="Default: the device id.")
    password: SecretStr | None = Field(None, description="Broker password.")
    tls: bool | None = Field(None, description="Default: on when a certificate is given.")
    ca_cert_pem: str | None = Field(None, description="CA certificate: inline PEM or file name.")
    client_cert_pem: str | None = Field(None, description="Client certificate: PEM or file name.")
    client_key_pem: SecretStr | None = Field(None, description="Client key: PEM or file name.")

    @model_validator(mode="after")
    def _credentials(self) -> Self:
        has_cert = self.client_cert_pem is not None
        has_key = self.client_key_pem is not None
        if has_cert != has_key:
            raise ValueError(
                _("client_cert_pem and client_key_pem go together: give both or neither")
            )
        has_password = self.password is not None and bool(self.password.get_secret_value())
        if not has_password and not has_cert:
            raise ValueError(_("needs a password, or client_cert_pem and client_key_pem"))
        if self.tls is False and (self.ca_cert_pem is not None or has_cert):
            raise ValueError(_("certificates need tls = true (or leave tls out)"))
        return self

    @property
    def use_tls(self) -> bool:
        """TLS on: asked for, or implied by a certificate."""
        if self.tls is not None:
            return self.tls
        return self.ca_cert_pem is not None or self.client_cert_pem is not None


class WifiNetwork(StrictModel):
    """``[[wifi]]``: one Wi-Fi network, written as a NetworkManager connection."""

    ssid: str = Field(description="Network name, 1–32 bytes.")
    psk: SecretStr | None = Field(None, description="WPA password, 8–63 characters.")
    key_mgmt: Literal["wpa-psk", "none"] = Field("wpa-psk", description="'none': open network.")
    hidden: bool = Field(False, description="The network does not broadcast its name.")
    priority: int = Field(0, ge=-999, le=999, description="Higher is tried first.")
    country: str | None = Field(None, description="Wi-Fi country (ISO 3166 code, e.g. KE).")

    @field_validator("ssid")
    @classmethod
    def _ssid_length(cls, value: str) -> str:
        if not 1 <= len(value.encode()) <= SSID_MAX_BYTES:
            raise ValueError(_("must be 1 to {most} bytes long", most=SSID_MAX_BYTES))
        return value

    @field_validator("psk")
    @classmethod
    def _psk_shape(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        secret = value.get_secret_value()
        if not PSK_MIN <= len(secret) <= PSK_MAX:
            raise ValueError(
                _("must have {least} to {most} characters", least=PSK_MIN, most=PSK_MAX)
            )
        if any(not 32 <= ord(ch) <= 126 for ch in secret):
            raise ValueError(_("may only use plain ASCII letters, digits, spaces and punctuation"))
        return value

    @field_validator("country")
    @classmethod
    def _country_code(cls, value: str | None) -> str | None:
        if value is None:
            return None
        code = value.strip().upper()
        if not re.fullmatch(r"[A-Z]{2}", code):
            raise ValueError(_("must be a two-letter country code such as KE or GB"))
        return code

    @model_validator(mode="after")
    def _security(self) -> Self:
        if self.key_mgmt == "wpa-psk" and self.psk is None:
            raise ValueError(_('needs psk (or key_mgmt = "none" for an open network)'))
        if self.key_mgmt == "none" and self.psk is not None:
            raise ValueError(_('an open network (key_mgmt = "none") has no psk'))
        return self


class ProvisioningFile(StrictModel):
    """The whole ``clinicam.toml``."""

    device: DeviceSection
    server: ServerSection
    mqtt: MqttSection
    wifi: list[WifiNetwork] = Field(default_factory=list)
    camera: dict[str, Any] = Field(default_factory=dict)
    pantilt: dict[str, Any] = Field(default_factory=dict)

    @field_validator("wifi")
    @classmethod
    def _networks_agree(cls, networks: list[WifiNetwork]) -> list[WifiNetwork]:
        ssids = [net.ssid for net in networks]
        if len(set(ssids)) != len(ssids):
            raise ValueError(_("the same ssid is listed twice"))
        countries = {net.country for net in networks if net.country}
        if len(countries) > 1:
            raise ValueError(
                _(
                    "one country for all networks, not {countries}",
                    countries=", ".join(sorted(countries)),
                )
            )
        return networks

    @property
    def wifi_country(self) -> str | None:
        """The Wi-Fi country, if any network names one."""
        return next((net.country for net in self.wifi if net.country), None)

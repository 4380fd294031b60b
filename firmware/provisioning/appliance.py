"""The appliance configuration a provisioning file produces, checked by ApplianceConfig itself.

The device's existing ``/etc/clinicam/appliance.toml`` (from the SD-card image or an
earlier provisioning) is the base; the file's settings are laid over it: device id,
server, the whole ``[mqtt]`` connection, and the ``[camera]`` / ``[pantilt]``
overrides key by key. The result must validate as :class:`ApplianceConfig`, so one
wrong calibration value is reported under its own key (``pantilt.pan.min_deg``).
Applying the same file twice gives the same result (a retry after a crash).
"""

from __future__ import annotations

import copy
import logging
import tomllib
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from pydantic import ValidationError

from clinicam import tomlwrite
from clinicam.i18n import LOCALES, _
from clinicam.mqtt_config import MqttConfig
from firmware.config import ApplianceConfig
from firmware.provisioning.problems import Problem, from_validation
from firmware.provisioning.schema import ProvisioningFile
from firmware.provisioning.source import Invalid
from firmware.provisioning.sysfiles import under

_LOGGER = logging.getLogger(__name__)

APPLIANCE_TOML = PurePosixPath("/etc/clinicam/appliance.toml")
TLS_DIR = PurePosixPath("/etc/clinicam/tls")
CA_FILE, CERT_FILE, KEY_FILE = "ca.pem", "client.crt", "client.key"
DEFAULT_STATE_DIR = "/var/lib/clinicam"  # systemd StateDirectory=clinicam
PI_MODEL_FILES = ("proc/device-tree/model", "sys/firmware/devicetree/base/model")
MQTT_CERT_FIELDS = ("cert_file", "key_file")  # MqttConfig keys for a client certificate
MQTT_SET_HERE = ("host", "port", "username", "password", "tls", "ca_file", *MQTT_CERT_FIELDS)
FROM_FILE_KEYS = {
    "device_id": "device.id",
    "language": "device.language",
    "mqtt.ca_file": "mqtt.ca_cert_pem",
    "mqtt.cert_file": "mqtt.client_cert_pem",
    "mqtt.key_file": "mqtt.client_key_pem",
}


def client_certificates_supported() -> bool:
    """True when this firmware's MQTT settings take a client certificate and key."""
    return all(name in MqttConfig.model_fields for name in MQTT_CERT_FIELDS)


def detect_backend(root: Path) -> str:
    """'pi' on a Raspberry Pi (its device-tree model says so), else 'sim'."""
    for name in PI_MODEL_FILES:
        try:
            if "Raspberry Pi" in (root / name).read_text(errors="replace"):
                return "pi"
        except OSError:
            continue
    return "sim"


def load_base(root: Path) -> tuple[dict[str, Any], list[str]]:
    """The existing appliance.toml's tables (empty if none) and notes for the log."""
    path = under(root, APPLIANCE_TOML)
    if not path.exists():
        return {}, []
    try:
        return tomllib.loads(path.read_text(encoding="utf-8")), []
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        _LOGGER.warning("existing %s unreadable, starting from defaults: %s", APPLIANCE_TOML, exc)
        return {}, [
            _("the existing {path} could not be read and was replaced", path=APPLIANCE_TOML)
        ]


def language_of(tables: Mapping[str, Any]) -> str:
    """The appliance's language in these appliance.toml tables (the default if unset)."""
    chosen = tables.get("language")
    if isinstance(chosen, str) and chosen in LOCALES:
        return chosen
    default: str = ApplianceConfig.model_fields["language"].default
    return default


def deep_merge(base: Any, override: Mapping[str, Any]) -> dict[str, Any]:
    """``override`` laid over ``base`` table by table (``base`` is not changed)."""
    out: dict[str, Any] = copy.deepcopy(base) if isinstance(base, dict) else {}
    for key, value in override.items():
        if isinstance(value, Mapping):
            out[key] = deep_merge(out.get(key), value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _mqtt_overlay(spec: ProvisioningFile) -> dict[str, Any]:
    mqtt = spec.mqtt
    tls = mqtt.use_tls
    out: dict[str, Any] = {
        "host": mqtt.host,
        "port": mqtt.port or (8883 if tls else 1883),
        "username": mqtt.username or spec.device.id,
        "tls": tls,
    }
    if mqtt.password is not None:
        out["password"] = mqtt.password.get_secret_value()
    if mqtt.ca_cert_pem is not None:
        out["ca_file"] = str(TLS_DIR / CA_FILE)
    if mqtt.client_cert_pem is not None:
        out["cert_file"] = str(TLS_DIR / CERT_FILE)
        out["key_file"] = str(TLS_DIR / KEY_FILE)
    return out


def overlay(spec: ProvisioningFile) -> dict[str, Any]:
    """What the provisioning file sets in the appliance configuration."""
    tables: dict[str, Any] = {
        "device_id": spec.device.id,
        "server": {"url": spec.server.url, "token": spec.server.token.get_secret_value()},
        "mqtt": _mqtt_overlay(spec),
    }
    if spec.device.language is not None:
        tables["language"] = spec.device.language
    if spec.camera:
        tables["camera"] = spec.camera
    if spec.pantilt:
        tables["pantilt"] = spec.pantilt
    return tables


def effective_section(base: Mapping[str, Any], section: str) -> dict[str, Any]:
    """``base``'s ``[section]`` with every default filled in (raw if it is invalid).

    Overrides are laid over this, not over the raw table: a lone ``[pantilt.tilt]
    invert = true`` must keep the tilt axis's own defaults (channel 1), which a raw
    merge would replace with those of a bare axis (channel 0).
    """
    raw = base.get(section)
    try:
        config = ApplianceConfig.model_validate({section: raw if raw is not None else {}})
    except ValidationError:
        return dict(raw) if isinstance(raw, Mapping) else {}
    section_data: dict[str, Any] = config.model_dump(mode="json")[section]
    return section_data


def merged(spec: ProvisioningFile, base: Mapping[str, Any], root: Path) -> dict[str, Any]:
    """The new appliance configuration's tables."""
    data = deep_merge(base, {})
    for section in ("camera", "pantilt"):
        if getattr(spec, section):
            data[section] = effective_section(base, section)
    mqtt_base = data.get("mqtt")
    if not isinstance(mqtt_base, dict):
        mqtt_base = {}
    data["mqtt"] = {k: v for k, v in mqtt_base.items() if k not in MQTT_SET_HERE}
    data = deep_merge(data, overlay(spec))
    data.setdefault("backend", detect_backend(root))
    data.setdefault("state_dir", DEFAULT_STATE_DIR)
    return data


def _set_by(tables: Mapping[str, Any], key: str) -> bool:
    node: Any = tables
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False
        node = node[part]
    return True


def validate(spec: ProvisioningFile, data: dict[str, Any]) -> ApplianceConfig:
    """``data`` as an ApplianceConfig, or :class:`Invalid` naming the file's keys."""
    if spec.mqtt.client_cert_pem is not None and not client_certificates_supported():
        raise Invalid(
            [
                Problem(
                    "mqtt.client_cert_pem",
                    _("this firmware's MQTT client cannot use a client certificate yet"),
                    _("use username and password (with ca_cert_pem for TLS) for now"),
                )
            ]
        )
    tables = overlay(spec)

    def rename(key: str) -> str:
        if key in FROM_FILE_KEYS:
            return FROM_FILE_KEYS[key]
        if _set_by(tables, key) or not key:
            return key
        return _("{key} (in the device's existing {path})", key=key, path=APPLIANCE_TOML)

    try:
        return ApplianceConfig.model_validate(data)
    except ValidationError as exc:
        raise Invalid(from_validation(exc, rename=rename)) from None


def check_overrides(raw: Mapping[str, Any], base: Mapping[str, Any]) -> list[Problem]:
    """Problems of the ``[camera]`` / ``[pantilt]`` tables alone, for a file that failed
    elsewhere: the technician then sees every problem after one try, not one per boot."""
    problems: list[Problem] = []
    for section in ("camera", "pantilt"):
        override = raw.get(section)
        if not isinstance(override, Mapping):
            continue
        try:
            merged_section = deep_merge(effective_section(base, section), override)
            ApplianceConfig.model_validate({section: merged_section})
        except ValidationError as exc:
            problems += from_validation(exc)
    return problems


def render(data: Mapping[str, Any]) -> bytes:
    """The appliance.toml text."""
    header = "# Written by clinicam provisioning from clinicam.toml; secrets inside (mode 0600).\n"
    try:
        return (header + tomlwrite.dumps(data)).encode()
    except TypeError as exc:
        raise Invalid(
            [
                Problem(
                    str(APPLIANCE_TOML),
                    _("cannot be rewritten: {detail}", detail=str(exc)),
                    _("ask for support"),
                )
            ]
        ) from None

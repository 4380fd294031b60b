"""Everything a provisioning file will write, worked out before anything is written.

:func:`build` reads and validates the file, resolves and checks its certificates,
merges and validates the appliance configuration and renders every output in memory.
Only a complete :class:`Plan` is ever applied, so a bad file changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clinicam.i18n import LOCALES, _, message_of
from firmware.provisioning import appliance, nmconnection, pem, source
from firmware.provisioning.problems import Problem, hint_for
from firmware.provisioning.schema import ProvisioningFile
from firmware.provisioning.source import Invalid

LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class Plan:
    """The outputs of one provisioning file (secrets included: never log a Plan)."""

    device_id: str
    appliance_toml: bytes = field(repr=False)
    tls_files: dict[str, bytes] = field(repr=False)
    networks: dict[str, bytes] = field(repr=False)
    wifi_country: str | None
    timezone: str | None
    summary: dict[str, Any]
    boot_files: tuple[str, ...]
    notes: tuple[str, ...]

    @property
    def replaces_networks(self) -> bool:
        """The file lists Wi-Fi networks: they replace those an earlier file set."""
        return bool(self.networks)


def _take_pem(
    key: str, value: str, folder: Path, check: Callable[[str], object], problems: list[Problem]
) -> pem.PemSource | None:
    try:
        found = pem.resolve(value, folder)
        check(found.text)
    except pem.PemError as exc:
        problems.append(Problem(key, message_of(exc), hint_for(key)))
        return None
    return found


def _tls(
    spec: ProvisioningFile, folder: Path, problems: list[Problem]
) -> tuple[dict[str, bytes], list[str]]:
    """The TLS files to install and the boot-partition files they came from."""
    mqtt, files, names = spec.mqtt, {}, []
    if mqtt.ca_cert_pem is not None:
        ca = _take_pem(
            "mqtt.ca_cert_pem", mqtt.ca_cert_pem, folder, pem.check_certificates, problems
        )
        if ca is not None:
            files[appliance.CA_FILE] = ca.text.encode()
            names += [ca.file_name] if ca.file_name else []
    if mqtt.client_cert_pem is not None and mqtt.client_key_pem is not None:
        cert = _take_pem(
            "mqtt.client_cert_pem", mqtt.client_cert_pem, folder, pem.check_certificates, problems
        )
        key_value = mqtt.client_key_pem.get_secret_value()
        if cert is not None:
            key = _take_pem(
                "mqtt.client_key_pem",
                key_value,
                folder,
                lambda text: pem.check_key_pair(cert.text, text),
                problems,
            )
            if key is not None:
                files[appliance.CERT_FILE] = cert.text.encode()
                files[appliance.KEY_FILE] = key.text.encode()
                names += [n for n in (cert.file_name, key.file_name) if n]
    return files, names


def _summary(
    spec: ProvisioningFile, network_files: list[str], data: dict[str, Any]
) -> dict[str, Any]:
    """The non-secret part, for ``clinicam.toml.applied`` and the log."""
    mqtt = data["mqtt"]
    out: dict[str, Any] = {
        "device": {
            "id": spec.device.id,
            "timezone": spec.device.timezone,
            "language": spec.device.language,
        },
        "server": {"url": spec.server.url},
        "mqtt": {
            "host": mqtt["host"],
            "port": mqtt["port"],
            "username": mqtt["username"],
            "tls": mqtt["tls"],
            "auth": "client certificate" if "cert_file" in mqtt else "password",
            "ca_file": mqtt.get("ca_file"),
        },
        "wifi": [
            {
                "ssid": net.ssid,
                "security": net.key_mgmt,
                "hidden": net.hidden,
                "priority": net.priority,
                "country": net.country,
                "file": str(nmconnection.SYSTEM_CONNECTIONS / name),
            }
            for net, name in zip(spec.wifi, network_files, strict=True)
        ],
    }
    for section in ("camera", "pantilt"):
        if getattr(spec, section):
            out[section] = getattr(spec, section)
    return out


def _notes(spec: ProvisioningFile, base_notes: list[str]) -> tuple[str, ...]:
    notes = list(base_notes)
    if spec.mqtt.username and spec.mqtt.username != spec.device.id:
        notes.append(
            _(
                "mqtt.username '{username}' differs from device.id '{device}'; Clinicam's "
                "own broker expects them to be the same",
                username=spec.mqtt.username,
                device=spec.device.id,
            )
        )
    if not spec.mqtt.use_tls and spec.mqtt.host not in LOOPBACK:
        notes.append(
            _(
                "the broker connection to {host} is not encrypted (no TLS): the MQTT password "
                "travels in clear; give mqtt.ca_cert_pem to turn TLS on",
                host=spec.mqtt.host,
            )
        )
    if not spec.wifi:
        notes.append(_("no [[wifi]] networks given: the device's Wi-Fi settings were kept"))
    return tuple(notes)


def build(path: Path, root: Path) -> Plan:
    """The plan for the provisioning file at ``path``; :class:`Invalid` lists every problem."""
    raw = source.read_toml(path)
    base, base_notes = appliance.load_base(root)
    try:
        spec = source.parse(raw, root)
    except Invalid as exc:
        raise Invalid(exc.problems + appliance.check_overrides(raw, base)) from None
    problems: list[Problem] = []
    tls_files, boot_files = _tls(spec, path.parent, problems)
    data = appliance.merged(spec, base, root)
    try:
        appliance.validate(spec, data)
    except Invalid as exc:
        problems += exc.problems
    if problems:
        raise Invalid(problems)
    names = nmconnection.file_names(spec.wifi)
    networks = {
        name: nmconnection.render(net, name.removesuffix(nmconnection.FILE_SUFFIX)).encode()
        for net, name in zip(spec.wifi, names, strict=True)
    }
    return Plan(
        device_id=spec.device.id,
        appliance_toml=appliance.render(data),
        tls_files=tls_files,
        networks=networks,
        wifi_country=spec.wifi_country,
        timezone=spec.device.timezone,
        summary=_summary(spec, names, data),
        boot_files=tuple(boot_files),
        notes=_notes(spec, base_notes),
    )


def log_language(path: Path, root: Path) -> str | None:
    """The language of the log for the provisioning file at ``path``: the appliance's
    language once the file is applied (its ``device.language``, else the device's
    present setting, else the default), or None when the file cannot say (not readable,
    not TOML, an unknown language): then the log is written in both languages."""
    try:
        raw = source.read_toml(path)
        device = raw.get("device", {})
        if not isinstance(device, dict):
            return None
        if "language" in device:
            chosen = device["language"]
            return chosen if chosen in LOCALES else None
        return appliance.language_of(appliance.load_base(root)[0])
    except Exception:  # the log must still be written, in both languages
        return None

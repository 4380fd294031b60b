"""What a setting's description promises, the validation enforces (issue 15, class 9).

``mqtt.tls`` says "required for anything beyond loopback": an appliance (or a server)
pointed at a broker elsewhere without TLS is refused by ``--check`` and at start-up,
naming the key. A file that is not UTF-8 is a clear configuration error, not a traceback.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from clinicam.configfile import ConfigError, load_config
from clinicam.mqtt_config import MqttConfig
from firmware.config import ApplianceConfig
from server.config import ServerConfig


def _check(role: str, config: Path) -> subprocess.CompletedProcess[str]:
    args = ["appliance", "run"] if role == "appliance" else ["server"]
    return subprocess.run(
        [sys.executable, "-m", "clinicam_app", *args, "--config", str(config), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("role", ["appliance", "server"])
def test_a_broker_beyond_loopback_without_tls_fails_the_check(tmp_path: Path, role: str) -> None:
    config = tmp_path / f"{role}.toml"
    config.write_text('[mqtt]\nhost = "hub.clinic.example"\npassword = "pw"\n')
    done = _check(role, config)
    assert done.returncode == 2, done.stdout
    assert "mqtt" in done.stderr and "TLS" in done.stderr
    config.write_text('[mqtt]\nhost = "hub.clinic.example"\npassword = "pw"\ntls = true\n')
    assert _check(role, config).returncode == 0


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.53", "localhost", "::1"])
def test_loopback_brokers_need_no_tls(host: str) -> None:
    assert not MqttConfig(host=host).tls


@pytest.mark.parametrize("host", ["10.0.0.5", "192.168.1.2", "hub.local", "fe80::1", "0.0.0.0"])
def test_every_other_broker_needs_tls_or_an_explicit_plaintext_opt_in(host: str) -> None:
    with pytest.raises(ValidationError, match="TLS"):
        MqttConfig(host=host)
    assert MqttConfig(host=host, tls=True).tls
    assert MqttConfig(host=host, allow_plaintext=True).allow_plaintext  # test networks only


def test_a_ca_file_without_tls_is_refused() -> None:
    with pytest.raises(ValidationError, match="tls"):
        MqttConfig(ca_file=Path("/etc/clinicam/tls/ca.pem"))


def test_the_environment_cannot_sneak_a_plain_remote_broker_in() -> None:
    environ = {"CLINICAM_APPLIANCE__MQTT__HOST": "hub.clinic.example"}
    with pytest.raises(ConfigError, match=r"mqtt.*TLS"):
        load_config(ApplianceConfig, None, env_prefix="CLINICAM_APPLIANCE", environ=environ)
    environ = {"CLINICAM_SERVER__MQTT__HOST": "10.1.2.3"}
    with pytest.raises(ConfigError, match=r"mqtt.*TLS"):
        load_config(ServerConfig, None, env_prefix="CLINICAM_SERVER", environ=environ)


def test_a_file_that_is_not_utf8_is_a_clear_error(tmp_path: Path) -> None:
    config = tmp_path / "appliance.toml"
    config.write_bytes(b'device_id = "caf\xe9"\n')  # Latin-1, not UTF-8
    with pytest.raises(ConfigError, match="UTF-8"):
        load_config(ApplianceConfig, config, env_prefix="CLINICAM_APPLIANCE", environ={})

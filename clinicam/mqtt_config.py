"""Broker connection settings, used by both the server and the appliance."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr

from clinicam.configfile import StrictModel


class MqttConfig(StrictModel):
    """How to reach the MQTT broker."""

    host: str = Field("127.0.0.1", description="Broker host name or address.")
    port: int = Field(1883, ge=1, le=65535, description="Broker port.")
    username: str = Field("", description="Broker user name (this device's or server's id).")
    password: SecretStr = Field(SecretStr(""), description="Broker password.")
    tls: bool = Field(False, description="Use TLS; required for anything beyond loopback.")
    ca_file: Path | None = Field(None, description="CA certificate that signed the broker's.")
    keepalive_s: int = Field(15, ge=5, le=600, description="MQTT keep-alive interval.")

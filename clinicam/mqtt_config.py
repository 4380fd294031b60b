"""Broker connection settings, used by both the server and the appliance."""

from __future__ import annotations

from pathlib import Path

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
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


def publish_properties(
    *,
    response_topic: str | None = None,
    correlation: bytes | None = None,
    expiry_s: int | None = None,
) -> Properties:
    """MQTT 5 PUBLISH properties: response topic, correlation data, message expiry."""
    props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    if response_topic is not None:
        props.ResponseTopic = response_topic
    if correlation is not None:
        props.CorrelationData = correlation
    if expiry_s is not None:
        props.MessageExpiryInterval = expiry_s
    return props

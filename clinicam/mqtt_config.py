"""Broker connection settings, used by both the server and the appliance."""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import ssl
from pathlib import Path
from typing import Any, Self

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from pydantic import Field, SecretStr, model_validator

from clinicam.configfile import StrictModel
from clinicam.i18n import _


class MqttConfig(StrictModel):
    """How to reach the MQTT broker."""

    host: str = Field("127.0.0.1", description="Broker host name or address.")
    port: int = Field(1883, ge=1, le=65535, description="Broker port.")
    username: str = Field("", description="Broker user name (this device's or server's id).")
    password: SecretStr = Field(SecretStr(""), description="Broker password.")
    tls: bool = Field(
        False,
        description="Use TLS; required for a broker beyond loopback (see allow_plaintext).",
    )
    allow_plaintext: bool = Field(
        False,
        description="Isolated test networks only: allow a broker beyond loopback without TLS "
        "(the broker password and every command then travel in clear).",
    )
    ca_file: Path | None = Field(
        None, description="CA certificate that signed the broker's (TLS only)."
    )
    cert_file: Path | None = Field(
        None, description="Client certificate (PEM) for brokers that require one (TLS only)."
    )
    key_file: Path | None = Field(None, description="The client certificate's private key.")
    keepalive_s: int = Field(15, ge=5, le=600, description="MQTT keep-alive interval.")

    @model_validator(mode="after")
    def _client_certificate(self) -> Self:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError(_("give both cert_file and key_file, or neither"))
        if self.cert_file is not None and not self.tls:
            raise ValueError(_("a client certificate needs tls = true"))
        if self.ca_file is not None and not self.tls:
            raise ValueError(_("a ca_file needs tls = true"))
        return self

    @model_validator(mode="after")
    def _tls_beyond_loopback(self) -> Self:
        if not self.tls and not self.allow_plaintext and not is_loopback(self.host):
            raise ValueError(
                _(
                    "broker {host} is not on this machine: TLS is required (tls = true and "
                    "ca_file), or allow_plaintext = true on an isolated test network",
                    host=repr(self.host),
                )
            )
        return self


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback address (127.0.0.0/8, ::1); names are not resolved."""
    name = host.strip().strip("[]").rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


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


DSCP_SIGNALING = 24  # CS3 (RFC 4594): control traffic, for networks that honour DSCP


def tune_control_socket(sock: Any) -> None:
    """Commands and acks go out at once, not when Nagle's algorithm has waited for the
    previous ack (≈40 ms per command on a real link); marked as signalling traffic."""
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    with contextlib.suppress(OSError, AttributeError):
        if sock.family == socket.AF_INET:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, DSCP_SIGNALING << 2)
        elif sock.family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_TCLASS, DSCP_SIGNALING << 2)


def make_client(config: MqttConfig, client_id: str) -> mqtt.Client:
    """An MQTT 5 client with this config's credentials, TLS and reconnect backoff."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.username_pw_set(config.username, config.password.get_secret_value())
    if config.tls:
        client.tls_set(
            ca_certs=str(config.ca_file) if config.ca_file else None,
            certfile=str(config.cert_file) if config.cert_file else None,
            keyfile=str(config.key_file) if config.key_file else None,
            cert_reqs=ssl.CERT_REQUIRED,
        )
    client.reconnect_delay_set(min_delay=1, max_delay=10)
    client.on_socket_open = lambda _client, _userdata, sock: tune_control_socket(sock)
    return client

"""Control sockets: no Nagle delay (every command and ack goes out at once) and marked as
signalling traffic (DSCP CS3) for networks that honour it. Checked on the socket paho
really opened to a real mosquitto."""

from __future__ import annotations

import socket
import threading

from pydantic import SecretStr

from clinicam.mqtt_config import DSCP_SIGNALING, MqttConfig, make_client
from clinicam_app.broker import MosquittoBroker


def test_the_mqtt_client_socket_sends_at_once_and_is_marked(broker: MosquittoBroker) -> None:
    config = MqttConfig(
        host="127.0.0.1", port=broker.port, username="cam-a", password=SecretStr("cam-a-pw")
    )
    client = make_client(config, "cam-a")
    connected = threading.Event()
    client.on_connect = lambda *args: connected.set()
    client.connect(config.host, config.port)
    client.loop_start()
    try:
        assert connected.wait(10), "no CONNACK from the broker"
        sock = client.socket()
        assert isinstance(sock, socket.socket)
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        assert sock.getsockopt(socket.IPPROTO_IP, socket.IP_TOS) == DSCP_SIGNALING << 2
    finally:
        client.loop_stop()
        client.disconnect()

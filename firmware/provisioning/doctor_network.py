"""The doctor's network checks: the MQTT broker and the Clinicam server, with this device's
credentials.

The broker check opens a TCP connection, then logs in with the firmware's own MQTT
client settings (:func:`clinicam.mqtt_config.make_client`: same user, password and
TLS). The server check asks ``/healthz`` and then an endpoint that only answers this
device's token (``/api/appliances/<id>/model``). No proxy is used, as in the firmware.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import socket
import ssl
import threading
import urllib.error
import urllib.request
from typing import Any

from clinicam.i18n import _
from clinicam.mqtt_config import MqttConfig, make_client
from firmware.config import ServerLinkConfig
from firmware.provisioning.doctor_result import CheckResult, failed, passed, warned

_LOGGER = logging.getLogger(__name__)

BROKER, SERVER = _("MQTT broker"), _("server")
CLOCK_HINT = _("check the device clock (certificates need the right date)")
MAX_BODY = 64 * 1024


def _connack(config: MqttConfig, client_id: str, timeout_s: float) -> str | None:
    """Log in; None when accepted, else the broker's (or the connection's) reason."""
    client = make_client(config, client_id)
    answered = threading.Event()
    reason: list[str] = []

    def on_connect(_c: Any, _u: Any, _f: Any, code: Any, _p: Any = None) -> None:
        if code.is_failure:
            reason.append(str(code))
        answered.set()

    client.on_connect = on_connect
    client.connect(config.host, config.port, keepalive=config.keepalive_s)
    client.loop_start()
    try:
        if not answered.wait(timeout_s):
            return _("no answer to the login within {seconds} s", seconds=f"{timeout_s:.0f}")
        return reason[0] if reason else None
    finally:
        client.disconnect()
        client.loop_stop()


def check_broker(config: MqttConfig, device_id: str, timeout_s: float) -> CheckResult:
    """TCP connect, then an MQTT login with the configured credentials."""
    where = f"{config.host}:{config.port}"
    try:
        socket.create_connection((config.host, config.port), timeout=timeout_s).close()
    except OSError as exc:
        return failed(
            BROKER,
            _("cannot reach {where}: {problem}", where=where, problem=exc.strerror or str(exc)),
            _(
                "check mqtt.host and mqtt.port, the network (Wi-Fi/cable) and that the "
                "broker is running and its port is open in the firewall"
            ),
        )
    try:
        refused = _connack(config, f"{device_id}-doctor-{os.getpid()}", timeout_s)
    except ssl.SSLError as exc:
        return failed(
            BROKER,
            _("TLS to {where} failed: {problem}", where=where, problem=str(exc)),
            _("check mqtt.ca_file; {hint}", hint=CLOCK_HINT),
        )
    except OSError as exc:
        return failed(
            BROKER,
            _("login to {where} failed: {problem}", where=where, problem=str(exc)),
            _("check mqtt.tls and mqtt.port"),
        )
    if refused is not None:
        return failed(
            BROKER,
            _(
                "{where} refused the login of '{user}': {reason}",
                where=where,
                user=config.username,
                reason=refused,
            ),
            _(
                "check mqtt.username and mqtt.password; the broker's password file must "
                "list this device"
            ),
        )
    tls = _("TLS") if config.tls else _("no TLS")
    return passed(
        BROKER,
        _("logged in to {where} as '{user}' ({tls})", where=where, user=config.username, tls=tls),
    )


def _get(url: str, headers: dict[str, str], timeout_s: float) -> tuple[int, bytes]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(url, headers=headers)
    try:
        with opener.open(request, timeout=timeout_s) as response:
            return int(response.status), response.read(MAX_BODY)
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read(MAX_BODY)


def _unreachable(url: str, exc: Exception) -> CheckResult:
    reason = getattr(exc, "reason", exc)
    if isinstance(reason, ssl.SSLError):
        return failed(
            SERVER,
            _("TLS to {where} failed: {problem}", where=url, problem=str(reason)),
            _("{hint}; the server's certificate must be valid for its name", hint=CLOCK_HINT),
        )
    return failed(
        SERVER,
        _("cannot reach {where}: {problem}", where=url, problem=str(reason)),
        _(
            "check server.url and the clinic's internet connection; open "
            "{url}/healthz in a phone's browser on the same network",
            url=url,
        ),
    )


def check_server(server: ServerLinkConfig, device_id: str, timeout_s: float) -> CheckResult:
    """``/healthz`` answers, and the server accepts this device's token."""
    try:
        status, body = _get(f"{server.url}/healthz", {}, timeout_s)
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        return _unreachable(server.url, exc)
    try:
        health = json.loads(body) if status in (200, 503) else None
    except ValueError:
        health = None
    if not isinstance(health, dict):
        return failed(
            SERVER,
            _(
                "{url}/healthz answered HTTP {status}, not a Clinicam server",
                url=server.url,
                status=status,
            ),
            _("check server.url (the address of the Clinicam server, without a path)"),
        )
    token = server.token.get_secret_value()
    if not token:
        return failed(
            SERVER, _("server.token is empty"), _("set server.token (from the server admin)")
        )
    auth = {"Authorization": f"Bearer {token}"}
    try:
        status, _body = _get(f"{server.url}/api/appliances/{device_id}/model", auth, timeout_s)
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        return _unreachable(server.url, exc)
    if status in (401, 403):
        return failed(
            SERVER,
            _(
                "{url} is up but refused the token of device '{device}'",
                url=server.url,
                device=device_id,
            ),
            _(
                "check server.token and that the server lists device '{device}' in [[devices]]",
                device=device_id,
            ),
        )
    if status not in (200, 503):  # 503: token accepted, the server has no model
        return failed(
            SERVER,
            _("the token check answered HTTP {status}", status=status),
            _("the server may be older than this appliance: update it"),
        )
    if health.get("status") != "ok":
        return warned(
            SERVER,
            _(
                "{url} is up and accepts the token, but reports '{status}'",
                url=server.url,
                status=health.get("status"),
            ),
            _("a problem on the server's side (its broker link): tell the server's administrator"),
        )
    return passed(
        SERVER,
        _("{url} is up and accepts the token of '{device}'", url=server.url, device=device_id),
    )

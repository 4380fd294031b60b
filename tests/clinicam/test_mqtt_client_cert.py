"""MQTT over TLS with a client certificate (what provisioning installs): a real mosquitto
that requires certificates accepts the appliance's and refuses a client without one."""

from __future__ import annotations

import getpass
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from clinicam.mqtt_config import MqttConfig, make_client
from clinicam_app import procs
from clinicam_app.broker import find_mosquitto

HOST = "127.0.0.1"


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def _pki(folder: Path) -> dict[str, Path]:
    """A CA, a broker certificate for 127.0.0.1 and a client certificate, all signed by it."""
    f = {
        n: folder / n
        for n in (
            "ca.key",
            "ca.crt",
            "srv.key",
            "srv.csr",
            "srv.crt",
            "cli.key",
            "cli.csr",
            "cli.crt",
            "san.ext",
        )
    }
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-keyout",
        str(f["ca.key"]),
        "-out",
        str(f["ca.crt"]),
        "-subj",
        "/CN=test CA",
    )
    f["san.ext"].write_text(f"subjectAltName=IP:{HOST}\n")
    for who, cn in (("srv", "localhost"), ("cli", "cam-1")):
        _openssl(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(f[f"{who}.key"]),
            "-out",
            str(f[f"{who}.csr"]),
            "-subj",
            f"/CN={cn}",
        )
        extra = ["-extfile", str(f["san.ext"])] if who == "srv" else []
        _openssl(
            "x509",
            "-req",
            "-in",
            str(f[f"{who}.csr"]),
            "-CA",
            str(f["ca.crt"]),
            "-CAkey",
            str(f["ca.key"]),
            "-CAcreateserial",
            "-days",
            "1",
            "-out",
            str(f[f"{who}.crt"]),
            *extra,
        )
    return f


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[tuple[int, dict[str, Path]]]:
    pki = _pki(tmp_path)
    port = procs.free_port(HOST)
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(
        f"user {getpass.getuser()}\npersistence false\nlog_dest stderr\n"
        f"listener {port} {HOST}\nallow_anonymous true\n"
        f"cafile {pki['ca.crt']}\ncertfile {pki['srv.crt']}\nkeyfile {pki['srv.key']}\n"
        "require_certificate true\nuse_identity_as_username true\n"
    )
    proc = procs.spawn([find_mosquitto(), "-c", str(conf)])
    try:
        procs.wait_for_port(HOST, port, 10.0, proc)
        yield port, pki
    finally:
        procs.stop(proc, "mosquitto")


def _connects(config: MqttConfig) -> bool:
    client = make_client(config, "cert-test")
    done = threading.Event()
    result: list[bool] = []

    def on_connect(c: object, u: object, flags: object, reason: object, props: object) -> None:
        result.append(not getattr(reason, "is_failure", True))
        done.set()

    client.on_connect = on_connect
    client.on_connect_fail = lambda c, u: done.set()
    try:
        client.connect(config.host, config.port)
    except OSError:
        return False
    client.loop_start()
    try:
        done.wait(5.0)
    finally:
        client.loop_stop()
        client.disconnect()
    return result == [True]


def test_the_client_certificate_is_presented(broker: tuple[int, dict[str, Path]]) -> None:
    port, pki = broker
    base = {"host": HOST, "port": port, "tls": True, "ca_file": pki["ca.crt"]}
    with_cert = MqttConfig.model_validate(
        {**base, "cert_file": pki["cli.crt"], "key_file": pki["cli.key"]}
    )
    assert _connects(with_cert)
    assert not _connects(MqttConfig.model_validate(base))  # no certificate: refused


def test_a_client_certificate_needs_its_key_and_tls() -> None:
    with pytest.raises(ValidationError, match="both cert_file and key_file"):
        MqttConfig(tls=True, cert_file=Path("c.pem"), password=SecretStr(""))
    with pytest.raises(ValidationError, match="needs tls"):
        MqttConfig(cert_file=Path("c.pem"), key_file=Path("k.pem"))

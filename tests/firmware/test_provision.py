"""First-boot provisioning from ``clinicam.toml``, on a boot folder and a root folder.

The real provisioning code writes real files; only the status LED's pins are gpiozero's
MockFactory pins, and a crash is simulated by making one low-level write fail.
"""

from __future__ import annotations

import configparser
import datetime as dt
import os
import stat
import tomllib
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from gpiozero.pins.mock import MockFactory

from firmware.config import ApplianceConfig
from firmware.hardware.gpio import GpioStatusLight, LightPattern
from firmware.provision import main_provision, provision
from firmware.provisioning import nmconnection, sysfiles
from firmware.provisioning.appliance import client_certificates_supported

NOW = dt.datetime(2025, 3, 4, 10, 30, tzinfo=dt.UTC)
TOKEN = "tok-S3CRET-token-7f3a"
MQTT_PASSWORD = "mqtt-S3CRET-pw-91c2"
PSK = "wifi-S3CRET-psk-55d0"
SECRETS = (TOKEN, MQTT_PASSWORD, PSK)
SERVICE_UID, SERVICE_GID = 4242, 4343
NM_DIR = "etc/NetworkManager/system-connections"
BASE_APPLIANCE_TOML = """\
backend = "sim"
state_dir = "/var/lib/clinicam"

[gpio]
led_pin = 22

[motion]
max_speed_deg_s = 45.0

[mqtt]
host = "old-broker.example.org"
password = "old-password"
keepalive_s = 30
"""

GOOD = f"""\
[device]
id = "cam-7"
timezone = "Africa/Nairobi"
language = "en"

[server]
url = "https://clinicam.example.org/"
token = "{TOKEN}"

[mqtt]
host = "broker.example.org"
password = "{MQTT_PASSWORD}"
ca_cert_pem = "ca.pem"

[[wifi]]
ssid = "Clinic WiFi"
psk = "{PSK}"
priority = 10
country = "ke"

[[wifi]]
ssid = "Guest"
key_mgmt = "none"
hidden = true

[camera]
fps = 10

[pantilt.pan]
centre_deg = 92.0
"""


# ---------------------------------------------------------------- certificates


@dataclass(frozen=True)
class Pki:
    """A CA and a client certificate it signed, plus an unrelated key."""

    ca_pem: str
    client_cert_pem: str
    client_key_pem: str
    other_key_pem: str


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _cert(subject: str, key: Any, issuer: str, signer: Any, *, ca: bool) -> str:
    start = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(signer, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _key_pem(key: Any) -> str:
    data: bytes = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return data.decode()


def make_pki() -> Pki:
    """A fresh CA, client certificate and unrelated key."""
    ca_key, client_key, other = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    return Pki(
        ca_pem=_cert("Clinicam test CA", ca_key, "Clinicam test CA", ca_key, ca=True),
        client_cert_pem=_cert("cam-7", client_key, "Clinicam test CA", ca_key, ca=False),
        client_key_pem=_key_pem(client_key),
        other_key_pem=_key_pem(other),
    )


@pytest.fixture(scope="module")
def pki() -> Pki:
    return make_pki()


# ---------------------------------------------------------------- folders


@dataclass
class Card:
    """The boot partition and the system root of one simulated device."""

    boot: Path
    root: Path

    @property
    def toml(self) -> Path:
        return self.boot / "clinicam.toml"

    @property
    def log(self) -> Path:
        return self.boot / "clinicam-provision.log"

    def log_text(self) -> str:
        return self.log.read_bytes().decode("utf-8")

    def put(self, text: str, pki: Pki) -> None:
        self.toml.write_text(text, encoding="utf-8")
        (self.boot / "ca.pem").write_text(pki.ca_pem)


def _make_root(root: Path) -> None:
    for zone in ("Africa/Nairobi", "Europe/Berlin", "UTC"):
        path = root / "usr/share/zoneinfo" / zone
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"TZif2 fake zone data")
    (root / "etc").mkdir(parents=True, exist_ok=True)
    (root / "etc/passwd").write_text(
        f"root:x:0:0:root:/root:/bin/bash\nclinicam:x:{SERVICE_UID}:{SERVICE_GID}::/:/bin/false\n"
    )
    (root / "etc/group").write_text(f"root:x:0:\nclinicam:x:{SERVICE_GID}:\n")
    (root / "etc/clinicam").mkdir()
    (root / "etc/clinicam/appliance.toml").write_text(BASE_APPLIANCE_TOML)
    nm = root / NM_DIR
    nm.mkdir(parents=True)
    (nm / "preconfigured.nmconnection").write_text("[connection]\nid=preconfigured\n")
    (nm / "clinicam-old-net.nmconnection").write_text("[connection]\nid=clinicam-old-net\n")
    (root / "etc/localtime").symlink_to("/usr/share/zoneinfo/UTC")


def _card(base: Path) -> Card:
    card = Card(base / "boot", base / "root")
    card.boot.mkdir(parents=True)
    _make_root(card.root)
    return card


@pytest.fixture
def card(tmp_path: Path) -> Card:
    return _card(tmp_path / "device")


@pytest.fixture
def light() -> Iterator[GpioStatusLight]:
    pins = MockFactory()
    led = GpioStatusLight(22, pin_factory=pins)
    yield led
    led.close()
    pins.close()


Snapshot = dict[str, tuple[int, int, int, bytes | str]]


def snapshot(top: Path) -> Snapshot:
    """Every entry under ``top``: mode, owner and content (or link target)."""
    out: Snapshot = {}
    for path in sorted(top.rglob("*")):
        info = path.lstat()
        if path.is_symlink():
            content: bytes | str = os.readlink(path)
        elif path.is_file():
            content = path.read_bytes()
        else:
            content = "<dir>"
        out[str(path.relative_to(top))] = (info.st_mode, info.st_uid, info.st_gid, content)
    return out


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _keyfile(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(path.read_text())
    return parser


# ---------------------------------------------------------------- a good file


def test_a_good_file_is_applied_and_removed_from_the_card(
    card: Card, pki: Pki, light: GpioStatusLight
) -> None:
    card.put(GOOD, pki)
    result = provision(card.boot, card.root, light=light, now=lambda: NOW)
    assert (result.status, result.device_id, result.exit_code) == ("ok", "cam-7", 0)
    assert light.pattern is LightPattern.PROVISION_OK

    # /etc/clinicam/appliance.toml: merged over the image's file, valid, 0600, service-owned
    conf_path = card.root / "etc/clinicam/appliance.toml"
    assert _mode(conf_path) == 0o600
    config = ApplianceConfig.model_validate(tomllib.loads(conf_path.read_text()))
    assert config.device_id == "cam-7"
    assert config.server.url == "https://clinicam.example.org"
    assert config.server.token.get_secret_value() == TOKEN
    assert (config.mqtt.host, config.mqtt.port, config.mqtt.username) == (
        "broker.example.org",
        8883,
        "cam-7",
    )
    assert config.mqtt.password.get_secret_value() == MQTT_PASSWORD
    assert config.mqtt.tls and config.mqtt.ca_file == Path("/etc/clinicam/tls/ca.pem")
    assert config.mqtt.keepalive_s == 30  # kept from the image's file
    assert config.gpio.led_pin == 22 and config.motion.max_speed_deg_s == 45.0
    assert config.camera.fps == 10 and config.pantilt.pan.centre_deg == 92.0
    assert config.pantilt.tilt.channel == 1  # defaults where nothing was said
    ca = card.root / "etc/clinicam/tls/ca.pem"
    assert ca.read_text() == pki.ca_pem.strip() + "\n" and _mode(ca) == 0o600
    if os.geteuid() == 0:
        for path in (conf_path, ca, ca.parent):
            assert (path.stat().st_uid, path.stat().st_gid) == (SERVICE_UID, SERVICE_GID)

    # NetworkManager keyfiles
    nm = card.root / NM_DIR
    assert sorted(p.name for p in nm.iterdir()) == [
        "clinicam-clinic-wifi.nmconnection",
        "clinicam-guest.nmconnection",
        "preconfigured.nmconnection",  # not ours: untouched
    ]
    clinic = _keyfile(nm / "clinicam-clinic-wifi.nmconnection")
    assert _mode(nm / "clinicam-clinic-wifi.nmconnection") == 0o600
    assert dict(clinic["connection"]) == {
        "id": "clinicam-clinic-wifi",
        "uuid": str(uuid.uuid5(nmconnection.UUID_NAMESPACE, "Clinic WiFi")),
        "type": "wifi",
        "autoconnect": "true",
        "autoconnect-priority": "10",
    }
    assert dict(clinic["wifi"]) == {
        "mode": "infrastructure",
        "ssid": "Clinic WiFi",
        "hidden": "false",
    }
    assert dict(clinic["wifi-security"]) == {"key-mgmt": "wpa-psk", "psk": PSK}
    assert clinic["ipv4"]["method"] == "auto" and clinic["ipv6"]["method"] == "auto"
    guest = _keyfile(nm / "clinicam-guest.nmconnection")
    assert guest["wifi"]["hidden"] == "true" and not guest.has_section("wifi-security")
    country = (card.root / "etc/modprobe.d/clinicam-wifi-country.conf").read_text()
    assert "options cfg80211 ieee80211_regdom=KE" in country

    # time zone
    assert (card.root / "etc/timezone").read_text() == "Africa/Nairobi\n"
    assert os.readlink(card.root / "etc/localtime") == "/usr/share/zoneinfo/Africa/Nairobi"

    # the boot partition: file and certificate gone, a log and the non-secret part left
    assert sorted(p.name for p in card.boot.iterdir()) == [
        "clinicam-provision.log",
        "clinicam.toml.applied",
    ]
    log = card.log_text()
    assert log.startswith("OK — provisioned cam-7 at 2025-03-04 10:30:00 UTC\r\n")
    assert "\n" not in log.replace("\r\n", "")  # Notepad-friendly line ends only
    assert config.language == "en"  # device.language, for the log as for the appliance
    applied = tomllib.loads((card.boot / "clinicam.toml.applied").read_text())
    assert applied["device"] == {"id": "cam-7", "timezone": "Africa/Nairobi", "language": "en"}
    assert [net["ssid"] for net in applied["wifi"]] == ["Clinic WiFi", "Guest"]
    assert applied["removed_files"] == ["clinicam.toml", "ca.pem"]


def test_the_next_boot_has_nothing_to_do_and_keeps_the_log(
    card: Card, pki: Pki, light: GpioStatusLight
) -> None:
    card.put(GOOD, pki)
    assert provision(card.boot, card.root, now=lambda: NOW).status == "ok"
    before_boot, before_root = snapshot(card.boot), snapshot(card.root)
    result = provision(card.boot, card.root, light=light, now=lambda: NOW)
    assert (result.status, result.exit_code) == ("nothing to do", 0)
    assert light.pattern is None  # the LED was not touched
    assert snapshot(card.boot) == before_boot and snapshot(card.root) == before_root


def test_a_windows_saved_file_with_bom_crlf_and_txt_extension_works(card: Card, pki: Pki) -> None:
    (card.boot / "clinicam.toml.txt").write_bytes(
        b"\xef\xbb\xbf" + GOOD.replace("\n", "\r\n").encode()
    )
    (card.boot / "ca.pem").write_text(pki.ca_pem)
    assert provision(card.boot, card.root, now=lambda: NOW).status == "ok"
    assert not (card.boot / "clinicam.toml.txt").exists()


def test_a_fresh_raspberry_pi_gets_the_pi_backend(card: Card, pki: Pki) -> None:
    (card.root / "etc/clinicam/appliance.toml").unlink()  # an image without one
    model = card.root / "proc/device-tree/model"
    model.parent.mkdir(parents=True)
    model.write_bytes(b"Raspberry Pi 4 Model B Rev 1.5\x00")
    card.put(GOOD, pki)
    assert provision(card.boot, card.root, now=lambda: NOW).status == "ok"
    config = tomllib.loads((card.root / "etc/clinicam/appliance.toml").read_text())
    assert (config["backend"], config["state_dir"]) == ("pi", "/var/lib/clinicam")


# ---------------------------------------------------------------- bad files


def _replace(old: str, new: str) -> Callable[[str], str]:
    def edit(text: str) -> str:
        assert old in text
        return text.replace(old, new)

    return edit


BAD_FILES: dict[str, tuple[Callable[[str], str], str]] = {
    "not TOML": (lambda text: "this is [not toml\n", "clinicam.toml: is not valid TOML"),
    "truncated": (lambda text: text[: text.index(TOKEN) + 4], "clinicam.toml: is not valid TOML"),
    "unknown key": (_replace('id = "cam-7"', 'id = "cam-7"\ncolour = "red"'), "device.colour"),
    "bad calibration": (
        _replace("centre_deg = 92.0", "centre_deg = 92.0\nmin_deg = 5.0"),
        "pantilt.pan.min_deg",
    ),
    "missing token": (_replace(f'token = "{TOKEN}"\n', ""), "server.token: missing"),
    "short psk": (_replace(f'psk = "{PSK}"', 'psk = "short"'), "wifi[1].psk: must have 8"),
    "unknown time zone": (
        _replace("Africa/Nairobi", "Africa/Atlantis"),
        "device.timezone: unknown time zone 'Africa/Atlantis'",
    ),
}


@pytest.mark.parametrize("case", BAD_FILES)
def test_a_bad_file_changes_nothing_and_the_fixed_file_works_on_the_next_boot(
    card: Card, pki: Pki, light: GpioStatusLight, case: str
) -> None:
    edit, expected = BAD_FILES[case]
    card.put(edit(GOOD), pki)
    before = snapshot(card.root)

    result = provision(card.boot, card.root, light=light, now=lambda: NOW)

    assert (result.status, result.exit_code) == ("failed", 1)
    log = card.log_text()
    # in English (device.language); a file that is not TOML cannot say: Chinese, then English
    assert "FAILED — nothing was changed" in log.split("\r\n")[:2]
    assert expected in log
    assert "    fix: " in log
    assert snapshot(card.root) == before
    assert card.toml.exists() and (card.boot / "ca.pem").exists()
    shown: LightPattern | None = light.pattern
    assert shown is LightPattern.PROVISION_FAILED

    card.put(GOOD, pki)  # the technician corrects the file; the device starts again
    retry = provision(card.boot, card.root, light=light, now=lambda: NOW)
    assert retry.status == "ok"
    assert card.log_text().startswith("OK — provisioned cam-7")
    assert light.pattern is LightPattern.PROVISION_OK


def test_every_problem_is_reported_at_once(card: Card, pki: Pki) -> None:
    text = _replace(f'token = "{TOKEN}"\n', "")(GOOD)
    text = _replace("centre_deg = 92.0", "min_deg = 5.0")(text)
    text = _replace("fps = 10", "fps = 500")(text)
    card.put(text, pki)
    result = provision(card.boot, card.root, now=lambda: NOW)
    keys = {problem.key for problem in result.problems}
    assert {"server.token", "pantilt.pan.min_deg", "camera.fps"} <= keys


def test_a_missing_certificate_file_is_named(card: Card, pki: Pki) -> None:
    card.put(GOOD, pki)
    (card.boot / "ca.pem").unlink()
    before = snapshot(card.root)
    assert provision(card.boot, card.root, now=lambda: NOW).status == "failed"
    assert "mqtt.ca_cert_pem: file 'ca.pem' is not next to clinicam.toml" in card.log_text()
    assert snapshot(card.root) == before


def test_main_provision_exit_codes(card: Card, pki: Pki) -> None:
    args = ["--boot", str(card.boot), "--root", str(card.root)]
    assert main_provision(args) == 0  # nothing to do
    card.put(BAD_FILES["short psk"][0](GOOD), pki)
    assert main_provision(args) == 1
    card.put(GOOD, pki)
    assert main_provision(args) == 0
    assert not card.toml.exists()


# ---------------------------------------------------------------- client certificates


def _with_client_cert(pki: Pki) -> str:
    return _replace(
        f'password = "{MQTT_PASSWORD}"\n',
        f'client_cert_pem = """\n{pki.client_cert_pem}"""\nclient_key_pem = "client.key"\n',
    )(GOOD)


def test_a_client_key_that_does_not_match_is_refused(card: Card, pki: Pki) -> None:
    card.put(_with_client_cert(pki), pki)
    (card.boot / "client.key").write_text(pki.other_key_pem)
    before = snapshot(card.root)
    assert provision(card.boot, card.root, now=lambda: NOW).status == "failed"
    assert "mqtt.client_key_pem: the private key does not belong" in card.log_text()
    assert snapshot(card.root) == before


def test_a_client_certificate_is_installed_or_clearly_refused(card: Card, pki: Pki) -> None:
    card.put(_with_client_cert(pki), pki)
    (card.boot / "client.key").write_text(pki.client_key_pem)
    before = snapshot(card.root)
    result = provision(card.boot, card.root, now=lambda: NOW)
    if not client_certificates_supported():
        # MqttConfig has no cert_file/key_file yet: refuse rather than install a
        # certificate the MQTT client would ignore.
        assert result.status == "failed"
        assert "mqtt.client_cert_pem: this firmware's MQTT client cannot" in card.log_text()
        assert snapshot(card.root) == before
        return
    assert result.status == "ok"
    key = card.root / "etc/clinicam/tls/client.key"
    assert key.read_text() == pki.client_key_pem.strip() + "\n" and _mode(key) == 0o600
    assert not (card.boot / "client.key").exists()


# ---------------------------------------------------------------- crashes


class PowerCut(BaseException):
    """The process dies here: nothing after this runs."""


@pytest.mark.parametrize("failure", [OSError(28, "No space left on device"), PowerCut()])
def test_a_run_interrupted_after_the_networks_completes_on_the_next_boot(
    tmp_path: Path, pki: Pki, monkeypatch: pytest.MonkeyPatch, failure: BaseException
) -> None:
    clean = _card(tmp_path / "clean")
    clean.put(GOOD, pki)
    assert provision(clean.boot, clean.root, now=lambda: NOW).status == "ok"

    crashed = _card(tmp_path / "crashed")
    crashed.put(GOOD, pki)
    real_symlink = sysfiles.install_symlink
    calls = []

    def fail_once(path: Path, target: str) -> None:
        calls.append(path)
        if len(calls) == 1:
            raise failure
        real_symlink(path, target)

    monkeypatch.setattr(sysfiles, "install_symlink", fail_once)  # the time-zone step
    if isinstance(failure, PowerCut):
        with pytest.raises(PowerCut):
            provision(crashed.boot, crashed.root, now=lambda: NOW)
    else:
        result = provision(crashed.boot, crashed.root, now=lambda: NOW)
        assert (result.status, result.failed_step) == ("failed", "time zone")
        assert crashed.log_text().startswith("FAILED — partly applied")
    assert (crashed.root / NM_DIR / "clinicam-clinic-wifi.nmconnection").exists()
    assert crashed.toml.exists()  # still on the card: the next boot retries

    assert provision(crashed.boot, crashed.root, now=lambda: NOW).status == "ok"
    assert snapshot(crashed.root) == snapshot(clean.root)
    assert snapshot(crashed.boot) == snapshot(clean.boot)


def test_a_certificate_left_on_the_card_by_a_crash_is_removed_at_the_next_boot(
    card: Card, pki: Pki
) -> None:
    card.put(GOOD, pki)
    assert provision(card.boot, card.root, now=lambda: NOW).status == "ok"
    (card.boot / "ca.pem").write_text(pki.ca_pem)  # the crash came before its removal
    assert provision(card.boot, card.root, now=lambda: NOW).status == "nothing to do"
    assert not (card.boot / "ca.pem").exists()


# ---------------------------------------------------------------- secrets


def test_no_secret_reaches_a_log_or_the_applied_file(
    card: Card, pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    bad = _replace("Africa/Nairobi", "Nowhere/Town")(GOOD)
    card.put(_replace(f'psk = "{PSK}"', f'psk = "{PSK * 4}"')(bad), pki)  # too long
    assert provision(card.boot, card.root, now=lambda: NOW).status == "failed"
    failed_log = card.log_text()
    card.put(GOOD, pki)
    assert provision(card.boot, card.root, now=lambda: NOW).status == "ok"

    texts = {
        "failure log": failed_log,
        "success log": card.log_text(),
        "applied file": (card.boot / "clinicam.toml.applied").read_text(),
        "program log": caplog.text,
    }
    for secret in SECRETS:
        for where, text in texts.items():
            assert secret not in text, f"{secret!r} leaked into the {where}"
    stored = (card.root / "etc/clinicam/appliance.toml").read_text()
    assert TOKEN in stored and MQTT_PASSWORD in stored  # they went where they belong
    assert PSK in (card.root / NM_DIR / "clinicam-clinic-wifi.nmconnection").read_text()


# ---------------------------------------------------------------- the technician's guide

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "provisioning.md"


def test_the_example_in_the_technicians_guide_provisions_a_device(card: Card, pki: Pki) -> None:
    text = GUIDE.read_text(encoding="utf-8")
    example = text.split("```toml\n", 1)[1].split("```", 1)[0]
    card.toml.write_text(example, encoding="utf-8")
    (card.boot / "clinicam-ca.pem").write_text(pki.ca_pem)
    result = provision(card.boot, card.root, now=lambda: NOW)
    assert result.status == "ok", card.log_text()
    config = ApplianceConfig.model_validate(
        tomllib.loads((card.root / "etc/clinicam/appliance.toml").read_text())
    )
    assert config.device_id == "hill-clinic-cam-1" and config.pantilt.tilt.invert
    assert len(list((card.root / NM_DIR).glob("clinicam-*.nmconnection"))) == 3


# ---------------------------------------------------------------- keyfile details


def test_unusual_ssids_and_passwords_survive_the_keyfile_format() -> None:
    from firmware.provisioning.schema import WifiNetwork

    net = WifiNetwork.model_validate({"ssid": "Café;Net", "psk": " pass\\word;#x"})
    parser = configparser.ConfigParser(interpolation=None, comment_prefixes=())
    parser.read_string(nmconnection.render(net, "clinicam-cafe-net"))
    ssid = bytes(int(b) for b in parser["wifi"]["ssid"].rstrip(";").split(";")).decode()
    assert ssid == "Café;Net"
    assert parser["wifi-security"]["psk"] == "\\spass\\\\word;#x"  # GKeyFile escapes
    assert nmconnection.ssid_value("1234") == "49;50;51;52;"  # digits alone: byte list
    assert nmconnection.file_names([net, WifiNetwork(ssid="café net", psk=PSK)]) == [
        f"clinicam-caf-net-{nmconnection.connection_uuid('Café;Net')[:8]}.nmconnection",
        f"clinicam-caf-net-{nmconnection.connection_uuid('café net')[:8]}.nmconnection",
    ]

"""Field updates (D5), server side: the release store, the fleet list, update requests.

A real server and database; release wheels are built here with zipfile. The MQTT
tests run a real mosquitto with a bare paho client in the appliance's place that
answers commands the way ``firmware/control/link.py`` does (ack on its own ack topic,
with the command's correlation data). Every refusal checks that nothing changed.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import os
import threading
import zipfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from aiohttp import ClientSession

import server.web.fleet as fleet_views
from clinicam.const import AVAILABILITY_OFFLINE, AVAILABILITY_ONLINE, device_topic
from clinicam.mqtt_config import MqttConfig, make_client, publish_properties
from clinicam.protocol import (
    ApplianceState,
    ApplianceUpdate,
    CommandAck,
    PtzState,
    UpdateStatus,
    parse_command,
)
from clinicam_app.broker import MosquittoBroker
from server.auth import hash_secret
from server.config import ServerConfig
from server.fleet.releases import ReleaseStore
from server.records.blobs import LocalBlobStore
from tests.records.api_helpers import PASSWORD, Site, User, audit_actions, running_site

TOKENS = {"cam-a": "cam-a-device-token", "cam-b": "cam-b-device-token"}
USERS = {"root": "admin", "tech": "technician", "bob": "expert"}


def fleet_config(state_dir: Path, mqtt: dict[str, Any]) -> ServerConfig:
    digest = hash_secret(PASSWORD)
    return ServerConfig.model_validate(
        {
            "state_dir": str(state_dir),
            "database_url": f"sqlite:///{state_dir / 'clinicam.db'}",
            "http": {"cookie_secure": False},
            "mqtt": mqtt,
            "experts": [
                {"username": u, "display_name": u.title(), "password_hash": digest, "role": r}
                for u, r in USERS.items()
            ],
            "devices": [
                {"device_id": d, "clinic": f"Clinic {d}", "token_hash": hash_secret(t)}
                for d, t in TOKENS.items()
            ],
        }
    )


def make_wheel(
    version: str,
    *,
    name: str = "clinicam",
    meta_version: str | None = None,
    purelib: bool = True,
    extra: dict[str, str] | None = None,
    salt: str = "",
) -> bytes:
    """A minimal wheel of ``name`` (by default a valid Clinicam release)."""
    info = f"clinicam-{version}.dist-info"
    files = {
        "clinicam/__init__.py": f'__version__ = "{version}"\n{salt}',
        f"{info}/METADATA": (
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {meta_version or version}\n"
        ),
        f"{info}/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: tests\n"
            f"Root-Is-Purelib: {'true' if purelib else 'false'}\nTag: py3-none-any\n"
        ),
        **(extra or {}),
    }
    record = ""
    for member, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        record += f"{member},sha256={digest.decode()},{len(text.encode())}\n"
    files[f"{info}/RECORD"] = record + f"{info}/RECORD,,\n"
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as wheel:
        for member, text in files.items():
            wheel.writestr(member, text)
    return out.getvalue()


def wheel_file(version: str) -> str:
    return f"clinicam-{version}-py3-none-any.whl"


async def upload(user: User, filename: str, data: Any) -> tuple[int, dict[str, Any]]:
    resp = await user.request("PUT", f"/api/admin/releases/{filename}", data=data)
    return resp.status, await resp.json()


async def listed(user: User) -> list[dict[str, Any]]:
    resp = await user.request("GET", "/api/admin/releases")
    assert resp.status == 200
    releases: list[dict[str, Any]] = (await resp.json())["releases"]
    return releases


def stored_files(site: Site) -> list[str]:
    """Everything in the site's blob store, where the wheels are (temporary files too)."""
    blobs = site.state.records.blobs
    assert isinstance(blobs, LocalBlobStore)
    return sorted(p.name for p in blobs.root.rglob("*") if p.is_file())


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def stored_bytes(site: Site, data: bytes) -> bytes:
    with site.state.records.blobs.open(sha(data)) as stream:
        return stream.read()


def staging_files(site: Site) -> list[str]:
    folder = site.state_dir / "staging"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


async def device_get(site: Site, path: str, token: str | None) -> tuple[int, bytes, str]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    async with ClientSession() as http:
        resp = await http.get(str(site.server.make_url(path)), headers=headers)
        return resp.status, await resp.read(), resp.headers.get("Content-Type", "")


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    """The server with no broker listening: every appliance is offline."""
    config = fleet_config(tmp_path, {"port": 1, "username": "server", "password": "x"})
    async with running_site(config) as running:
        yield running


# ---- the release store ----------------------------------------------------------------------


async def test_upload_list_same_bytes_again_and_a_conflicting_build(site: Site) -> None:
    root = await site.user("root")
    first = make_wheel("1.0")
    status, body = await upload(root, wheel_file("1.0"), first)
    assert status == 201, body
    assert body["version"] == "1.0" and body["size"] == len(first)
    assert body["sha256"] == hashlib.sha256(first).hexdigest()
    assert [r["version"] for r in await listed(root)] == ["1.0"]
    assert stored_bytes(site, first) == first

    status, again = await upload(root, wheel_file("1.0"), first)  # same bytes: idempotent
    assert status == 200 and again == body

    other = make_wheel("1.0", salt="# another build\n")
    status, refused = await upload(root, wheel_file("1.0"), other)
    assert status == 409 and "already stored with other contents" in refused["error"]
    assert await listed(root) == [body]
    assert stored_bytes(site, first) == first
    assert stored_files(site) == [sha(first)] and staging_files(site) == []
    assert audit_actions(site.database, "root") == [
        "login",
        "release.added",
        "release.refused",
    ]


async def test_technicians_upload_and_the_list_is_newest_first(site: Site) -> None:
    tech = await site.user("tech")
    for version in ("1.9", "1.10", "1.2"):
        status, body = await upload(tech, wheel_file(version), make_wheel(version))
        assert status == 201, body
    # PEP 440 order, not text order (which would put 1.9 first) nor upload order
    assert [r["version"] for r in await listed(tech)] == ["1.10", "1.9", "1.2"]
    assert audit_actions(site.database, "tech").count("release.added") == 3


BAD_UPLOADS = {
    "not a zip": (wheel_file("1.0"), b"PK\x03\x04 certainly not a zip", "not a readable wheel"),
    "wrong file name": ("clinicam-1.0.zip", make_wheel("1.0"), "is not a Clinicam release"),
    "other package": (
        "flask-1.0-py3-none-any.whl",
        make_wheel("1.0"),
        "is not a Clinicam release",
    ),
    "metadata version": (
        wheel_file("1.0"),
        make_wheel("1.0", meta_version="1.1"),
        "metadata says clinicam 1.1, its name says clinicam 1.0",
    ),
    "metadata name": (
        wheel_file("1.0"),
        make_wheel("1.0", name="evil"),
        "metadata says evil 1.0",
    ),
    "name of another version": (wheel_file("2.0"), make_wheel("1.0"), "no clinicam-2.0.dist-info"),
    "parent member": (
        wheel_file("1.0"),
        make_wheel("1.0", extra={"../evil.py": "import os\n"}),
        "unsafe file name in the wheel: '../evil.py'",
    ),
    "absolute member": (
        wheel_file("1.0"),
        make_wheel("1.0", extra={"/etc/cron.d/evil": "* * * * * root true\n"}),
        "unsafe file name",
    ),
    "not purelib": (wheel_file("1.0"), make_wheel("1.0", purelib=False), "not a pure-Python"),
    "empty": (wheel_file("1.0"), b"", "empty"),
}


@pytest.mark.parametrize("case", list(BAD_UPLOADS))
async def test_bad_uploads_are_refused_with_a_reason_and_nothing_is_kept(
    site: Site, case: str
) -> None:
    root = await site.user("root")
    filename, data, reason = BAD_UPLOADS[case]
    status, body = await upload(root, filename, data)
    assert status == 422, body
    assert reason in body["error"]
    assert await listed(root) == []
    assert stored_files(site) == [] and staging_files(site) == []
    assert "release.refused" in audit_actions(site.database, "root")
    assert "release.added" not in audit_actions(site.database)


async def test_a_path_in_the_file_name_is_refused(site: Site) -> None:
    root = await site.user("root")
    for name in ("..%2F" + wheel_file("1.0"), wheel_file("1.0") + "%0A", "%2E%2E"):
        resp = await root.request("PUT", f"/api/admin/releases/{name}", data=make_wheel("1.0"))
        assert resp.status in (404, 422), name
    assert await listed(root) == []
    assert stored_files(site) == [] and staging_files(site) == []
    assert not (site.state_dir / wheel_file("1.0")).exists()


async def test_oversized_release_is_413_while_streaming(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fleet_views, "MAX_RELEASE_BYTES", 1024 * 1024)
    root = await site.user("root")
    big = make_wheel("1.0", extra={"clinicam/blob.bin": os.urandom(1536 * 1024).hex()})
    status, body = await upload(root, wheel_file("1.0"), big)  # refused from Content-Length
    assert status == 413 and "1 MB" in body["error"]

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: cut off mid-stream
        for _ in range(32):
            yield os.urandom(64 * 1024)

    status, body = await upload(root, wheel_file("1.0"), chunks())
    assert status == 413 and "1 MB" in body["error"]
    assert await listed(root) == []
    assert stored_files(site) == [] and staging_files(site) == []
    assert audit_actions(site.database, "root").count("release.refused") == 2


async def test_experts_may_not_touch_releases_or_appliances(site: Site) -> None:
    root, bob, tech = await site.user("root"), await site.user("bob"), await site.user("tech")
    wheel = make_wheel("1.0")
    status, _ = await upload(root, wheel_file("1.0"), wheel)
    assert status == 201
    status, body = await upload(bob, wheel_file("1.1"), make_wheel("1.1"))
    assert status == 403 and "admin or technician" in body["error"]
    assert (await bob.request("GET", "/api/admin/releases")).status == 403
    assert (await bob.request("GET", "/api/admin/appliances")).status == 403
    resp = await bob.request("POST", "/api/admin/appliances/cam-a/update", json={"release": "1.0"})
    assert resp.status == 403
    # removing a release is for admins only
    resp = await tech.request("DELETE", "/api/admin/releases/1.0")
    assert resp.status == 403 and "admin" in (await resp.json())["error"]
    assert [r["version"] for r in await listed(root)] == ["1.0"]
    assert stored_files(site) == [sha(wheel)] and staging_files(site) == []
    # a PUT needs the session's CSRF token like every other change
    resp = await root.request(
        "PUT", f"/api/admin/releases/{wheel_file('1.1')}", data=make_wheel("1.1"),
        headers={"X-CSRF-Token": "wrong"},
    )  # fmt: skip
    assert resp.status == 403 and "CSRF" in (await resp.json())["error"]
    assert stored_files(site) == [sha(wheel)]


async def test_remove_a_release(site: Site) -> None:
    root = await site.user("root")
    kept = make_wheel("1.1")
    await upload(root, wheel_file("1.0"), make_wheel("1.0"))
    await upload(root, wheel_file("1.1"), kept)
    resp = await root.request("DELETE", "/api/admin/releases/1.0")
    assert resp.status == 200 and (await resp.json())["version"] == "1.0"
    assert [r["version"] for r in await listed(root)] == ["1.1"]
    assert stored_files(site) == [sha(kept)]  # the removed wheel's blob went with it
    for version in ("1.0", "9.9", "..", "latest"):
        resp = await root.request("DELETE", f"/api/admin/releases/{version}")
        assert resp.status == 404, version
    assert stored_files(site) == [sha(kept)]
    assert audit_actions(site.database, "root").count("release.removed") == 1


# ---- the fleet, without a broker --------------------------------------------------------------


async def test_appliances_are_listed_and_offline_ones_get_no_command(site: Site) -> None:
    tech = await site.user("tech")
    resp = await tech.request("GET", "/api/admin/appliances")
    assert resp.status == 200
    rows = {row["device_id"]: row for row in (await resp.json())["appliances"]}
    assert sorted(rows) == ["cam-a", "cam-b"]
    fleet_keys = ("device_id", "clinic", "online", "version", "update", "model_version")
    assert {key: rows["cam-a"][key] for key in fleet_keys} == {
        "device_id": "cam-a",
        "clinic": "Clinic cam-a",
        "online": False,
        "version": None,
        "update": None,
        "model_version": None,
    }
    # …with what enrolment knows (a device from the configuration file was imported)
    assert rows["cam-a"]["name"] == "cam-a" and rows["cam-a"]["enrolled_by"] == "config"
    await upload(tech, wheel_file("1.0"), make_wheel("1.0"))

    async def ask(device: str, body: Any) -> tuple[int, str]:
        resp = await tech.request("POST", f"/api/admin/appliances/{device}/update", json=body)
        return resp.status, (await resp.json()).get("error", "")

    assert await ask("cam-a", {"release": "1.0"}) == (503, "appliance cam-a is offline")
    status, error = await ask("cam-a", {"release": "2.0"})
    assert status == 404 and "release 2.0 is not in the release store" in error
    status, error = await ask("cam-z", {"release": "1.0"})
    assert status == 404 and "no such appliance" in error
    status, error = await ask("cam-a", {"release": "../1.0"})
    assert status == 400 and "release" in error
    status, error = await ask("cam-a", {"release": "1.0", "url": "http://evil/"})
    assert status == 400 and "url" in error
    actions = audit_actions(site.database, "tech")
    assert actions.count("appliance.update.refused") == 1
    assert "appliance.update.requested" not in actions


# ---- the appliance's download -----------------------------------------------------------------


async def test_appliance_downloads_the_exact_wheel_with_its_own_token(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = await site.user("root")
    wheel = make_wheel("1.0")
    await upload(root, wheel_file("1.0"), wheel)
    path = "/api/appliances/cam-a/releases/1.0"
    status, data, content_type = await device_get(site, path, TOKENS["cam-a"])
    assert status == 200 and data == wheel and content_type == "application/octet-stream"
    assert (await device_get(site, path, None))[0] == 401
    assert (await device_get(site, path, TOKENS["cam-b"]))[0] == 401  # not its own id
    assert (await device_get(site, path, "guess"))[0] == 401
    status, _, _ = await device_get(site, "/api/appliances/cam-a/releases/2.0", TOKENS["cam-a"])
    assert status == 404
    assert "release.downloaded" in audit_actions(site.database, "device:cam-a")

    looked_up: list[str] = []
    real_get = ReleaseStore.get

    def spy(store: ReleaseStore, version: str) -> Any:
        looked_up.append(version)
        return real_get(store, version)

    monkeypatch.setattr(ReleaseStore, "get", spy)
    for version in ("..", "latest", "1.0%0A", "1.0%2F..%2F..%2Fsessions.json", "1" * 41, ".1"):
        status, data, _ = await device_get(
            site, f"/api/appliances/cam-a/releases/{version}", TOKENS["cam-a"]
        )
        assert status in (400, 404) and data != wheel, version
        if version != "..":  # (the client resolves that one to another path itself)
            assert b"not a release version" in data, version
    assert looked_up == []  # refused before the store (and the disk) was asked
    status, _, _ = await device_get(site, path, TOKENS["cam-a"])
    assert status == 200 and looked_up == ["1.0"]


# ---- update requests over a real broker --------------------------------------------------------


class BareAppliance:
    """A paho client in cam-a's place: announces itself and acks each command."""

    def __init__(self, port: int, *, online: bool = True) -> None:
        self.commands: list[bytes] = []
        self.ok = True
        self.error: str | None = None
        self._online = online
        self._subscribed = threading.Event()
        config = MqttConfig.model_validate(
            {"port": port, "username": "cam-a", "password": "cam-a-pw"}
        )
        client = make_client(config, "test-cam-a")
        client.on_connect = self._on_connect
        client.on_subscribe = lambda *args: self._subscribed.set()
        client.on_message = self._on_message
        self._client = client
        self._port = port

    def start(self, state: ApplianceState | None = None) -> None:
        self._state = state
        self._client.connect("127.0.0.1", self._port)
        self._client.loop_start()
        assert self._subscribed.wait(10), "the bare appliance did not subscribe"

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def _topic(self, leaf: str) -> str:
        return device_topic("cam-a", leaf)

    def _on_connect(self, client: mqtt.Client, *args: Any) -> None:
        client.subscribe(self._topic("cmd"), qos=1)
        availability = AVAILABILITY_ONLINE if self._online else AVAILABILITY_OFFLINE
        client.publish(self._topic("availability"), availability, qos=1, retain=True)
        if self._state is not None:
            client.publish(self._topic("state"), self._state.model_dump_json(), retain=True)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        self.commands.append(bytes(msg.payload))
        command = parse_command(bytes(msg.payload))
        ack = CommandAck(ok=self.ok, id=command.id, op=command.op, error=self.error)
        correlation = getattr(msg.properties, "CorrelationData", None)
        client.publish(
            self._topic("ack"),
            ack.model_dump_json(exclude_none=True),
            qos=1,
            properties=publish_properties(correlation=correlation),
        )


@pytest.fixture
async def broker_site(broker: MosquittoBroker, tmp_path: Path) -> AsyncIterator[Site]:
    mqtt_config = {"port": broker.port, "username": "server", "password": "server-pw"}
    async with running_site(fleet_config(tmp_path, mqtt_config)) as running:
        await until(lambda: running.state.appliances.connected, "the server's broker link")
        yield running


@pytest.fixture
def appliance(broker: MosquittoBroker) -> Iterator[BareAppliance]:
    instance = BareAppliance(broker.port)
    yield instance
    instance.stop()


async def until(predicate: Any, what: str, timeout_s: float = 10.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not predicate():
            await asyncio.sleep(0.05)


async def test_update_request_sends_the_command_and_the_ack_decides(
    broker_site: Site, appliance: BareAppliance
) -> None:
    site = broker_site
    status_now = UpdateStatus(release="0.9", state="updated", at="2025-01-01T00:00:00+00:00")
    appliance.start(ApplianceState(ptz=PtzState(pan=0, tilt=0), version="0.9", update=status_now))
    await until(lambda: "cam-a" in site.state.appliances.states, "cam-a's state")
    tech = await site.user("tech")
    rows = (await (await tech.request("GET", "/api/admin/appliances")).json())["appliances"]
    row = next(r for r in rows if r["device_id"] == "cam-a")
    assert row["online"] is True and row["version"] == "0.9"
    assert row["update"]["state"] == "updated" and row["update"]["release"] == "0.9"

    wheel = make_wheel("1.0")
    await upload(tech, wheel_file("1.0"), wheel)
    resp = await tech.request("POST", "/api/admin/appliances/cam-a/update", json={"release": "1.0"})
    assert resp.status == 202, await resp.text()
    assert await resp.json() == {"status": "requested", "release": "1.0", "device": "cam-a"}
    assert len(appliance.commands) == 1
    command = parse_command(appliance.commands[0])
    assert isinstance(command, ApplianceUpdate)
    assert command.release == "1.0" and command.requested_by == "tech"
    assert command.sha256 == hashlib.sha256(wheel).hexdigest() and command.size == len(wheel)
    # what the appliance does next: download it with its own token; the bytes match
    status, data, _ = await device_get(
        site, f"/api/appliances/cam-a/releases/{command.release}", TOKENS["cam-a"]
    )
    assert status == 200 and hashlib.sha256(data).hexdigest() == command.sha256

    appliance.ok, appliance.error = False, "an update to 0.9 is still running"
    resp = await tech.request("POST", "/api/admin/appliances/cam-a/update", json={"release": "1.0"})
    assert resp.status == 409
    assert "an update to 0.9 is still running" in (await resp.json())["error"]
    assert len(appliance.commands) == 2
    actions = audit_actions(site.database, "tech")
    assert actions.count("appliance.update.requested") == 1
    assert actions.count("appliance.update.refused") == 1


async def test_offline_appliance_gets_no_command(broker: MosquittoBroker, tmp_path: Path) -> None:
    mqtt_config = {"port": broker.port, "username": "server", "password": "server-pw"}
    offline = BareAppliance(broker.port, online=False)
    async with running_site(fleet_config(tmp_path, mqtt_config)) as site:
        await until(lambda: site.state.appliances.connected, "the server's broker link")
        offline.start()
        try:
            await until(lambda: "cam-a" in site.state.appliances.available, "cam-a's availability")
            root = await site.user("root")
            await upload(root, wheel_file("1.0"), make_wheel("1.0"))
            resp = await root.request(
                "POST", "/api/admin/appliances/cam-a/update", json={"release": "1.0"}
            )
            assert resp.status == 503
            assert (await resp.json())["error"] == "appliance cam-a is offline"
            await asyncio.sleep(0.5)  # a command, had one been sent, would have arrived
            assert offline.commands == []
        finally:
            offline.stop()

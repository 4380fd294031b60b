"""Server-triggered update, appliance half and root half, against a real HTTP server.

The appliance's :class:`UpdateRequester` downloads a release wheel from an aiohttp
server (the same URL and token scheme as the Clinicam server), checks it and writes
``update-request.json``; then ``clinicam appliance update --request`` (what
``clinicam-update.service`` runs as root) installs it with pip into a new venv,
restarts the pretend service and health-checks it, exactly as in ``test_update.py``.
The result file it leaves is what the appliance then reports.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import shlex
import sys
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from clinicam.protocol import ApplianceUpdate, CommandRejected, parse_command
from clinicam.release import wheel_name
from clinicam_app.update import main_update
from firmware.config import ServerLinkConfig
from firmware.control.router import CommandFailed
from firmware.control.update_request import REQUEST_FILE, RESULT_FILE, UpdateRequester
from tests.clinicam.test_update import FAKE_PROGRAM, ROOT, Appliance

TOKEN = "device-token-for-updates"
DEVICE = "appliance-1"


def release_wheel(version: str, mode: str = "good", requires: tuple[str, ...] = ()) -> bytes:
    """A pure-Python wheel of 'clinicam' whose script behaves as ``mode`` says."""
    info = f"clinicam-{version}.dist-info"
    script = FAKE_PROGRAM.format(python="python", root=str(ROOT), mode=mode)
    metadata = f"Metadata-Version: 2.1\nName: clinicam\nVersion: {version}\n" + "".join(
        f"Requires-Dist: {r}\n" for r in requires
    )
    files = {
        "clinicam_release_marker.py": f"VERSION = {version!r}\n",
        f"clinicam-{version}.data/scripts/clinicam-fake": script,
        f"{info}/METADATA": metadata,
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
    }
    return _zip(files, info)


def dependency_wheel(name: str) -> bytes:
    """A pure-Python wheel of a small dependency ``name`` (version 1.0)."""
    info = f"{name}-1.0.dist-info"
    files = {
        f"{name}.py": "READY = True\n",
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
    }
    return _zip(files, info)


def _zip(files: dict[str, str], info: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as wheel:
        record = []
        for name, text in files.items():
            member = zipfile.ZipInfo(name)
            member.external_attr = (0o100755 if "/scripts/" in name else 0o100644) << 16
            wheel.writestr(member, text)
            record.append(f"{name},,")
        wheel.writestr(f"{info}/RECORD", "\n".join([*record, f"{info}/RECORD,,"]) + "\n")
    return buf.getvalue()


class ReleaseServer:
    """Serves wheels at /api/appliances/<device>/releases/<version> to the device token."""

    def __init__(self) -> None:
        self.wheels: dict[str, bytes] = {}
        self.app = web.Application()
        self.app.router.add_get("/api/appliances/{device}/releases/{version}", self._get)

    async def _get(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return web.Response(status=401, text="no such device token")
        body = self.wheels.get(request.match_info["version"])
        if request.match_info["device"] != DEVICE or body is None:
            return web.Response(status=404, text="no such release")
        return web.Response(body=body, content_type="application/octet-stream")


@pytest.fixture
async def release_server() -> AsyncIterator[tuple[ReleaseServer, str]]:
    server = ReleaseServer()
    test_server = TestServer(server.app, host="127.0.0.1")
    await test_server.start_server()
    try:
        yield server, str(test_server.make_url("")).rstrip("/")
    finally:
        await test_server.close()


def command(version: str, body: bytes, **changes: object) -> ApplianceUpdate:
    fields: dict[str, object] = {
        "id": f"upd-{version}",
        "release": version,
        "sha256": hashlib.sha256(body).hexdigest(),
        "size": len(body),
        "requested_by": "admin",
    }
    return ApplianceUpdate.model_validate(fields | changes)


async def fetched(requester: UpdateRequester, cmd: ApplianceUpdate) -> str:
    """Run the command and wait for the download to end; the state it ended in."""
    assert await requester.start(cmd) == {"accepted": True, "release": cmd.release}
    async with asyncio.timeout(30):
        while (status := requester.status()) is not None and status.state == "downloading":
            await asyncio.sleep(0.02)
    assert status is not None
    return status.state


def requester_for(url: str, state: Path) -> UpdateRequester:
    requester = UpdateRequester(ServerLinkConfig(url=url, token=TOKEN), DEVICE, state)
    requester.retry_pause_s = 0.01
    return requester


def root_update(appliance: Appliance, request: Path) -> int:
    """What clinicam-update.service runs (as root in the field; as the tester here)."""
    systemctl = f"{shlex.quote(sys.executable)} {shlex.quote(str(appliance.systemctl))} restart "
    return main_update(
        [
            "--request",
            str(request),
            "--root",
            str(appliance.root),
            "--restart-command",
            systemctl + "{service}",
            "--health-file",
            str(appliance.health),
            "--health-timeout",
            "20",
            "--settle",
            "0.6",
            "--log",
            str(appliance.log),
            "--config",
            str(appliance.root / "no-config.toml"),
            "--extras",
            "",
        ]
    )


def state_files(state: Path) -> list[str]:
    return sorted(str(p.relative_to(state)) for p in state.rglob("*"))


async def test_a_requested_release_is_downloaded_installed_and_reported(
    appliance: Appliance, release_server: tuple[ReleaseServer, str], tmp_path: Path
) -> None:
    server, url = release_server
    assert appliance.update(appliance.release("1.0")) == 0  # the release running now
    good, bad = release_wheel("2.0"), release_wheel("2.1", "exits")
    server.wheels.update({"2.0": good, "2.1": bad})
    state = tmp_path / "var-lib-clinicam"
    requester = requester_for(url, state)

    assert await fetched(requester, command("2.0", good)) == "waiting"
    request = json.loads((state / REQUEST_FILE).read_text())
    assert request["wheel"] == wheel_name("2.0") and request["requested_by"] == "admin"
    assert (state / "updates" / wheel_name("2.0")).read_bytes() == good
    with pytest.raises(CommandFailed, match="already waiting"):
        await requester.start(command("2.1", bad))

    code = await asyncio.to_thread(root_update, appliance, state / REQUEST_FILE)
    assert code == 0
    assert appliance.link("current") == "releases/2.0"
    assert appliance.running_release() == "2.0"
    assert not (state / REQUEST_FILE).exists()  # consumed
    status = requester.status()
    assert status is not None and (status.release, status.state) == ("2.0", "updated")

    # A release that does not come up is rolled back, and the appliance says so.
    assert await fetched(requester, command("2.1", bad)) == "waiting"
    assert not (state / "updates" / wheel_name("2.0")).exists()  # only the one to install
    code = await asyncio.to_thread(root_update, appliance, state / REQUEST_FILE)
    assert code == 1
    assert appliance.link("current") == "releases/2.0"
    assert appliance.running_release() == "2.0"
    status = requester.status()
    assert status is not None and (status.release, status.state) == ("2.1", "rolled back")


async def test_unchanged_dependencies_come_from_the_running_release_not_the_network(
    appliance: Appliance,
    release_server: tuple[ReleaseServer, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A clinic that reaches only its server can still update (pip gets no index here)."""
    server, url = release_server
    wheelhouse, empty = tmp_path / "wheelhouse", tmp_path / "no-wheels"
    wheelhouse.mkdir()
    empty.mkdir()
    (wheelhouse / "clinicam_test_dep-1.0-py3-none-any.whl").write_bytes(
        dependency_wheel("clinicam_test_dep")
    )
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheelhouse))
    assert appliance.update(appliance.release("1.0")) == 0
    state = tmp_path / "var-lib-clinicam"
    requester = requester_for(url, state)
    wheels = {
        "2.0": release_wheel("2.0", requires=("clinicam_test_dep",)),
        "2.1": release_wheel("2.1", requires=("clinicam_test_dep",)),
        "2.2": release_wheel("2.2", requires=("clinicam_test_dep", "clinicam_other_dep")),
    }
    server.wheels.update(wheels)

    def site(release: str) -> Path:
        return next((appliance.root / "releases" / release / "venv").glob("lib/*/site-packages"))

    # 2.0 needs the dependency: it comes from the wheelhouse (the "index").
    assert await fetched(requester, command("2.0", wheels["2.0"])) == "waiting"
    assert await asyncio.to_thread(root_update, appliance, state / REQUEST_FILE) == 0
    assert (site("2.0") / "clinicam_test_dep.py").exists()

    # No index at all now: 2.1 needs nothing new, so it installs from what 2.0 has.
    monkeypatch.setenv("PIP_FIND_LINKS", str(empty))
    assert await fetched(requester, command("2.1", wheels["2.1"])) == "waiting"
    assert await asyncio.to_thread(root_update, appliance, state / REQUEST_FILE) == 0
    assert appliance.running_release() == "2.1"
    assert (site("2.1") / "clinicam_test_dep.py").exists()
    assert "'2.1'" in (site("2.1") / "clinicam_release_marker.py").read_text()
    assert [p.name for p in site("2.1").glob("clinicam-*.dist-info")] == ["clinicam-2.1.dist-info"]

    # ...and a release with a new dependency cannot: install failed, 2.1 keeps running.
    assert await fetched(requester, command("2.2", wheels["2.2"])) == "waiting"
    assert await asyncio.to_thread(root_update, appliance, state / REQUEST_FILE) == 1
    assert appliance.running_release() == "2.1"
    status = requester.status()
    assert status is not None and status.state == "failed"
    assert status.detail.startswith("install failed"), status.detail


@pytest.mark.parametrize(
    "damage",
    ["tampered after the check", "symlinked wheel", "path in the request", "not json"],
)
async def test_a_bad_request_installs_nothing_and_is_not_retried(
    appliance: Appliance, release_server: tuple[ReleaseServer, str], tmp_path: Path, damage: str
) -> None:
    server, url = release_server
    assert appliance.update(appliance.release("1.0")) == 0
    wheel = release_wheel("3.0")
    server.wheels["3.0"] = wheel
    state = tmp_path / "var-lib-clinicam"
    requester = requester_for(url, state)
    assert await fetched(requester, command("3.0", wheel)) == "waiting"
    downloaded = state / "updates" / wheel_name("3.0")
    request = state / REQUEST_FILE
    if damage == "tampered after the check":
        downloaded.write_bytes(wheel[:-10] + b"0123456789")
    elif damage == "symlinked wheel":
        elsewhere = tmp_path / "elsewhere.whl"
        elsewhere.write_bytes(wheel)
        downloaded.unlink()
        downloaded.symlink_to(elsewhere)
    elif damage == "path in the request":
        body = json.loads(request.read_text())
        request.write_text(json.dumps(body | {"wheel": "../../etc/evil.whl"}))
    else:
        request.write_text("{not json")
    releases_before = sorted(os.listdir(appliance.root / "releases"))

    code = await asyncio.to_thread(root_update, appliance, request)

    assert code in (1, 2)
    assert appliance.link("current") == "releases/1.0"
    assert appliance.running_release() == "1.0"
    assert sorted(os.listdir(appliance.root / "releases")) == releases_before
    assert not request.exists()  # consumed: the path unit will not start it again
    result = json.loads((state / RESULT_FILE).read_text())
    assert result["state"] == "failed" and result["detail"]
    status = requester.status()
    assert status is not None and status.state == "failed"
    # and the updater with no request does nothing
    assert await asyncio.to_thread(root_update, appliance, request) == 0


@pytest.mark.parametrize(
    ("what", "changes", "served"),
    [
        ("sha256 differs", {"sha256": "0" * 64}, None),
        ("server sends more", {"size": 100}, None),
        ("not a wheel", {}, b"PK\x03\x04 this is not a zip at all"),
        ("no such release", {"release": "9.9"}, None),
    ],
)
async def test_a_download_that_is_not_the_release_leaves_nothing(
    release_server: tuple[ReleaseServer, str],
    tmp_path: Path,
    what: str,
    changes: dict[str, object],
    served: bytes | None,
) -> None:
    server, url = release_server
    wheel = served if served is not None else release_wheel("4.0")
    server.wheels["4.0"] = wheel
    state = tmp_path / "state"
    requester = requester_for(url, state)
    cmd = command("4.0", wheel, **changes)
    assert await fetched(requester, cmd) == "failed", what
    assert state_files(state) == ["updates"]  # no request, no wheel, no partial file
    status = requester.status()
    assert status is not None and status.detail.startswith("download:")


async def test_the_running_release_and_malformed_commands_are_refused(tmp_path: Path) -> None:
    from clinicam import __version__

    requester = requester_for("http://127.0.0.1:9", tmp_path / "state")
    with pytest.raises(CommandFailed, match="already running"):
        await requester.start(command(__version__, b"x"))
    good = {"op": "appliance.update", "id": "u1", "release": "2.0", "sha256": "a" * 64, "size": 1}
    parse_command(json.dumps(good).encode())
    for bad in (
        {"release": "../../etc"},
        {"release": "2.0; rm -rf /"},
        {"sha256": "A" * 64},
        {"size": 0},
        {"size": 10**12},
        {"url": "http://elsewhere.example/evil.whl"},
    ):
        with pytest.raises(CommandRejected):
            parse_command(json.dumps(good | bad).encode())
    assert not (tmp_path / "state").exists()

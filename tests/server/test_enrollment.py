"""Appliances enrolled from /admin (issue 19, item 3): the enrollment desk on real SQLite.

The bundle is what ``clinicam appliance provision`` reads (checked by the appliance's own
schema); its token is checked by the server's real device-token check; only hashes are
stored; each change commits with its audit entry or not at all.
"""

from __future__ import annotations

import asyncio
import tomllib
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from clinicam import broker_files
from firmware.provisioning.schema import ProvisioningFile
from server.audit.log import AuditEntry
from server.audit.trail import AuditTrail
from server.auth import LoginThrottle
from server.config import ServerConfig
from server.db import Database, open_database
from server.device_tokens import DeviceRefused, DeviceTokens
from server.directory.book import Directory
from server.directory.enrollment import EnrollmentDesk, device_id_for
from server.directory.models import ApplianceRow
from server.domain_errors import Conflict, Invalid, NotFound
from server.slow_checks import SlowChecks

SEEN = "http://clinicam.example.org:8080"


class AuditDown(Exception):
    """The audit log cannot be written."""


class World:
    def __init__(self, tmp_path: Path, **config: Any) -> None:
        raw: dict[str, Any] = {
            "state_dir": str(tmp_path / "state"),
            "language": "zh-CN",
            "mqtt": {"host": "127.0.0.1", "port": 1883, "username": "server", "password": "pw"},
        }
        raw.update(config)
        self.config = ServerConfig.model_validate(raw)
        self.database: Database = open_database(f"sqlite:///{tmp_path / 'db.sqlite'}")
        self.audit = AuditTrail(self.database)
        self.directory = Directory(self.database)
        self.desk = EnrollmentDesk(self.config, self.database, self.audit, self.directory)
        self.tokens = DeviceTokens(
            self.config, self.directory, SlowChecks(), LoginThrottle(max_failures=5)
        )

    def actions(self) -> list[tuple[str, str, str]]:
        with self.database.session() as session:
            return [
                (e.actor, e.action, e.target)
                for e in session.scalars(select(AuditEntry).order_by(AuditEntry.seq))
            ]

    def row(self, device_id: str) -> ApplianceRow | None:
        with self.database.session() as session:
            return session.get(ApplianceRow, device_id)

    async def token_works(self, device_id: str, token: str) -> bool:
        try:
            await self.tokens.authenticate(device_id, token, "127.0.0.1")
        except DeviceRefused:
            return False
        return True


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def _bundle(text: str) -> tuple[ProvisioningFile, dict[str, Any]]:
    raw = tomllib.loads(text)
    return ProvisioningFile.model_validate(raw, context={"root": Path("/")}), raw


async def test_enrolment_gives_a_bundle_the_appliance_reads_and_keeps_only_hashes(
    world: World,
) -> None:
    enrolment = await world.desk.enrol(
        "tech", "X-ray Room 1", "Hill Clinic", "Room 4", seen_url=SEEN
    )
    assert enrolment.device_id == "x-ray-room-1"
    spec, raw = _bundle(enrolment.bundle)
    assert spec.device.id == "x-ray-room-1" and spec.device.language == "zh-CN"
    assert enrolment.bundle.startswith(
        "# Clinicam 设备配置文件：X-ray Room 1（Hill Clinic, Room 4）"
    )
    assert spec.server.url == SEEN
    assert (spec.mqtt.host, spec.mqtt.port, spec.mqtt.username) == (
        "clinicam.example.org",  # the server's broker is loopback: the address the admin used
        1883,
        "x-ray-room-1",
    )
    token = spec.server.token.get_secret_value()
    password = raw["mqtt"]["password"]
    assert await world.token_works("x-ray-room-1", token)
    assert not await world.token_works("x-ray-room-1", token + "x")
    row = world.row("x-ray-room-1")
    assert row is not None and (row.name, row.clinic, row.room) == (
        "X-ray Room 1",
        "Hill Clinic",
        "Room 4",
    )
    assert token not in row.token_hash and row.broker_password_hash is not None
    assert broker_files.password_matches(row.broker_password_hash, password)
    assert password not in row.broker_password_hash
    assert world.actions() == [("tech", "device.enroll", "device:x-ray-room-1")]
    appliance = world.directory.device("x-ray-room-1")
    assert appliance is not None and appliance.clinic == "Hill Clinic"
    listed = [(a.device_id, a.name, a.room, a.enrolled_by) for a in world.desk.listing()]
    assert listed == [("x-ray-room-1", "X-ray Room 1", "Room 4", "tech")]


async def test_configured_addresses_win_over_the_one_the_admin_used(tmp_path: Path) -> None:
    world = World(
        tmp_path,
        enrollment={
            "server_url": "https://clinicam.county.example/",
            "broker_host": "mqtt.county.example",
            "broker_port": 8883,
        },
    )
    enrolment = await world.desk.enrol("tech", "Ward", "Vale Clinic", None, seen_url=SEEN)
    spec, _raw = _bundle(enrolment.bundle)
    assert spec.server.url == "https://clinicam.county.example"
    assert (spec.mqtt.host, spec.mqtt.port) == ("mqtt.county.example", 8883)


async def test_device_ids_come_from_names_and_never_repeat(world: World) -> None:
    first = await world.desk.enrol("tech", "Ward 3", "Hill Clinic", None, seen_url=SEEN)
    second = await world.desk.enrol("tech", "ward  3!", "Vale Clinic", None, seen_url=SEEN)
    chinese = await world.desk.enrol("tech", "三号诊室", "Hill Clinic", None, seen_url=SEEN)
    assert [first.device_id, second.device_id, chinese.device_id] == [
        "ward-3",
        "ward-3-2",
        "appliance-1",
    ]
    await world.desk.revoke("tech", "ward-3")
    again = await world.desk.enrol("tech", "Ward 3", "Hill Clinic", None, seen_url=SEEN)
    assert again.device_id == "ward-3-3"  # a revoked id is never given out again
    assert device_id_for("  --  ", set()) == "appliance-1"


async def test_bad_names_are_refused_and_change_nothing(world: World) -> None:
    for name, clinic in (("   ", "Hill Clinic"), ("Ward", ""), ("x" * 81, "Hill"), ("a\x00b", "H")):
        with pytest.raises(Invalid):
            await world.desk.enrol("tech", name, clinic, None, seen_url=SEEN)
    assert world.actions() == [] and world.desk.listing() == []


async def test_revoked_appliance_token_stops_at_once_and_it_leaves_the_directory(
    world: World,
) -> None:
    enrolment = await world.desk.enrol("tech", "Ward", "Hill Clinic", None, seen_url=SEEN)
    token = _bundle(enrolment.bundle)[0].server.token.get_secret_value()
    assert await world.token_works("ward", token)
    outcome = await world.desk.revoke("admin", "ward")
    assert outcome.state == "manual"  # no [broker_admin]: the broker is the admin's to update
    assert not await world.token_works("ward", token)
    assert world.directory.device("ward") is None and world.desk.listing() == []
    row = world.row("ward")
    assert row is not None and row.revoked and row.broker_password_hash is None
    assert world.actions()[-1] == ("admin", "device.revoke", "device:ward")
    with pytest.raises(Conflict):
        await world.desk.revoke("admin", "ward")
    with pytest.raises(NotFound):
        await world.desk.revoke("admin", "nope")
    with pytest.raises(Conflict):
        await world.desk.rotate("admin", "ward", seen_url=SEEN)


async def test_rotation_gives_new_credentials_and_the_old_ones_stop(world: World) -> None:
    old = await world.desk.enrol("tech", "Ward", "Hill Clinic", None, seen_url=SEEN)
    old_spec, old_raw = _bundle(old.bundle)
    new = await world.desk.rotate("tech", "ward", seen_url=SEEN)
    new_spec, new_raw = _bundle(new.bundle)
    old_token = old_spec.server.token.get_secret_value()
    new_token = new_spec.server.token.get_secret_value()
    assert new_token != old_token and new_raw["mqtt"]["password"] != old_raw["mqtt"]["password"]
    assert not await world.token_works("ward", old_token)
    assert await world.token_works("ward", new_token)
    row = world.row("ward")
    assert row is not None and row.broker_password_hash is not None
    assert broker_files.password_matches(row.broker_password_hash, new_raw["mqtt"]["password"])
    assert not broker_files.password_matches(row.broker_password_hash, old_raw["mqtt"]["password"])
    assert world.actions()[-1] == ("tech", "device.rotate", "device:ward")


@pytest.mark.parametrize("change", ["enrol", "revoke", "rotate"])
async def test_a_change_commits_with_its_audit_entry_or_not_at_all(
    world: World, change: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    enrolment = await world.desk.enrol("tech", "Ward", "Hill Clinic", None, seen_url=SEEN)
    token = _bundle(enrolment.bundle)[0].server.token.get_secret_value()
    before = world.row("ward")
    assert before is not None

    def audit_down(*args: Any, **kwargs: Any) -> None:
        raise AuditDown("audit log unavailable")

    monkeypatch.setattr(world.audit, "write", audit_down)
    with pytest.raises(AuditDown):
        if change == "enrol":
            await world.desk.enrol("tech", "Second", "Hill Clinic", None, seen_url=SEEN)
        elif change == "revoke":
            await world.desk.revoke("tech", "ward")
        else:
            await world.desk.rotate("tech", "ward", seen_url=SEEN)
    assert world.row("second") is None
    after = world.row("ward")
    assert after is not None and not after.revoked
    assert (after.token_hash, after.broker_password_hash) == (
        before.token_hash,
        before.broker_password_hash,
    )
    assert await world.token_works("ward", token)
    assert world.actions() == [("tech", "device.enroll", "device:ward")]


async def test_changes_one_at_a_time_give_distinct_devices(world: World) -> None:
    results = await asyncio.gather(
        *(world.desk.enrol("tech", "Ward", "Hill", None, seen_url=SEEN) for _ in range(4))
    )
    assert sorted(r.device_id for r in results) == ["ward", "ward-2", "ward-3", "ward-4"]

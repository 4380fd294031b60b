"""The configuration file's people, appliances and consultations move into the database."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from server.audit.log import AuditEntry
from server.audit.trail import AuditTrail
from server.auth import hash_secret
from server.config import ServerConfig
from server.db import Database, open_database
from server.directory.book import Directory
from server.directory.models import AccountRow, ApplianceRow
from server.directory.seed import ConfigConflict, import_config

ALICE_HASH = hash_secret("alice-pw")
BOB_HASH = hash_secret("bob-pw")
TOKEN_HASH = hash_secret("token")
NURSE = {
    "username": "nurse",
    "display_name": "Nurse",
    "password_hash": BOB_HASH,
    "role": "clinic",
    "clinic": "Hill Clinic",
}


def _config(tmp_path: Path, **changes: Any) -> ServerConfig:
    raw: dict[str, Any] = {
        "state_dir": str(tmp_path),
        "experts": [
            {"username": "alice", "display_name": "Alice", "password_hash": ALICE_HASH},
            {"username": "bob", "display_name": "Bob", "password_hash": BOB_HASH},
            NURSE,
        ],
        "devices": [{"device_id": "cam-1", "clinic": "Hill Clinic", "token_hash": TOKEN_HASH}],
        "consultations": [
            {
                "id": "c1",
                "patient_id": "P-1",
                "appliance": "cam-1",
                "chair": "alice",
                "experts": ["alice", "bob"],
            }
        ],
    }
    raw.update(changes)
    return ServerConfig.model_validate(raw)


@pytest.fixture
def database(tmp_path: Path) -> Database:
    return open_database(f"sqlite:///{tmp_path / 'db.sqlite'}")


def _actions(database: Database) -> list[tuple[str, str, str]]:
    with database.session() as session:
        return [
            (e.actor, e.action, e.target)
            for e in session.scalars(select(AuditEntry).order_by(AuditEntry.seq))
        ]


def test_first_start_imports_everything_audited(tmp_path: Path, database: Database) -> None:
    audit = AuditTrail(database)
    assert import_config(_config(tmp_path), database, audit) == 5
    directory = Directory(database)
    alice = directory.expert("alice")
    assert alice is not None and alice.password_hash == ALICE_HASH and alice.role == "expert"
    assert [d.device_id for d in directory.stations_of("nurse")] == ["cam-1"]
    c1 = directory.consultation("c1")
    assert c1 is not None and c1.state == "scheduled" and c1.chair == "alice"
    assert sorted(c1.experts) == ["alice", "bob"]
    assert [c.id for c in directory.consultations] == ["c1"]
    assert _actions(database) == [
        ("config", "account.create", "user:alice"),
        ("config", "account.create", "user:bob"),
        ("config", "account.create", "user:nurse"),
        ("config", "device.enroll", "device:cam-1"),
        ("config", "consultation.schedule", "consultation:c1"),
    ]
    # the next start finds the same entries: nothing added, nothing audited
    assert import_config(_config(tmp_path), database, audit) == 0
    assert len(_actions(database)) == 5


def _rename_bob(database: Database, name: str) -> None:
    with database.session() as session, session.begin():
        row = session.get(AccountRow, "bob")
        assert row is not None
        row.display_name = name  # as /admin would


def test_an_imported_entry_changed_in_the_database_stays_changed(
    tmp_path: Path, database: Database
) -> None:
    audit = AuditTrail(database)
    import_config(_config(tmp_path), database, audit)
    _rename_bob(database, "Dr Bob")  # e.g. the bootstrap admin's password, changed since
    assert import_config(_config(tmp_path), database, audit) == 0  # settled: not compared
    bob = Directory(database).expert("bob")
    assert bob is not None and bob.display_name == "Dr Bob"


def test_a_conflicting_entry_stops_the_import_and_changes_nothing(
    tmp_path: Path, database: Database
) -> None:
    audit = AuditTrail(database)
    import_config(_config(tmp_path), database, audit)
    _rename_bob(database, "Dr Bob")
    edited = _config(  # the file changed bob after his import: the database does not follow
        tmp_path,
        experts=[
            {"username": "alice", "display_name": "Alice", "password_hash": ALICE_HASH},
            {"username": "bob", "display_name": "Robert", "password_hash": BOB_HASH},
            NURSE,
        ],
        devices=[
            {"device_id": "cam-1", "clinic": "Hill Clinic", "token_hash": TOKEN_HASH},
            {"device_id": "cam-2", "clinic": "Hill Clinic", "token_hash": TOKEN_HASH},
        ],
    )
    with pytest.raises(ConfigConflict) as refused:
        import_config(edited, database, audit)
    assert "'bob'" in str(refused.value) and "display_name" in str(refused.value)
    with database.session() as session:
        assert session.get(ApplianceRow, "cam-2") is None  # the new device was not imported
        bob = session.get(AccountRow, "bob")
        assert bob is not None and bob.display_name == "Dr Bob"
    assert len(_actions(database)) == 5


def test_an_entry_made_in_admin_conflicts_with_a_different_one_in_the_file(
    tmp_path: Path, database: Database
) -> None:
    with database.session() as session, session.begin():
        session.add(
            AccountRow(
                username="bob",
                display_name="Bob from /admin",
                password_hash=BOB_HASH,
                role="chair",
                disabled=False,
                session_epoch=0,
                created_by="admin",
            )
        )
    with pytest.raises(ConfigConflict, match=r"'bob'.*display_name, role"):
        import_config(_config(tmp_path), database, AuditTrail(database))
    assert Directory(database).expert("alice") is None  # nothing imported


def test_a_changed_consultation_conflicts(tmp_path: Path, database: Database) -> None:
    audit = AuditTrail(database)
    import_config(_config(tmp_path), database, audit)
    changed = _config(
        tmp_path,
        consultations=[
            {
                "id": "c1",
                "patient_id": "P-1",
                "appliance": "cam-1",
                "chair": "alice",
                "experts": ["alice"],
            }
        ],
    )
    with pytest.raises(ConfigConflict, match=r"'c1'.*experts"):
        import_config(changed, database, audit)


def test_the_server_refuses_to_start_on_a_conflict(tmp_path: Path) -> None:
    import asyncio

    from server.app import build_app  # the start-up path, not only the function

    config = _config(tmp_path)
    database = open_database(f"sqlite:///{tmp_path / 'clinicam.db'}")
    import_config(config, database, AuditTrail(database))
    database.close()
    other = _config(
        tmp_path,
        experts=[
            {"username": "alice", "display_name": "Alice", "password_hash": BOB_HASH},
            {"username": "bob", "display_name": "Bob", "password_hash": BOB_HASH},
            NURSE,
        ],
    )
    loop = asyncio.new_event_loop()
    try:
        with pytest.raises(ConfigConflict, match=r"'alice'.*password_hash"):
            build_app(other, loop)
    finally:
        loop.close()


def test_the_demo_seed_replaces_last_runs_credentials(tmp_path: Path) -> None:
    from server.directory.seed import seed_directory

    assert seed_directory(_config(tmp_path)) == 5  # first run: all added
    again = _config(
        tmp_path,
        experts=[
            {"username": "alice", "display_name": "Alice", "password_hash": BOB_HASH},
            {"username": "bob", "display_name": "Bob", "password_hash": BOB_HASH},
            NURSE,
        ],
        consultations=[
            {
                "id": "c1",
                "patient_id": "P-1",
                "appliance": "cam-1",
                "chair": "alice",
                "experts": ["alice"],
            }
        ],
    )
    assert seed_directory(again) == 2  # alice's new password, c1's expert list
    database = open_database(f"sqlite:///{tmp_path / 'clinicam.db'}")
    try:
        directory = Directory(database)
        alice = directory.expert("alice")
        assert alice is not None and alice.password_hash == BOB_HASH
        c1 = directory.consultation("c1")
        assert c1 is not None and c1.experts == ["alice"]
        assert [a for _, a, _ in _actions(database)][-2:] == [
            "account.update",
            "consultation.update",
        ]
    finally:
        database.close()

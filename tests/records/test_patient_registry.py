"""Clinic staff register patients with their consent; each person finds only whom they may
know of (issue 19 item 2, R15). On SQLite and on PostgreSQL, below HTTP."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from server.access.consent import current_consents
from server.access.grants import AccessControl, Actor
from server.access.models import AccessGrant, Consent
from server.access.registry import PatientRegistry, Registration, latest_birth_date
from server.audit.log import AuditEntry
from server.audit.trail import AuditTrail
from server.config import ServerConfig
from server.db import Database, utcnow
from server.directory.book import Directory
from server.directory.seed import import_config
from server.domain_errors import Conflict, Forbidden, Invalid
from server.records.models import Patient
from server.records.store import RecordStore
from tests.records.api_helpers import records_config
from tests.records.test_audit_atomic import AuditWriteFailed, fail_audit_writes

NURSE = Actor("nurse", "clinic")  # Hill Clinic
DOCTOR = Actor("doctor", "clinic")  # Vale Clinic
ROOT = Actor("root", "admin")
ALICE = Actor("alice", "chair")
BOB = Actor("bob", "expert")  # invited to consultation c1 (patient P-1)
CAROL = Actor("carol", "expert")


def clinic_config(tmp_path: Path, database_url: str) -> ServerConfig:
    """The records test site, with a nurse at Hill Clinic and a doctor at Vale Clinic."""
    config = records_config(tmp_path, database_url)
    digest = config.experts[0].password_hash
    data = config.model_dump(mode="json", exclude_none=True)
    data["experts"] += [
        {"username": u, "display_name": u.title(), "password_hash": digest, "role": "clinic"}
        | {"clinic": c}
        for u, c in (("nurse", "Hill Clinic"), ("doctor", "Vale Clinic"))
    ]
    data["devices"].append({"device_id": "cam-2", "clinic": "Vale Clinic", "token_hash": digest})
    return ServerConfig.model_validate(data)


@dataclass
class Desk:
    database: Database
    audit: AuditTrail
    registry: PatientRegistry

    def count(self, table: type[Any]) -> int:
        with self.database.session() as session:
            return int(session.scalar(select(func.count()).select_from(table)) or 0)

    def actions(self) -> list[str]:
        with self.database.session() as session:
            return list(session.scalars(select(AuditEntry.action).order_by(AuditEntry.seq)))

    def grant(self, username: str, identifier: str) -> None:
        with self.database.session() as session, session.begin():
            patient = session.scalar(select(Patient).where(Patient.external_id == identifier))
            assert patient is not None
            session.add(
                AccessGrant(
                    token_sha256=f"{username}-{identifier}".ljust(64, "0"),
                    username=username,
                    patient_id=patient.id,
                    operations="view",
                    basis="test",
                    expires_at=utcnow() + timedelta(hours=1),
                )
            )


@pytest.fixture
def desk(database: Database, database_url: str, tmp_path: Path) -> Desk:
    config = clinic_config(tmp_path, database_url)
    audit = AuditTrail(database)
    import_config(config, database, audit)
    with database.session() as session, session.begin():  # as a site's older patients
        for p in config.patients:
            RecordStore.ensure_patient(session, p.id, p.name, p.group)
    directory = Directory(database)
    registry = PatientRegistry(
        database,
        audit,
        directory,
        lambda: set(directory.clinics),
        AccessControl(config, directory),
    )
    return Desk(database, audit, registry)


def entry(identifier: str = "H-100", **changes: Any) -> Registration:
    base = Registration(
        identifier=identifier,
        name="Li Na 李娜",
        sex="female",
        birth_date=date(1961, 3, 14),
        consent={"training": True, "export": False},
        group="hill",
    )
    return replace(base, **changes)


async def test_a_registered_patient_has_their_consent_and_is_found(desk: Desk) -> None:
    patient = await desk.registry.register(NURSE, entry())
    assert (patient.clinic, patient.registered_by, patient.sex) == (
        "Hill Clinic",
        "nurse",
        "female",
    )
    with desk.database.session() as session:
        assert current_consents(session, patient.id) == {
            "training": True,
            "export": False,
            "recording": False,  # not asked: no decision, which means no
        }
    assert desk.actions()[-3:] == ["patient.register", "consent.recorded", "consent.recorded"]
    for query in ("H-100", "h-1", "li na", "李娜", "娜", ""):
        found = await desk.registry.search(NURSE, query, 1, 20)
        assert [f.patient.external_id for f in found.found] == ["H-100"], query
        assert found.found[0].name == "Li Na 李娜"
    assert (await desk.registry.search(NURSE, "nobody", 1, 20)).total == 0


async def test_refusals_name_the_problem_and_change_nothing(desk: Desk) -> None:
    await desk.registry.register(NURSE, entry())
    before = (desk.count(Patient), desk.count(Consent), len(desk.actions()))
    with pytest.raises(Conflict, match="H-100") as duplicate:
        await desk.registry.register(ROOT, entry(" H-100 ", clinic="Vale Clinic"))
    assert duplicate.value.code == "duplicate_identifier"
    with pytest.raises(Invalid, match="future"):
        await desk.registry.register(
            NURSE, entry("H-2", birth_date=latest_birth_date() + timedelta(days=1))
        )
    with pytest.raises(Invalid, match="1900"):
        await desk.registry.register(NURSE, entry("H-3", birth_date=date(1899, 12, 31)))
    with pytest.raises(Invalid, match="sex"):
        await desk.registry.register(NURSE, entry("H-4", sex="f"))
    with pytest.raises(Invalid, match="consent"):
        await desk.registry.register(NURSE, entry("H-5", consent={"training": True}))
    with pytest.raises(Forbidden, match="Hill Clinic"):
        await desk.registry.register(NURSE, entry("H-6", clinic="Vale Clinic"))
    for actor in (BOB, ALICE, Actor("tech", "technician")):
        with pytest.raises(Forbidden):
            await desk.registry.register(actor, entry("H-7"))
    with pytest.raises(Invalid, match="clinic"):
        await desk.registry.register(ROOT, entry("H-8"))  # an admin names the clinic
    with pytest.raises(Invalid, match="Nowhere"):
        await desk.registry.register(ROOT, entry("H-8", clinic="Nowhere"))
    assert (desk.count(Patient), desk.count(Consent), len(desk.actions())) == before
    made = await desk.registry.register(ROOT, entry("V-1", clinic="Vale Clinic"))
    assert made.clinic == "Vale Clinic" and made.registered_by == "root"


async def test_a_birth_today_is_accepted(desk: Desk) -> None:
    patient = await desk.registry.register(NURSE, entry(birth_date=latest_birth_date()))
    assert patient.birth_date == latest_birth_date()


@pytest.mark.parametrize("failing", ["patient.register", "consent.recorded"])
async def test_a_failed_audit_write_leaves_no_patient_and_no_consent(
    failing: str, desk: Desk, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = len(desk.actions())
    fail_audit_writes(monkeypatch, desk.audit, failing)
    with pytest.raises(AuditWriteFailed):
        await desk.registry.register(NURSE, entry())
    with desk.database.session() as session:
        assert session.scalar(select(Patient).where(Patient.external_id == "H-100")) is None
    assert desk.count(Consent) == 0 and len(desk.actions()) == before


async def _identifiers(desk: Desk, actor: Actor, query: str) -> dict[str, str | None]:
    found = await desk.registry.search(actor, query, 1, 100)
    assert found.total == len(found.found)
    return {f.patient.external_id: f.name for f in found.found}


async def test_each_person_finds_only_whom_they_may_know_of(desk: Desk) -> None:
    await desk.registry.register(NURSE, entry("H-1", name="Wang Fang 王芳"))
    await desk.registry.register(DOCTOR, entry("V-1", name="Zhang Wei 张伟"))
    # P-1 and P-2 were there before registration (no clinic): staff never see them
    assert await _identifiers(desk, NURSE, "") == {"H-1": "Wang Fang 王芳"}
    assert await _identifiers(desk, DOCTOR, "") == {"V-1": "Zhang Wei 张伟"}
    assert await _identifiers(desk, DOCTOR, "王") == {}
    everyone = {"H-1", "P-1", "P-2", "V-1"}
    assert set(await _identifiers(desk, ALICE, "")) == everyone
    assert set(await _identifiers(desk, ROOT, "")) == everyone
    # an expert: nothing without a grant, even asked by the exact identifier or name
    assert await _identifiers(desk, CAROL, "V-1") == {}
    assert await _identifiers(desk, CAROL, "张伟") == {}
    desk.grant("carol", "V-1")
    assert await _identifiers(desk, CAROL, "张伟") == {"V-1": "Zhang Wei 张伟"}
    assert await _identifiers(desk, CAROL, "") == {"V-1": "Zhang Wei 张伟"}
    # bob consults on P-1 (no grant): its identifier, never its name, as on the records list
    assert await _identifiers(desk, BOB, "p-1") == {"P-1": None}
    assert await _identifiers(desk, BOB, "Jane") == {}
    assert await _identifiers(desk, Actor("tech", "technician"), "") == {}


async def test_the_search_is_paged_identifier_prefixes_first(desk: Desk) -> None:
    for number in range(5):
        await desk.registry.register(NURSE, entry(f"H-{number}", name=f"Patient {number}"))
    await desk.registry.register(NURSE, entry("X-9", name="Named after H-3"))
    first = await desk.registry.search(NURSE, "h-", 1, 4)
    second = await desk.registry.search(NURSE, "h-", 2, 4)
    assert first.total == second.total == 6
    assert [f.patient.external_id for f in first.found] == ["H-0", "H-1", "H-2", "H-3"]
    assert [f.patient.external_id for f in second.found] == ["H-4", "X-9"]
    percent = await desk.registry.search(NURSE, "%", 1, 20)
    assert percent.total == 0  # a wildcard is a character, not a pattern

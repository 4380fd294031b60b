"""A change commits with its audit entry or not at all (issue 16, item 3), below HTTP.

For every service method of access, relevance and fleet that changes data, the audit
trail's ``write`` is made to fail: the change must not persist (and no entry appears).
Without the failure, both the change and its entry are there. A service that wrote its
entry in a transaction of its own, after the change, fails the first half.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import io
import json
import zipfile
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import func, select

from server.access.consent import ConsentRegister
from server.access.desk import AccessDesk
from server.access.grants import AccessControl, Actor
from server.access.models import AccessGrant, AccessRequest, Consent
from server.audit.log import AuditEntry
from server.audit.trail import AuditTrail
from server.auth import hash_secret
from server.config import ServerConfig
from server.db import Database, open_database
from server.fleet.desk import ReleaseDesk
from server.fleet.releases import ReleaseStore
from server.records.blobs import LocalBlobStore
from server.records.models import Patient
from server.records.store import RecordStore
from server.relevance.desk import RelevanceDesk
from server.relevance.learning import LearningLoop
from server.relevance.models import Diagnosis, ModelVersion, RelevanceResult
from server.relevance.retrain import Retrainer
from server.relevance.service import RelevanceService

BOB = Actor("bob", "expert")
CAROL = Actor("carol", "expert")
ROOT = Actor("root", "admin")
REASON = "patient unconscious, records needed now"


class AuditDown(Exception):
    """The audit log cannot be written."""


@functools.cache
def _digest() -> str:
    return hash_secret("correct horse battery")


def _config(state_dir: Path) -> ServerConfig:
    digest = _digest()
    return ServerConfig.model_validate(
        {
            "state_dir": str(state_dir),
            "mqtt": {"port": 1, "username": "server", "password": "x"},
            "experts": [
                {"username": u, "display_name": u.title(), "password_hash": digest, "role": r}
                for u, r in (("bob", "expert"), ("carol", "expert"), ("root", "admin"))
            ],
            "devices": [{"device_id": "cam-1", "clinic": "Hill Clinic", "token_hash": digest}],
            "patients": [{"id": "P-1", "name": "Jane Hill"}, {"id": "P-2", "name": "John Vale"}],
            "access_rules": [{"user": "bob", "patients": ["P-1"], "operations": ["view"]}],
            "consultations": [
                {
                    "id": "c1",
                    "patient_id": "P-1",
                    "appliance": "cam-1",
                    "chair": "bob",
                    "experts": ["bob"],
                }
            ],
        }
    )


class _FakeModel:
    """Stands in for the LiteRT model: the transaction, not the model, is under test."""

    labels = ("benign", "malignant")
    version = "fake-1"
    card = SimpleNamespace(intended_use="decision support", data={})

    def relevance(self, items: Any, *, allow_synthetic: bool | None = None) -> Any:
        return SimpleNamespace(
            labels=self.labels, values=[0.25, 0.75], model_version=self.version, per_item=[]
        )


class _Appliances:
    """An appliance that is online and accepts every command."""

    def __init__(self) -> None:
        self.available = {"cam-1": True}

    async def send(self, device_id: str, command: Any, *, allowed: Any) -> Any:
        return SimpleNamespace(ok=True, error=None)


def _wheel(version: str) -> bytes:
    info = f"clinicam-{version}.dist-info"
    files = {
        "clinicam/__init__.py": f'__version__ = "{version}"\n',
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: clinicam\nVersion: {version}\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
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


@dataclass
class World:
    """The services under test, wired by their constructors as the app wires them."""

    tmp: Path
    config: ServerConfig
    database: Database
    audit: AuditTrail
    control: AccessControl
    access: AccessDesk
    consents: ConsentRegister
    relevance: RelevanceDesk
    releases: ReleaseDesk
    retrainer: Retrainer
    patients: dict[str, Patient]

    def count(self, model: Any, *where: Any) -> int:
        with self.database.session() as session:
            return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)

    def actions(self) -> list[str]:
        with self.database.session() as session:
            return list(session.scalars(select(AuditEntry.action).order_by(AuditEntry.seq)))

    def grant(self, actor: Actor, patient: str, *, break_glass: bool = False) -> AccessGrant:
        """A grant made directly (set-up, not under test)."""
        with self.database.session() as session, session.begin():
            row = session.get(Patient, self.patients[patient].id)
            assert row is not None
            if break_glass:
                return self.control.break_glass(session, actor, row, REASON).grant
            return self.control.issue_device_grant(
                session, actor.username, row, 10, basis="test", reason="test"
            ).grant

    def device_token(self) -> str:
        with self.database.session() as session, session.begin():
            row = session.get(Patient, self.patients["P-1"].id)
            assert row is not None
            issued = self.control.issue_device_grant(
                session, "device:cam-1", row, 10, basis="test", reason="test"
            )
            return issued.token

    def pending(self, actor: Actor, patient: str) -> int:
        with self.database.session() as session, session.begin():
            row = session.get(Patient, self.patients[patient].id)
            assert row is not None
            outcome = self.control.request(session, actor, row, ["edit"], None, "")
            assert isinstance(outcome, AccessRequest)
            return outcome.id


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    config = _config(tmp_path)
    database = open_database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    audit = AuditTrail(database)
    control = AccessControl(config, config)
    store = RecordStore(database, LocalBlobStore(tmp_path / "blobs"), max_bytes=1 << 20)
    model = RelevanceService(database, store, tflite=None, card=None)
    model.replace_model(_FakeModel(), tmp_path / "fake.tflite")
    access = AccessDesk(config, database, audit, control)
    relevance = RelevanceDesk(
        config,
        database,
        audit,
        model,
        access=access,
        control=control,
        records=store,
        learning=LearningLoop(database, 1000),
        appliances=_Appliances(),  # type: ignore[arg-type]
        publish=lambda result, patient: None,
    )
    patients = {}
    with database.session() as session, session.begin():
        for external in ("P-1", "P-2"):
            patients[external] = RecordStore.ensure_patient(session, external, external)
    yield World(
        tmp=tmp_path,
        config=config,
        database=database,
        audit=audit,
        control=control,
        access=access,
        consents=ConsentRegister(database, audit),
        relevance=relevance,
        releases=ReleaseDesk(
            ReleaseStore(database, LocalBlobStore(tmp_path / "release-blobs")), audit
        ),
        retrainer=Retrainer(config, database, store, model, audit),
        patients=patients,
    )
    database.close()


@dataclass(frozen=True)
class Change:
    """A service call that changes data, how to see the change, and its audit action."""

    name: str
    prepare: Callable[[World], Any]
    act: Callable[[World, Any], Awaitable[Any]]
    changed: Callable[[World], int]
    action: str


def _stage(world: World, version: str) -> Path:
    staged = world.tmp / f"staged-{version}.whl"
    staged.write_bytes(_wheel(version))
    return staged


def _decision(world: World) -> dict[str, Any]:
    """What ``models.retrain`` prints for a challenger that lost."""
    card = world.tmp / "challenger.card.json"
    card.write_text(json.dumps({"version": "relevance-test"}))
    return {
        "promote": False,
        "card": str(card),
        "version": "relevance-test",
        "tflite": str(world.tmp / "challenger.tflite"),
        "reason": "worse than the champion",
        "champion_version": "fake-1",
        "champion": {"f1": 0.9},
        "challenger": {"f1": 0.5},
        "cases": 3,
    }


def _add_release(world: World, version: str) -> None:
    release, created = world.releases.store.add(
        _stage(world, version), f"clinicam-{version}-py3-none-any.whl"
    )
    assert created and release.version == version


CHANGES = [
    Change(
        "a preset rule grants access",
        lambda w: None,
        lambda w, _: w.access.ask(BOB, "P-1", ["view"], None, ""),
        lambda w: w.count(AccessGrant, AccessGrant.username == "bob"),
        "access.granted",
    ),
    Change(
        "an uncovered request waits for an admin",
        lambda w: None,
        lambda w, _: w.access.ask(CAROL, "P-1", ["view"], None, "second opinion"),
        lambda w: w.count(AccessRequest),
        "access.requested",
    ),
    Change(
        "break-glass",
        lambda w: None,
        lambda w, _: w.access.break_glass(CAROL, "P-2", REASON),
        lambda w: w.count(AccessGrant, AccessGrant.break_glass.is_(True)),
        "access.break_glass",
    ),
    Change(
        "an admin revokes a grant",
        lambda w: w.grant(BOB, "P-1").id,
        lambda w, grant_id: w.access.revoke(ROOT, grant_id),
        lambda w: w.count(AccessGrant, AccessGrant.revoked_at.is_not(None)),
        "access.revoked",
    ),
    Change(
        "an admin reviews a break-glass access",
        lambda w: w.grant(CAROL, "P-2", break_glass=True).id,
        lambda w, grant_id: w.access.review(ROOT, grant_id),
        lambda w: w.count(AccessGrant, AccessGrant.reviewed_at.is_not(None)),
        "access.break_glass_reviewed",
    ),
    Change(
        "an admin approves a request",
        lambda w: w.pending(CAROL, "P-1"),
        lambda w, request_id: w.access.decide(ROOT, request_id, True),
        lambda w: w.count(AccessRequest, AccessRequest.status == "granted") + w.count(AccessGrant),
        "access.request_approved",
    ),
    Change(
        "an admin denies a request",
        lambda w: w.pending(CAROL, "P-1"),
        lambda w, request_id: w.access.decide(ROOT, request_id, False),
        lambda w: w.count(AccessRequest, AccessRequest.status == "denied"),
        "access.request_denied",
    ),
    Change(
        "consent is recorded",
        lambda w: None,
        lambda w, _: w.consents.record("bob", w.patients["P-1"], "training", True, ""),
        lambda w: w.count(Consent),
        "consent.recorded",
    ),
    Change(
        "an appliance's result is stored",
        lambda w: w.device_token(),
        lambda w, token: w.relevance.store_device_result(
            "cam-1",
            token,
            patient_id=w.patients["P-1"].id,
            consultation_id="c1",
            labels=["benign", "malignant"],
            values=[0.5, 0.5],
            inputs=[],
            model_version="fake-1",
            requested_by="bob",
        ),
        lambda w: w.count(RelevanceResult),
        "relevance.computed",
    ),
    Change(
        "the server computes relevance",
        lambda w: None,
        lambda w, _: w.relevance.run_on_server(
            w.patients["P-1"].id, w.config.consultations[0], "bob"
        ),
        lambda w: w.count(RelevanceResult),
        "relevance.computed",
    ),
    Change(
        "relevance is asked of the appliance (a device grant is issued)",
        lambda w: None,
        lambda w, _: w.relevance.ask(w.config.consultations[0], "bob", "appliance"),
        lambda w: w.count(AccessGrant, AccessGrant.username == "device:cam-1"),
        "relevance.requested",
    ),
    Change(
        "a diagnosis is confirmed",
        lambda w: None,
        lambda w, _: w.relevance.confirm_diagnosis("bob", w.patients["P-1"], "malignant", "c1", ""),
        lambda w: w.count(Diagnosis),
        "diagnosis.confirmed",
    ),
    Change(
        "the learning loop registers a retrained model",
        lambda w: _decision(w),
        lambda w, decision: asyncio.to_thread(w.retrainer._register, decision),
        lambda w: w.count(ModelVersion),
        "model.rejected",
    ),
    Change(
        "a release is added",
        lambda w: _stage(w, "1.0"),
        lambda w, staged: w.releases.add("root", staged, "clinicam-1.0-py3-none-any.whl"),
        lambda w: len(w.releases.store.list()),
        "release.added",
    ),
    Change(
        "a release is removed",
        lambda w: _add_release(w, "1.0"),
        lambda w, _: w.releases.remove("root", "1.0"),
        lambda w: -len(w.releases.store.list()),
        "release.removed",
    ),
]


@pytest.mark.parametrize("change", CHANGES, ids=[c.name for c in CHANGES])
async def test_no_change_without_its_audit_entry(
    world: World, change: Change, monkeypatch: pytest.MonkeyPatch
) -> None:
    prepared = change.prepare(world)
    before, entries = change.changed(world), world.actions()

    def audit_down(*args: Any, **kwargs: Any) -> None:
        raise AuditDown("audit log unavailable")

    monkeypatch.setattr(world.audit, "write", audit_down)
    with pytest.raises(AuditDown):
        await change.act(world, prepared)
    assert change.changed(world) == before, "the change persisted without its audit entry"
    assert world.actions() == entries


@pytest.mark.parametrize("change", CHANGES, ids=[c.name for c in CHANGES])
async def test_the_change_and_its_audit_entry_commit_together(world: World, change: Change) -> None:
    prepared = change.prepare(world)
    before = change.changed(world)
    await change.act(world, prepared)
    assert change.changed(world) > before
    assert change.action in world.actions()

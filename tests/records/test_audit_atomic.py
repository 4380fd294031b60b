"""A records change commits with its audit entry, or neither happens (issue 16, item 3).

Below HTTP: every records service method that changes data is run twice, once with the
audit trail's in-transaction write failing, once without. With the failure, the change
must not be there afterwards (no row, no blob that a row points at); without it, both
the change and its audit entry are. Writing the entry in a transaction of its own would
let the change survive the failed write, and fail these tests.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.data import get_testdata_file
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from server.access.grants import holds_edit_grant
from server.audit.log import AuditEntry
from server.audit.trail import AuditTrail
from server.config import ConsultationConfig
from server.db import Database
from server.erasure import erase_patient
from server.records.appliance_snapshots import SnapshotService, Still
from server.records.blobs import LocalBlobStore
from server.records.filing import Arrival, RecordFiling, patient_by_id
from server.records.importer import ImportJob, run_dicom_folder_import, run_fhir_import
from server.records.ingest import IngestLimits
from server.records.models import ClinicalPhoto, CtImage, EmrEntry, Patient, referenced_blobs
from server.records.service import RecordsService
from server.records.store import RecordStore
from tests.records.api_helpers import png_bytes

ACTOR = "alice"
CT_SMALL = Path(str(get_testdata_file("CT_small.dcm")))
CT_PATIENT = str(pydicom.dcmread(CT_SMALL, stop_before_pixels=True).PatientID)


class AuditWriteFailed(RuntimeError):
    """The audit log could not be written (a full disk, a lost connection...)."""


class NoConsents:
    def current(self, session: Session, patient_id: int) -> dict[str, Any]:
        return {}

    def allows_export(self, session: Session, patient_id: int) -> bool:
        return False


@dataclass
class Desk:
    """The records domain wired as the server wires it, on a test database."""

    database: Database
    blobs: LocalBlobStore
    audit: AuditTrail
    filing: RecordFiling
    records: RecordsService
    staging: Path

    def patient(self, external_id: str = "P-1") -> Patient:
        with self.database.session() as session, session.begin():
            patient = RecordStore.ensure_patient(session, external_id, "Jane Hill")
            session.flush()
            session.expunge(patient)
        return patient

    def staged_png(self) -> Path:
        path = self.staging / "upload-test"
        path.write_bytes(png_bytes(40, 30))
        return path

    def count(self, table: type[Any], **where: Any) -> int:
        with self.database.session() as session:
            query = select(func.count()).select_from(table).filter_by(**where)
            return int(session.scalar(query) or 0)

    def patient_id(self, external_id: str) -> int | None:
        with self.database.session() as session:
            return session.scalar(select(Patient.id).where(Patient.external_id == external_id))

    def referenced(self) -> set[str]:
        with self.database.session() as session:
            return referenced_blobs(session)

    def entries(self, action: str) -> list[dict[str, Any]]:
        with self.database.session() as session:
            rows = session.scalars(select(AuditEntry).where(AuditEntry.action == action))
            return [{"target": r.target, "detail": r.detail, "actor": r.actor} for r in rows]


@pytest.fixture
def desk(database: Database, tmp_path: Path) -> Desk:
    blobs = LocalBlobStore(tmp_path / "blobs")
    store = RecordStore(database, blobs, max_bytes=2 * 1024 * 1024)
    audit = AuditTrail(database)
    staging = tmp_path / "staging"
    staging.mkdir()
    filing = RecordFiling(
        database,
        store,
        audit,
        staging=staging,
        limits=IngestLimits(max_image_pixels=10**7),
        may_edit=holds_edit_grant,
    )
    records = RecordsService(
        database,
        store,
        filing,
        audit,
        NoConsents(),
        export_folder=staging,
        archive_root=tmp_path / "archive",
        erase=erase_patient,
    )
    return Desk(database, blobs, audit, filing, records, staging)


def fail_audit_writes(monkeypatch: pytest.MonkeyPatch, audit: AuditTrail, *actions: str) -> None:
    """From now on the in-transaction audit write raises (for ``actions``, or every one)."""
    real = audit.write

    def write(
        session: Session,
        actor: str,
        action: str,
        target: str,
        detail: dict[str, Any] | None = None,
    ) -> None:
        if not actions or action in actions:
            raise AuditWriteFailed(f"cannot write {action}")
        real(session, actor, action, target, detail)

    monkeypatch.setattr(audit, "write", write)


@dataclass(frozen=True)
class Change:
    """One audited change: how to make it, and how to see whether it happened."""

    action: str
    prepare: Callable[[Desk], Any]
    make: Callable[[Desk, Any], Awaitable[Any]]
    happened: Callable[[Desk, Any], bool]


# --- the changes ---------------------------------------------------------------------------


async def _upload(desk: Desk, patient: Patient) -> Any:
    return await desk.records.upload(
        ACTOR,
        patient,
        desk.staged_png(),
        declared=None,
        title="wound",
        confirm_identity_mismatch=False,
    )


def _photo_filed(desk: Desk, patient: Patient) -> bool:
    return desk.count(ClinicalPhoto, patient_id=patient.id) == 1 and len(desk.referenced()) == 1


async def _add_emr(desk: Desk, patient: Patient) -> Any:
    return await desk.records.add_emr(ACTOR, patient, {"note": "healing"}, None)


def _with_entry(desk: Desk) -> tuple[Patient, int]:
    patient = desk.patient()
    with desk.database.session() as session, session.begin():
        subject = session.get(Patient, patient.id)
        assert subject is not None
        entry = desk.filing.store.add_emr(session, subject, {"note": "first"}, None, actor=ACTOR)
        return patient, entry.id


async def _update_emr(desk: Desk, made: tuple[Patient, int]) -> Any:
    patient, entry_id = made
    fields = {"note": "second"}
    return await desk.records.update_emr(ACTOR, patient, "emr_entry", str(entry_id), fields)


def _emr_changed(desk: Desk, made: tuple[Patient, int]) -> bool:
    with desk.database.session() as session:
        entry = session.get(EmrEntry, made[1])
        assert entry is not None
        return bool(entry.fields == {"note": "second"})


def _patient_with_records(desk: Desk) -> tuple[Patient, str]:
    patient = desk.patient()
    arrival = Arrival(ACTOR, "upload")
    filed = desk.filing.file_staged(desk.staged_png(), patient_by_id(patient.id), arrival)
    return patient, filed.record.sha256


async def _delete(desk: Desk, made: tuple[Patient, str]) -> Any:
    return await desk.records.delete_patient("root", "admin", made[0])


def _deleted(desk: Desk, made: tuple[Patient, str]) -> bool:
    gone = desk.patient_id("P-1") is None and desk.count(ClinicalPhoto) == 0
    if not gone:  # rolled back: the files are still there for the rows that remain
        assert desk.blobs.exists(made[1])
    return gone


CONSULTATION = ConsultationConfig(
    id="c1", patient_id="P-S", appliance="cam-1", chair="alice", experts=["alice"]
)


async def _snapshot(desk: Desk, _: None) -> Any:
    snapshots = SnapshotService(desk.filing, lambda: [CONSULTATION])
    still = Still(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), "bob", "c1")
    return await snapshots.file("cam-1", CONSULTATION, still, desk.staged_png())


def _snapshot_filed(desk: Desk, _: None) -> bool:
    return desk.count(ClinicalPhoto, source="appliance snapshot") == 1 and bool(desk.referenced())


def _bundle() -> bytes:
    photo = base64.b64encode(png_bytes(40, 30)).decode()
    subject = {"reference": "Patient/p1"}
    resources: list[dict[str, Any]] = [
        {
            "resourceType": "Patient",
            "id": "p1",
            "identifier": [{"value": "P-F"}],
            "name": [{"family": "Vale", "given": ["John"]}],
        },
        {
            "resourceType": "Observation",
            "status": "final",
            "code": {"text": "assessment"},
            "subject": subject,
            "valueString": "stable",
        },
        {
            "resourceType": "Media",
            "status": "completed",
            "subject": subject,
            "content": {"contentType": "image/png", "data": photo},
        },
    ]
    bundle = {"resourceType": "Bundle", "type": "collection"}
    bundle["entry"] = [{"resource": r} for r in resources]  # type: ignore[assignment]
    return json.dumps(bundle).encode()


async def _fhir_import(desk: Desk, _: None) -> Any:
    job = ImportJob("fhir", ACTOR)
    run_fhir_import(job, _bundle(), desk.filing, create_patients=True)
    assert job.state == "done", job.as_json()
    return job


def _fhir_filed(desk: Desk, _: None) -> bool:
    patient_id = desk.patient_id("P-F")
    if patient_id is None:
        return False
    emr = desk.count(EmrEntry, patient_id=patient_id)
    photos = desk.count(ClinicalPhoto, patient_id=patient_id)
    return emr >= 1 and photos == 1 and bool(desk.referenced())


async def _dicom_import(desk: Desk, _: None) -> Any:
    job = ImportJob("dicom", ACTOR)
    patient = (CT_PATIENT, "Dana Dee")
    run_dicom_folder_import(job, [CT_SMALL], patient, desk.filing, create_patients=True)
    assert job.state == "done" and job.filed == 1, job.as_json()
    return job


def _dicom_filed(desk: Desk, _: None) -> bool:
    return desk.count(CtImage) == 1 and bool(desk.referenced())


CHANGES = {
    "upload": Change("record.create", lambda d: d.patient(), _upload, _photo_filed),
    "add_emr": Change(
        "record.create",
        lambda d: d.patient(),
        _add_emr,
        lambda d, p: bool(d.count(EmrEntry, patient_id=p.id)),
    ),
    "update_emr": Change("record.update", _with_entry, _update_emr, _emr_changed),
    "delete_patient": Change("patient.deleted", _patient_with_records, _delete, _deleted),
    "snapshot": Change("record.create", lambda d: None, _snapshot, _snapshot_filed),
    "fhir_import": Change("record.create", lambda d: None, _fhir_import, _fhir_filed),
    "dicom_import": Change("record.create", lambda d: None, _dicom_import, _dicom_filed),
}


@pytest.mark.parametrize("name", sorted(CHANGES))
async def test_a_failed_audit_write_leaves_no_change(
    name: str, desk: Desk, monkeypatch: pytest.MonkeyPatch
) -> None:
    change = CHANGES[name]
    made = change.prepare(desk)
    before = len(desk.entries(change.action))
    fail_audit_writes(monkeypatch, desk.audit, change.action)
    with pytest.raises(AuditWriteFailed):
        await change.make(desk, made)
    assert not change.happened(desk, made), f"{name} persisted without its audit entry"
    assert len(desk.entries(change.action)) == before


@pytest.mark.parametrize("name", sorted(CHANGES))
async def test_a_change_commits_with_its_audit_entry(name: str, desk: Desk) -> None:
    change = CHANGES[name]
    made = change.prepare(desk)
    before = len(desk.entries(change.action))
    await change.make(desk, made)
    assert change.happened(desk, made)
    assert len(desk.entries(change.action)) > before


@pytest.mark.parametrize("name", ["fhir_import", "dicom_import"])
async def test_an_import_keeps_no_patient_whose_creation_was_not_audited(
    name: str, desk: Desk, monkeypatch: pytest.MonkeyPatch
) -> None:
    fail_audit_writes(monkeypatch, desk.audit, "patient.create")
    with pytest.raises(AuditWriteFailed):
        await CHANGES[name].make(desk, None)
    assert desk.patient_id("P-F") is None and desk.patient_id(CT_PATIENT) is None
    assert desk.count(EmrEntry) == 0 and not desk.referenced()

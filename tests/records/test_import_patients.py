"""An import creates or matches its patients explicitly, never silently (issue 19 item 2).

A patient Clinicam does not know is refused with a message unless the import says
``create_patients`` (then it is created, audited as ``patient.create``); a patient it
knows is matched by identifier, and the report says which was which.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from server.access.grants import holds_edit_grant
from server.access.models import AccessGrant
from server.audit.log import AuditEntry
from server.audit.trail import AuditTrail
from server.db import Database, utcnow
from server.records.blobs import LocalBlobStore
from server.records.filing import RecordFiling
from server.records.importer import ImportJob, run_dicom_folder_import, run_fhir_import
from server.records.ingest import IngestLimits
from server.records.models import CtImage, EmrEntry, Patient
from server.records.store import RecordStore
from tests.records.test_audit_atomic import CT_PATIENT, CT_SMALL, _bundle

ACTOR = "root"


@pytest.fixture
def filing(database: Database, tmp_path: Path) -> RecordFiling:
    staging = tmp_path / "staging"
    staging.mkdir()
    return RecordFiling(
        database,
        RecordStore(database, LocalBlobStore(tmp_path / "blobs"), max_bytes=2 * 1024 * 1024),
        AuditTrail(database),
        staging=staging,
        limits=IngestLimits(max_image_pixels=10**7),
        may_edit=holds_edit_grant,
    )


def _patients(database: Database) -> list[str]:
    with database.session() as session:
        return list(session.scalars(select(Patient.external_id)))


def _audited(database: Database, action: str) -> list[str]:
    with database.session() as session:
        return list(session.scalars(select(AuditEntry.target).where(AuditEntry.action == action)))


def test_a_bundle_naming_an_unknown_patient_is_refused_without_the_flag(
    filing: RecordFiling,
) -> None:
    job = ImportJob("fhir", ACTOR)
    run_fhir_import(job, _bundle(), filing)
    assert job.state == "done" and job.filed == 0 and job.patients == []
    assert any("P-F" in reason and "not registered" in reason for reason in job.skipped)
    assert _patients(filing.database) == []
    assert _audited(filing.database, "patient.create") == []


def test_with_the_flag_it_is_created_audited_and_reported(filing: RecordFiling) -> None:
    job = ImportJob("fhir", ACTOR)
    run_fhir_import(job, _bundle(), filing, create_patients=True)
    assert job.state == "done" and job.filed == 2
    assert job.as_json()["created"] == ["P-F"] and job.as_json()["matched"] == []
    assert _patients(filing.database) == ["P-F"]
    assert _audited(filing.database, "patient.create") == ["patient:P-F"]


def test_a_known_patient_is_matched_by_identifier_and_reported(filing: RecordFiling) -> None:
    with filing.database.session() as session, session.begin():
        patient = RecordStore.ensure_patient(session, "P-F", "John Vale")
        session.add(
            AccessGrant(
                token_sha256="0" * 64,
                username=ACTOR,
                patient_id=patient.id,
                operations="edit,view",
                basis="test",
                expires_at=utcnow() + timedelta(hours=1),
            )
        )
    job = ImportJob("fhir", ACTOR)
    run_fhir_import(job, _bundle(), filing, create_patients=True)
    assert job.state == "done" and job.filed == 2
    assert job.as_json()["matched"] == ["P-F"] and job.as_json()["created"] == []
    assert _audited(filing.database, "patient.create") == []


def test_a_dicom_folder_for_an_unknown_patient_fails_with_a_message(
    filing: RecordFiling,
) -> None:
    job = ImportJob("dicom", ACTOR)
    run_dicom_folder_import(job, [CT_SMALL], (CT_PATIENT, "Dana Dee"), filing)
    assert job.state == "failed" and job.error is not None
    assert CT_PATIENT in job.error and "create_patients" in job.error
    assert _patients(filing.database) == [] and job.filed == 0
    with filing.database.session() as session:
        assert session.scalar(select(CtImage.id)) is None
        assert session.scalar(select(EmrEntry.id)) is None
    job = ImportJob("dicom", ACTOR)
    run_dicom_folder_import(job, [CT_SMALL], (CT_PATIENT, "Dana Dee"), filing, create_patients=True)
    assert job.state == "done" and job.filed == 1 and job.created == [CT_PATIENT]

"""FHIR out (O8): a patient's record as one validated FHIR R4 Bundle, and back in."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from server.db import Database, open_database
from server.fhir_export import bundle_builder
from server.records.deid import Pseudonymizer, scan_for_identifiers
from server.records.export import ExportLeak
from server.records.fhir import FhirError, parse_bundle
from server.records.fhir.export_bundle import FhirBundleBuilder
from server.records.fhir.export_context import Contribution, ExportContext
from server.records.fhir.systems import EMR_FIELDS_EXTENSION
from server.records.importer import ImportJob, run_fhir_import
from server.records.models import Patient
from server.records.store import RecordStore
from tests.records.fhir_export_helpers import (
    IDENTIFIER,
    NAME,
    NEEDLES,
    file_everything,
    filing_for,
    record_summary,
)


def _export(database: Database, folder: Path, *, deid: bool = False) -> tuple[bytes, Any]:
    filing = filing_for(database, folder)
    filed = file_everything(filing)
    builder = bundle_builder(filing.store)
    with database.session() as session:
        patient = session.get(Patient, filed.patient_id)
        assert patient is not None
        result = builder.build(session, patient, pseudonymizer=Pseudonymizer() if deid else None)
    return result.data, result


def _resources(data: bytes) -> list[dict[str, Any]]:
    return [entry["resource"] for entry in json.loads(data)["entry"]]


def _kinds(data: bytes) -> dict[str, int]:
    out: dict[str, int] = {}
    for resource in _resources(data):
        out[resource["resourceType"]] = out.get(resource["resourceType"], 0) + 1
    return out


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[Database]:
    db = open_database(f"sqlite:///{tmp_path / 'source.db'}")
    yield db
    db.close()


def test_the_bundle_validates_and_holds_every_part(sqlite_db: Database, tmp_path: Path) -> None:
    data, result = _export(sqlite_db, tmp_path)
    bundle = Bundle.model_validate_json(data)  # the JSON parses back as an R4 Bundle
    assert bundle.type == "document" and bundle.entry is not None
    first = bundle.entry[0].resource
    assert first is not None and first.get_resource_type() == "Composition"
    assert _kinds(data) == {
        "Composition": 1,
        "Patient": 1,
        "Encounter": 1,
        "Consent": 2,
        "DiagnosticReport": 1,
        "Observation": 2,
        "Media": 2 + 1 + 3 + 1,  # photos, the image scan, CT slices, the voice note
        "DocumentReference": 1,  # the PDF scan
        "ImagingStudy": 1,
        "Provenance": 15,  # every resource but the Composition and the Patient
    }
    sections = {s["code"]["text"]: len(s["entry"]) for s in _resources(data)[0]["section"]}
    assert sections == {
        "consultation": 1,
        "clinical_photo": 2,
        "record_scan": 2,
        "ct_image": 4,  # the study and its three slices
        "voice_note": 1,
        "emr_entry": 2,
        "consent": 2,
        "diagnosis": 1,
    }
    assert result.counts["provenance"] == 15 and result.left_out == []
    study = next(r for r in _resources(data) if r["resourceType"] == "ImagingStudy")
    assert [len(s["instance"]) for s in study["series"]] == [2, 1]
    patient = _resources(data)[1]
    assert patient["name"][0]["text"] == NAME and patient["birthDate"] == "1961-04-12"
    report = next(r for r in _resources(data) if r["resourceType"] == "DiagnosticReport")
    encounter_ref = next(
        e["fullUrl"]
        for e in json.loads(data)["entry"]
        if e["resource"]["resourceType"] == "Encounter"
    )
    assert report["encounter"]["reference"] == encounter_ref
    snapshots = [r for r in _resources(data) if r.get("encounter")]  # the still taken in c-77
    assert [r["resourceType"] for r in snapshots] == ["Media", "DiagnosticReport"]
    assert snapshots[0]["encounter"]["reference"] == encounter_ref
    provenances = [r for r in _resources(data) if r["resourceType"] == "Provenance"]
    audited = [p for p in provenances if p.get("policy")]  # a record's record.create entry
    assert len(audited) == 2 + 2 + 3 + 1 + 2
    assert {p["agent"][0]["who"]["display"] for p in provenances} == {"alice", "nurse"}


def test_the_deidentified_bundle_passes_the_leak_check(sqlite_db: Database, tmp_path: Path) -> None:
    data, result = _export(sqlite_db, tmp_path, deid=True)
    Bundle.model_validate_json(data)
    assert scan_for_identifiers(data, NEEDLES) == []
    for resource in _resources(data):
        content = resource.get("content")
        attachments = [content] if isinstance(content, dict) else []
        attachments += [
            c["attachment"] for c in content or [] if isinstance(c, dict) and "attachment" in c
        ]
        for attachment in attachments:
            if "data" in attachment:
                assert scan_for_identifiers(base64.b64decode(attachment["data"]), NEEDLES) == []
    kinds = _kinds(data)
    assert "DocumentReference" not in kinds and kinds["Media"] == 2 + 1 + 3  # no voice, no PDF
    assert len(result.left_out) == 2
    assert "alice" not in data.decode() and result.patient.startswith("PATIENT-")
    patient = _resources(data)[1]
    assert "name" not in patient and "birthDate" not in patient and patient["gender"] == "female"


def test_an_identifier_that_survives_stops_the_export(sqlite_db: Database, tmp_path: Path) -> None:
    filing = filing_for(sqlite_db, tmp_path)
    filed = file_everything(filing)
    builder = FhirBundleBuilder(filing.store)

    def careless(ctx: ExportContext) -> list[Contribution]:
        from fhir.resources.R4B.observation import Observation

        leak = {"status": "final", "code": {"text": ctx.patient.display_name}}
        return [Contribution("careless", ctx.ref("Observation", "x"), Observation(**leak))]

    builder.register("careless", careless)
    with sqlite_db.session() as session:
        patient = session.get(Patient, filed.patient_id)
        assert patient is not None
        assert NAME in builder.build(session, patient).data.decode()  # a full export: fine
        with pytest.raises(ExportLeak):
            builder.build(session, patient, pseudonymizer=Pseudonymizer())


def test_a_short_identifier_is_not_found_in_the_bundles_own_random_ids(
    sqlite_db: Database, tmp_path: Path
) -> None:
    """A patient "F-0" (hex and a dash): the bundle's urn:uuid ids would "contain" it by
    chance in most exports; the scan leaves those ids out, and still finds a real leak."""
    filing = filing_for(sqlite_db, tmp_path)
    with sqlite_db.session() as session, session.begin():
        patient_id = RecordStore.ensure_patient(session, "F-0", "Fhir Patient").id
    with sqlite_db.session() as session, session.begin():
        subject = session.get(Patient, patient_id)
        assert subject is not None
        for k in range(3):
            filing.add_emr(session, subject, {"note": f"visit {k}"}, None, actor="a", via="api")
    builder = bundle_builder(filing.store)
    with sqlite_db.session() as session:
        patient = session.get(Patient, patient_id)
        assert patient is not None
        for _ in range(20):  # a chance "f-0" in the ids was near-certain within 20 exports
            builder.build(session, patient, pseudonymizer=Pseudonymizer())

        def careless(ctx: ExportContext) -> list[Contribution]:
            from fhir.resources.R4B.observation import Observation

            leak = {"status": "final", "code": {"text": "chart F-0"}}
            return [Contribution("careless", ctx.ref("Observation", "y"), Observation(**leak))]

        builder.register("careless", careless)
        with pytest.raises(ExportLeak):
            builder.build(session, patient, pseudonymizer=Pseudonymizer())


def test_files_past_the_bundle_limit_keep_their_resource_without_data(
    sqlite_db: Database, tmp_path: Path
) -> None:
    filing = filing_for(sqlite_db, tmp_path)
    filed = file_everything(filing)
    builder = FhirBundleBuilder(filing.store, max_inline_bytes=20_000)
    with sqlite_db.session() as session:
        patient = session.get(Patient, filed.patient_id)
        assert patient is not None
        result = builder.build(session, patient)
    resources = _resources(result.data)
    files = [r["content"] for r in resources if r["resourceType"] == "Media"]
    docs = [r for r in resources if r["resourceType"] == "DocumentReference"]  # the PDF
    files += [r["content"][0]["attachment"] for r in docs]
    inline = [f for f in files if "data" in f]
    assert len(files) == 8 and 0 < len(inline) < 8
    assert sum(int(f["size"]) for f in inline) <= 20_000
    assert len(result.left_out) == 8 - len(inline)
    assert all("bundle limit" in reason for reason in result.left_out)


def test_deidentified_study_uids_match_the_deidentified_files(
    sqlite_db: Database, tmp_path: Path
) -> None:
    import io

    import pydicom

    data, _ = _export(sqlite_db, tmp_path, deid=True)
    resources = _resources(data)
    study = next(r for r in resources if r["resourceType"] == "ImagingStudy")
    listed = {i["uid"] for s in study["series"] for i in s["instance"]}
    files = [
        pydicom.dcmread(io.BytesIO(base64.b64decode(r["content"]["data"])))
        for r in resources
        if r["resourceType"] == "Media" and r["content"]["contentType"] == "application/dicom"
    ]
    assert {str(f.SOPInstanceUID) for f in files} == listed and len(listed) == 3
    assert {str(f.StudyInstanceUID) for f in files} == {
        study["identifier"][0]["value"].removeprefix("urn:oid:")
    }


@pytest.mark.parametrize("fields", ["[1, 2]", "{}", "not json", '{"x": NaN}'])
def test_the_importer_refuses_emr_fields_that_are_not_a_json_object(fields: str) -> None:
    observation = {
        "resourceType": "Observation",
        "extension": [{"url": EMR_FIELDS_EXTENSION, "valueString": fields}],
        "status": "final",
        "code": {"text": "x"},
        "subject": {"reference": "Patient/p"},
    }
    patient = {"resourceType": "Patient", "id": "p", "identifier": [{"value": "H-1"}]}
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": patient}, {"resource": observation}
    ]}  # fmt: skip
    with pytest.raises(FhirError, match=r"entry\[1\] Observation: the emr-fields extension"):
        parse_bundle(json.dumps(bundle).encode())


@pytest.fixture
def empty_site_url(database_url: str, tmp_path: Path) -> Iterator[str]:
    """A second, empty database next to ``database_url`` (same engine)."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty-site.db'}"
        return
    name = f"empty_{uuid.uuid4().hex[:12]}"
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield url.set(database=name).render_as_string(hide_password=False)
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def test_round_trip_into_an_empty_site(
    database: Database, empty_site_url: str, tmp_path: Path
) -> None:
    data, _ = _export(database, tmp_path / "source")
    before = record_summary(database, IDENTIFIER)
    site = open_database(empty_site_url)
    try:
        job = ImportJob("fhir", "cli:test")
        run_fhir_import(job, data, filing_for(site, tmp_path / "empty"), create_patients=True)
        assert job.state == "done" and job.created == [IDENTIFIER], job
        assert job.filed == job.total == 8 + 2, job.skipped
        after = record_summary(site, IDENTIFIER)
    finally:
        site.close()
    assert after == before
    assert len(after["CtImage"]) == 3 and len(after["emr"]) == 2

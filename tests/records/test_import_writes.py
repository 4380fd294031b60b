"""Imports are writes: the same grant check, size limits and per-record audit as an upload."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pydicom
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid
from sqlalchemy import func, select

from clinicam import tomlwrite
from server.audit.log import AuditEntry, AuditLog
from server.db import Database, connect_database
from server.records.models import ClinicalPhoto, CtImage, EmrEntry, Patient
from tests.records.api_helpers import User, png_bytes, records_config, running_site

BIG_TEXT = "x" * 100_000  # under the JSON body limit, over the EMR entry limit


def _bundle(identifier: str, *, note: str = "stable", photo: bool = False) -> bytes:
    entries: list[dict[str, Any]] = [
        {
            "resource": {
                "resourceType": "Patient",
                "id": "p1",
                "identifier": [{"value": identifier}],
                "name": [{"family": "Vale", "given": ["John"]}],
            }
        },
        {
            "resource": {
                "resourceType": "Observation",
                "status": "final",
                "code": {"text": "assessment"},
                "subject": {"reference": "Patient/p1"},
                "valueString": note,
            }
        },
    ]
    if photo:
        data = base64.b64encode(png_bytes(40, 30)).decode()
        entries.append(
            {
                "resource": {
                    "resourceType": "Media",
                    "status": "completed",
                    "subject": {"reference": "Patient/p1"},
                    "content": {"contentType": "image/png", "data": data},
                }
            }
        )
    return json.dumps({"resourceType": "Bundle", "type": "collection", "entry": entries}).encode()


async def _import(user: User, bundle: bytes, *, create: bool = False) -> dict[str, Any]:
    query = "?create_patients=true" if create else ""
    resp = await user.request("POST", f"/api/imports/fhir{query}", data=bundle)
    assert resp.status == 202, await resp.text()
    job: dict[str, Any] = await resp.json()
    for _ in range(400):
        job = await (await user.request("GET", f"/api/imports/{job['id']}")).json()
        if job["state"] != "running":
            break
        await asyncio.sleep(0.05)
    return job


def _emr_values(database: Database, external_id: str) -> list[Any]:
    with database.session() as session:
        query = select(EmrEntry.fields).join(Patient).where(Patient.external_id == external_id)
        return [fields.get("value") for fields in session.scalars(query)]


def _audited_creations(database: Database) -> set[tuple[str, int]]:
    with database.session() as session:
        details = session.scalars(
            select(AuditEntry.detail).where(AuditEntry.action == "record.create")
        )
        return {(d["category"], int(d["id"])) for d in details}


def _rows(database: Database) -> set[tuple[str, int]]:
    with database.session() as session:
        return (
            {("emr_entry", i) for i in session.scalars(select(EmrEntry.id))}
            | {("clinical_photo", i) for i in session.scalars(select(ClinicalPhoto.id))}
            | {("ct_image", i) for i in session.scalars(select(CtImage.id))}
        )


async def test_a_fhir_import_adds_nothing_to_a_patient_without_an_edit_grant(
    tmp_path: Path,
) -> None:
    config = records_config(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}")
    async with running_site(config) as site:
        root = await site.user("root")  # admin, no grant for P-2
        job = await _import(root, _bundle("P-2", note="smuggled in", photo=True))
        assert job["state"] == "done", job
        assert job["filed"] == 0
        assert any("P-2" in s and "grant" in s for s in job["skipped"]), job["skipped"]
        assert "smuggled in" not in _emr_values(site.database, "P-2")
        with site.database.session() as session:
            assert session.scalar(select(func.count()).select_from(ClinicalPhoto)) == 0


async def test_an_oversized_emr_entry_is_refused_by_the_api_and_by_imports(
    tmp_path: Path,
) -> None:
    config = records_config(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}")
    async with running_site(config) as site:
        alice, root = await site.user("alice"), await site.user("root")
        granted = await alice.access("P-1", ("view", "edit"))
        emr = f"/api/patients/{granted['patient_id']}/emr"
        resp = await alice.request("POST", emr, json={"fields": {"note": BIG_TEXT}})
        assert resp.status == 413, await resp.text()
        assert "limit" in (await resp.json())["error"]
        resp = await alice.request("POST", emr, json={"fields": {"note": "small"}})
        assert resp.status == 201
        entry = await resp.json()
        patch = f"/api/patients/{granted['patient_id']}/records/emr_entry/{entry['id']}"
        resp = await alice.request("PATCH", patch, json={"fields": {"more": BIG_TEXT}})
        assert resp.status == 413
        job = await _import(root, _bundle("H-77", note=BIG_TEXT), create=True)
        assert job["state"] == "done", job
        assert any("limit" in s for s in job["skipped"]), job["skipped"]
        assert BIG_TEXT not in _emr_values(site.database, "H-77")


async def test_every_imported_record_commits_with_its_audit_entry(tmp_path: Path) -> None:
    config = records_config(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}")
    async with running_site(config) as site:
        root = await site.user("root")
        job = await _import(root, _bundle("H-88", photo=True), create=True)
        assert job["state"] == "done" and job["filed"] == 2, job
        rows = _rows(site.database)
        assert len(rows) == 2 and rows <= _audited_creations(site.database)
        with site.database.session() as session:
            actions = list(session.scalars(select(AuditEntry.action)))
            assert "patient.create" in actions
            assert AuditLog().verify(session).ok


def _slice(number: int, patient: str) -> bytes:
    ds = pydicom.dcmread(str(get_testdata_file("CT_small.dcm")))
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.ImagePositionPatient = [0.0, 0.0, float(number)]
    ds.PatientID = patient
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def test_a_killed_import_leaves_only_whole_audited_records(tmp_path: Path) -> None:
    folder = tmp_path / "study"
    folder.mkdir()
    for number in range(400):
        (folder / f"IM{number:04d}").write_bytes(_slice(number, "P-9"))
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    config = records_config(tmp_path / "state", url)
    toml = tmp_path / "server.toml"
    toml.write_text(tomlwrite.dumps(config.model_dump(mode="json", exclude_none=True)))
    command = [sys.executable, "-m", "clinicam_app", "records", "import-dicom", str(folder)]
    command += ["--patient", "P-9", "--create-patients", "-c", str(toml)]
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    database: Database | None = None
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and child.poll() is None:
            time.sleep(0.05)
            if not (tmp_path / "db.sqlite").exists():
                continue
            database = database or connect_database(url)
            try:
                with database.session() as session:
                    filed = session.scalar(select(func.count()).select_from(CtImage)) or 0
            except Exception:  # the schema is still being created
                continue
            if filed >= 5:
                break
        assert child.poll() is None, "the import ended before it could be killed"
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
        database = database or connect_database(url)
        rows = {r for r in _rows(database) if r[0] == "ct_image"}
        assert 5 <= len(rows) < 400
        assert rows <= _audited_creations(database)
        with database.session() as session:
            assert AuditLog().verify(session).ok
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if database is not None:
            database.close()

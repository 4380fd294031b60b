"""Imports from a hospital system: a DICOM folder (CLI) and a FHIR Bundle (web, with progress)."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import subprocess
import sys
from pathlib import Path

import pydicom
from aiohttp.test_utils import TestServer
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid
from sqlalchemy import select

from clinicam import tomlwrite
from server.app import build_app
from server.db import connect_database
from server.records.models import CtImage, EmrEntry, Patient
from server.state import STATE
from tests.records.api_helpers import count_rows, open_user, png_bytes, records_config


def _slice(position: float) -> bytes:
    ds = pydicom.dcmread(str(get_testdata_file("CT_small.dcm")))
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.ImagePositionPatient = [0.0, 0.0, position]
    ds.PatientID = "P-9"
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def test_dicom_folder_import_from_the_command_line(tmp_path: Path) -> None:
    folder = tmp_path / "study" / "series1"
    folder.mkdir(parents=True)
    slices = [_slice(z) for z in (0.0, 5.0, 10.0)]
    for number, data in enumerate(slices):
        (folder / f"IM{number:04d}").write_bytes(data)
    (folder / "DICOMDIR.txt").write_text("not an image")
    (folder / "copy-of-IM0000").write_bytes(slices[0])
    config = records_config(tmp_path / "state", f"sqlite:///{tmp_path / 'db.sqlite'}")
    toml = tmp_path / "server.toml"
    toml.write_text(tomlwrite.dumps(config.model_dump(mode="json", exclude_none=True)))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "clinicam_app",
            "records",
            "import-dicom",
            str(tmp_path / "study"),
            "--patient",
            "P-9",
            "--name",
            "New Patient",
            "--create-patients",  # P-9 is not registered: created only when asked
            "-c",
            str(toml),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "3 filed, 2 skipped" in done.stdout
    assert "P-9: created" in done.stdout
    assert "DICOMDIR.txt" in done.stdout and "already filed" in done.stdout
    database = connect_database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    try:
        with database.session() as session:
            patient = session.scalar(select(Patient).where(Patient.external_id == "P-9"))
            assert patient is not None and patient.display_name == "New Patient"
            positions = sorted(
                session.scalars(
                    select(CtImage.slice_position).where(CtImage.patient_id == patient.id)
                )
            )
            assert positions == [0.0, 5.0, 10.0]
    finally:
        database.close()
    verify = subprocess.run(
        [sys.executable, "-m", "clinicam_app", "audit", "verify", "-c", str(toml)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert verify.returncode == 0, verify.stderr


def _bundle() -> bytes:
    photo = base64.b64encode(png_bytes(40, 30)).decode()
    entries = [
        {
            "fullUrl": "urn:uuid:p1",
            "resource": {
                "resourceType": "Patient",
                "id": "p1",
                "identifier": [{"type": {"coding": [{"code": "MR"}]}, "value": "H-1234"}],
                "name": [{"family": "Okafor", "given": ["Ada"]}],
                "birthDate": "1970-05-01",
            },
        },
        {
            "resource": {
                "resourceType": "Observation",
                "status": "final",
                "code": {
                    "coding": [
                        {"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}
                    ]
                },
                "subject": {"reference": "Patient/p1"},
                "effectiveDateTime": "2026-11-20T09:00:00Z",
                "valueQuantity": {"value": 72, "unit": "/min"},
            }
        },
        {
            "resource": {
                "resourceType": "Media",
                "status": "completed",
                "subject": {"reference": "Patient/p1"},
                "content": {"contentType": "image/png", "data": photo, "title": "wound.png"},
            }
        },
        {
            "resource": {
                "resourceType": "Media",
                "status": "completed",
                "subject": {"reference": "Patient/p1"},
                "content": {"contentType": "image/png", "data": base64.b64encode(b"junk").decode()},
            }
        },
    ]
    return json.dumps({"resourceType": "Bundle", "type": "collection", "entry": entries}).encode()


async def test_fhir_bundle_import_with_progress(tmp_path: Path) -> None:
    app = build_app(
        records_config(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}"),
        asyncio.get_running_loop(),
    )
    server = TestServer(app)
    await server.start_server()
    root, bob = await open_user(server, "root"), await open_user(server, "bob")
    try:
        resp = await bob.request("POST", "/api/imports/fhir", data=_bundle())
        assert resp.status == 403  # admins only
        resp = await root.request("POST", "/api/imports/fhir", data=b"{not json")
        job = await resp.json()
        assert resp.status == 202
        for _ in range(100):
            job = await (await root.request("GET", f"/api/imports/{job['id']}")).json()
            if job["state"] != "running":
                break
            await asyncio.sleep(0.05)
        assert job["state"] == "failed" and "JSON" in job["error"]

        fhir = "/api/imports/fhir?create_patients=true"  # H-1234 is not registered
        resp = await root.request("POST", fhir, data=_bundle())
        job = await resp.json()
        for _ in range(200):
            job = await (await root.request("GET", f"/api/imports/{job['id']}")).json()
            if job["state"] != "running":
                break
            await asyncio.sleep(0.05)
        assert job["state"] == "done", job
        assert job["patients"] == ["H-1234"] and job["total"] == 3 and job["done"] == 3
        assert job["created"] == ["H-1234"] and job["matched"] == []
        assert job["filed"] == 2 and len(job["skipped"]) == 1
        database = app[STATE].database
        with database.session() as session:
            patient = session.scalar(select(Patient).where(Patient.external_id == "H-1234"))
            assert patient is not None and patient.display_name == "Ada Okafor"
            # a created patient gets the bundle's birth date as its registration field
            assert patient.birth_date is not None and patient.birth_date.isoformat() == "1970-05-01"
            fields = [e.fields for e in session.scalars(select(EmrEntry))]
        assert any(f.get("value") == 72 for f in fields)
        assert count_rows(database, EmrEntry) == 1
    finally:
        await root.http.close()
        await bob.http.close()
        await server.close()

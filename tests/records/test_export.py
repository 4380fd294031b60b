"""Test 14: a de-identified export holds none of the patient's names, IDs or dates."""

from __future__ import annotations

import asyncio
import io
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path

import pydicom
import pytest
from aiohttp.test_utils import TestServer
from PIL import Image
from pydicom.data import get_testdata_file

from server.app import build_app
from server.records.deid import scan_for_identifiers
from server.state import STATE
from tests.records.api_helpers import User, audit_actions, open_user, records_config

NEEDLES = ["Jane Hill", "Hill^Jane", "P-1", "19610412", "20250302", "1961-04-12", "2025-03-02"]


def _ct_of_jane() -> bytes:
    ds = pydicom.dcmread(str(get_testdata_file("CT_small.dcm")))
    ds.PatientName = "Hill^Jane"
    ds.PatientID = "P-1"
    ds.PatientBirthDate = "19610412"
    ds.StudyDate = "20250302"
    ds.InstitutionName = "Hill Clinic"
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def _photo_with_exif() -> bytes:
    image = Image.new("RGB", (64, 48), (10, 200, 10))
    exif = Image.Exif()
    exif[0x013B] = "Jane Hill"  # Artist
    exif[0x9003] = "2025:03:02 10:00:00"  # DateTimeOriginal
    out = io.BytesIO()
    image.save(out, format="JPEG", exif=exif.tobytes())
    return out.getvalue()


@pytest.fixture
async def alice(tmp_path: Path) -> AsyncIterator[tuple[User, object]]:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    app = build_app(records_config(tmp_path, url), asyncio.get_running_loop())
    server = TestServer(app)
    await server.start_server()
    user = await open_user(server, "alice")
    try:
        yield user, app[STATE].database
    finally:
        await user.http.close()
        await server.close()


async def test_14_export_needs_consent_and_leaks_nothing(alice: tuple[User, object]) -> None:
    user, database = alice
    granted = await user.access("P-1", ("view", "edit"))
    pid = granted["patient_id"]
    base = f"/api/patients/{pid}"
    for data in (_ct_of_jane(), _photo_with_exif()):
        resp = await user.request("POST", base + "/records", data=data)
        assert resp.status == 201, await resp.text()
    note = {"note": "Jane Hill (P-1) seen on 2025-03-02", "dob": "1961-04-12", "bmi": 27.1}
    resp = await user.request("POST", base + "/emr", json={"fields": note})
    assert resp.status == 201

    resp = await user.request("GET", base + "/export")
    assert resp.status == 409 and "consent" in (await resp.json())["error"]
    resp = await user.request(
        "POST", base + "/consent", json={"purpose": "export", "granted": True}
    )
    assert resp.status == 201

    resp = await user.request("GET", base + "/export")
    assert resp.status == 200 and resp.content_type == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(await resp.read()))
    names = archive.namelist()
    assert sum(n.startswith("ct_image/") for n in names) == 1
    assert sum(n.startswith("clinical_photo/") for n in names) == 1
    assert sum(n.startswith("emr_entry/") for n in names) == 1
    for name in names:
        data = archive.read(name)
        assert scan_for_identifiers(data, NEEDLES) == [], name
    ct = next(n for n in names if n.startswith("ct_image/"))
    ds = pydicom.dcmread(io.BytesIO(archive.read(ct)))
    assert ds.PatientIdentityRemoved == "YES" and ds.PatientName != "Hill^Jane"
    emr = next(n for n in names if n.startswith("emr_entry/"))
    assert "27.1" in archive.read(emr).decode()
    assert audit_actions(database, "alice")[-1] == "record.export"  # type: ignore[arg-type]
    assert "record.export_refused" in audit_actions(database, "alice")  # type: ignore[arg-type]


async def test_export_of_real_dicom_files_passes_its_own_self_check(tmp_path: Path) -> None:
    """The demo patient's name has everyday words ("Patient"): the check must not trip on
    the de-identification method text, and MR and CT files both export."""
    from server.config import PatientConfig

    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    config = records_config(tmp_path, url)
    config = config.model_copy(
        update={
            "patients": [PatientConfig(id="P-1", name="Demo Patient (synthetic)", group="hill")]
        }
    )
    app = build_app(config, asyncio.get_running_loop())
    server = TestServer(app)
    await server.start_server()
    user = await open_user(server, "alice")
    try:
        granted = await user.access("P-1", ("view", "edit"))
        base = f"/api/patients/{granted['patient_id']}"
        for name in ("CT_small.dcm", "MR_small.dcm"):
            data = Path(str(get_testdata_file(name))).read_bytes()
            # the test files name their own patients: filed here only when confirmed
            records = base + "/records?confirm_identity_mismatch=true"
            resp = await user.request("POST", records, data=data)
            assert resp.status == 201, await resp.text()
        await user.request("POST", base + "/consent", json={"purpose": "export", "granted": True})
        resp = await user.request("GET", base + "/export")
        assert resp.status == 200, await resp.text()
        archive = zipfile.ZipFile(io.BytesIO(await resp.read()))
        assert sum(n.endswith(".dcm") for n in archive.namelist()) == 2
    finally:
        await user.http.close()
        await server.close()

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

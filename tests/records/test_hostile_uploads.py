"""Uploads that lie: another patient's DICOM, broken DICOM, parse bombs, active PDFs."""

from __future__ import annotations

import io
import struct
import time
from pathlib import Path

import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file
from sqlalchemy import select

from server.audit.log import AuditEntry
from server.records.ingest import Category, IngestError, IngestLimits, inspect_upload
from server.records.models import CtImage
from tests.records.api_helpers import count_rows, png_bytes, records_config, running_site

CT_SMALL = Path(str(get_testdata_file("CT_small.dcm")))


def _refused(path: Path, declared: Category | None = None, **limits: float) -> IngestError:
    with pytest.raises(IngestError) as caught:
        inspect_upload(path, declared, IngestLimits(**limits))  # type: ignore[arg-type]
    return caught.value


# --- DICOM -------------------------------------------------------------------------------


def _bad_length_dicom() -> bytes:
    """CT_small with one element's length, shortly before the pixel data, 6 bytes too long."""
    ds = pydicom.dcmread(CT_SMALL)
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    data = bytearray(out.getvalue())
    pixel_tag = data.find(b"\xe0\x7f\x10\x00")
    pos = data.rfind(b"\x28\x00", 0, pixel_tag - 8)
    while data[pos + 4 : pos + 6] not in (b"US", b"DS", b"IS", b"CS", b"LO", b"SH"):
        pos = data.rfind(b"\x28\x00", 0, pos)
    (length,) = struct.unpack_from("<H", data, pos + 6)
    struct.pack_into("<H", data, pos + 6, length + 6)
    return bytes(data)


def test_a_dicom_with_a_bad_element_length_is_refused_at_upload(tmp_path: Path) -> None:
    upload = tmp_path / "upload"
    upload.write_bytes(_bad_length_dicom())
    error = _refused(upload, Category.CT)
    assert error.status == 422 and "DICOM" in error.reason


async def test_a_dicom_of_another_patient_is_refused_unless_confirmed(tmp_path: Path) -> None:
    config = records_config(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}")
    async with running_site(config) as site:
        alice = await site.user("alice")
        granted = await alice.access("P-1", ("view", "edit"))
        records = f"/api/patients/{granted['patient_id']}/records"
        resp = await alice.request("POST", records, data=CT_SMALL.read_bytes())
        assert resp.status == 409, await resp.text()
        reason = (await resp.json())["error"]
        assert "'1CT1'" in reason and "'P-1'" in reason  # both identities named
        assert count_rows(site.database, CtImage) == 0
        confirmed = records + "?confirm_identity_mismatch=true"
        resp = await alice.request("POST", confirmed, data=CT_SMALL.read_bytes())
        assert resp.status == 201, await resp.text()
        with site.database.session() as session:
            details = list(
                session.scalars(
                    select(AuditEntry.detail).where(AuditEntry.action == "record.create")
                )
            )
        assert details[-1]["identity_mismatch_confirmed"] == {
            "file_patient_id": "1CT1",
            "patient": "P-1",
        }


# --- parse bombs -------------------------------------------------------------------------


def _tiff(pages: int, size: int, mode: str, compression: str) -> bytes:
    page = Image.new(mode, (size, size), 255 if mode != "RGB" else (255, 255, 255))
    out = io.BytesIO()
    page.save(
        out,
        format="TIFF",
        save_all=True,
        append_images=[page] * (pages - 1),
        compression=compression,
    )
    return out.getvalue()


def test_a_small_multi_page_tiff_of_huge_blank_pages_is_refused(tmp_path: Path) -> None:
    upload = tmp_path / "upload"
    upload.write_bytes(_tiff(200, 4000, "1", "group4"))
    assert upload.stat().st_size < 400_000
    started = time.monotonic()
    error = _refused(upload, None)
    assert error.status == 422 and "pixels" in error.reason
    assert time.monotonic() - started < 10


def test_a_parse_past_the_time_limit_is_killed_and_refused(tmp_path: Path) -> None:
    from server.records.ingest.sandbox import inspect_sandboxed

    upload = tmp_path / "upload"
    upload.write_bytes(_tiff(60, 2000, "L", "tiff_deflate"))
    # Decoding its pages takes seconds; the page count alone (headers only) must not stop
    # it first, whatever the machine's speed: only the clock may.
    limits = IngestLimits(max_parse_seconds=0.5, max_total_pixels=10**13)
    started = time.monotonic()
    with pytest.raises(IngestError) as caught:
        inspect_sandboxed(upload, None, limits)
    assert time.monotonic() - started < 5
    assert caught.value.status == 422 and "0.5 s" in caught.value.reason
    assert sorted(p.name for p in tmp_path.iterdir()) == ["upload"]  # nothing left behind


def test_a_parse_past_the_memory_limit_is_refused(tmp_path: Path) -> None:
    from server.records.ingest.sandbox import inspect_sandboxed

    upload = tmp_path / "upload"
    upload.write_bytes(png_bytes(7000, 7000))  # 49 MP: under the pixel limit, 147 MB of RGB
    with pytest.raises(IngestError) as caught:
        inspect_sandboxed(upload, None, IngestLimits(max_parse_memory_mb=48))
    assert caught.value.status == 422 and "memory" in caught.value.reason
    inspected = inspect_sandboxed(upload, None, IngestLimits())
    assert inspected.metadata["width"] == 7000 and inspected.cleaned is not None
    assert inspected.cleaned.parent == tmp_path
    inspected.cleaned.unlink()


def test_a_worker_checks_file_after_file_and_a_killed_one_is_replaced(tmp_path: Path) -> None:
    from server.records.ingest import sandbox

    photo = tmp_path / "photo"
    photo.write_bytes(png_bytes(64, 48))
    limits = IngestLimits()
    workers = []
    for _ in range(3):
        inspected = sandbox.inspect_sandboxed(photo, None, limits)
        assert inspected.metadata["width"] == 64
        if inspected.cleaned is not None:
            inspected.cleaned.unlink()
        workers.append([w.process.pid for w in sandbox._IDLE])
    assert workers[0] == workers[1] == workers[2] != [], "one worker, file after file"
    slow = tmp_path / "slow"
    slow.write_bytes(_tiff(60, 2000, "L", "tiff_deflate"))
    with pytest.raises(IngestError):
        sandbox.inspect_sandboxed(slow, None, IngestLimits(max_parse_seconds=0.5))
    inspected = sandbox.inspect_sandboxed(photo, None, limits)  # a fresh worker
    assert inspected.metadata["width"] == 64
    assert all(w.process.is_alive() for w in sandbox._IDLE)


# --- active content ----------------------------------------------------------------------


def _pdf(body: bytes) -> bytes:
    return (
        b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R "
        + body
        + b" >> endobj\n2 0 obj << /Type /Pages /Kids [3 0 R] /Count 1 >> endobj\n"
        b"3 0 obj << /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >> endobj\n"
        b"trailer << /Root 1 0 R >>\n%%EOF\n"
    )


@pytest.mark.parametrize(
    "body",
    [
        b"/OpenAction << /S /JavaScript /JS (app.alert(1)) >>",
        b"/OpenAction << /S /Java#53cript /J#53 (app.alert(1)) >>",
        b"/OpenAction << /S /Launch /F (cmd.exe) >>",
        b"/Names << /EmbeddedFiles << /Names [(a.exe) 4 0 R] >> >>",
        b"% <html><body><script>alert(document.cookie)</script></body></html>",
    ],
)
def test_a_pdf_with_active_content_is_refused(tmp_path: Path, body: bytes) -> None:
    upload = tmp_path / "upload"
    upload.write_bytes(_pdf(body))
    error = _refused(upload, Category.SCAN)
    assert error.status == 422 and "PDF" in error.reason


def test_a_plain_pdf_is_still_accepted(tmp_path: Path) -> None:
    upload = tmp_path / "upload"
    upload.write_bytes(_pdf(b""))
    assert inspect_upload(upload, Category.SCAN).metadata["page_count"] == 1


async def test_stored_files_are_served_as_what_they_are(tmp_path: Path) -> None:
    config = records_config(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}")
    async with running_site(config) as site:
        alice = await site.user("alice")
        granted = await alice.access("P-1", ("view", "edit"))
        records = f"/api/patients/{granted['patient_id']}/records"
        resp = await alice.request("POST", records, data=_pdf(b"/Lang (en)"))
        assert resp.status == 201, await resp.text()
        body = await resp.json()
        resp = await alice.request("GET", f"{records}/record_scan/{body['id']}/content")
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "application/pdf"
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert resp.headers["Content-Disposition"].startswith("inline; filename=")
        assert "sandbox" in resp.headers["Content-Security-Policy"]
        hostile = _pdf(b"% <script>alert(1)</script>")
        resp = await alice.request("POST", records, data=hostile)
        assert resp.status == 422

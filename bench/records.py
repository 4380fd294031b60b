"""Patient records on one server: uploads per second, 60 s range export, grant check cost.

1. Uploads through the real HTTP API: an in-process server (``build_app`` + aiohttp
   ``TestServer`` on 127.0.0.1, SQLite WAL in a temporary folder, the records tests'
   configuration), alice logged in with an edit grant for P-1. N distinct camera-like
   1440×1080 JPEG photos (1.6 MP, with EXIF Make/Model/time/GPS that the server strips)
   and N distinct DICOM slices (pydicom's CT_small.dcm, each with a new SOPInstanceUID)
   are uploaded with IN_FLIGHT requests in flight (N = 200, ``--quick``: 40); each
   upload is streamed to staging, inspected, cleaned, stored in the blob store (fsync,
   rename), its row committed and audited before the 201. Baseline in the same run:
   ``BlobStore.put`` of the same bytes into an empty store, one at a time (hash, write,
   fsync, rename): what is left is HTTP, inspection, cleaning, the row and the audit.
2. Range requests: bench/archive_range.py's archive (1280×720 H.264 through
   ``SegmentWriter``) of one hour (``--quick``: ten minutes); ``remux_range`` of 60 s in
   the middle (median, segments in the page cache) and ``reencode_range`` of the same.
4. Consultation report: the chair signs one (draft changed, password checked, content
   gathered, Ed25519 envelope, blob, row and audit entry committed) and it is rendered
   as PDF (reportlab, CJK font) in Chinese: median ms over several new versions.
3. Authorization: ``AccessControl.check`` of a valid edit token in a SQLite database
   holding 1,000 grants, median µs over many calls in one session, beside a bare
   ``SELECT 1`` in the same session; also the per-request form (new session and
   transaction around the check, as ``check_access`` runs it, without the thread hop).
4. FHIR out (bench/fhir_export.py): whole patient records (two photos, three CT
   slices, three EMR entries each; 20 patients, ``--quick``: 5) exported as validated
   FHIR Bundles, full and de-identified, per second; baseline in the same run: the same
   rows and files dumped as plain JSON with base64 (no FHIR models).

    python bench/records.py [--quick]

Last line: JSON with photos_per_s, dicom_per_s, range_60s_ms, reencode_60s_ms,
authz_check_us, ratio (reencode / range), fhir_export_patients_per_s, report_pdf_ms and backend.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from aiohttp.test_utils import TestServer
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid
from sqlalchemy import text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.archive_range import RANGE_SECONDS, encode_clip, measure_ranges  # noqa: E402
from bench.fhir_export import fhir_export_figures  # noqa: E402
from server.access.grants import AccessControl, AccessDenied, Actor, IssuedGrant  # noqa: E402
from server.app import build_app  # noqa: E402
from server.config import ServerConfig  # noqa: E402
from server.db import open_database  # noqa: E402
from server.records.blobs import LocalBlobStore  # noqa: E402
from server.records.store import RecordStore  # noqa: E402
from server.reports.pdf import render_pdf  # noqa: E402
from server.reports.service import DraftInput  # noqa: E402
from tests.records.api_helpers import User, open_user, records_config  # noqa: E402
from tests.reports.world import PASSWORD as CHAIR_PASSWORD  # noqa: E402
from tests.reports.world import build as report_world  # noqa: E402

IN_FLIGHT = 2
PHOTO_W, PHOTO_H = 1440, 1080
MAX_UPLOAD_MB = 50
GRANTS = 1000
GRANT_PATIENTS = 20


# --- what is uploaded ---------------------------------------------------------------------


def photo_exif(index: int) -> Image.Exif:
    """What a phone puts in a wound photo: make, model, time, orientation and GPS."""
    exif = Image.Exif()
    exif[0x010F] = "Clinicam Bench"  # Make
    exif[0x0110] = "Phone 12"  # Model
    exif[0x0112] = 1  # Orientation
    exif[0x0131] = "bench 1.0"  # Software
    exif.get_ifd(0x8769)[0x9003] = f"2026:11:24 08:{index // 60 % 60:02d}:{index % 60:02d}"
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2] = "N", (52.0, 22.0, 15.5)
    gps[3], gps[4] = "E", (4.0, 53.0, 38.2)
    return exif


def photos(count: int, seed: int = 11) -> list[bytes]:
    """``count`` distinct 1440×1080 JPEGs (q 90): gradient, a moving disc, sensor noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:PHOTO_H, 0:PHOTO_W]
    base = np.stack(
        [90 + 80 * xx / PHOTO_W, 70 + 60 * yy / PHOTO_H, 60 + 40 * (xx + yy) / (PHOTO_W + PHOTO_H)],
        axis=-1,
    )
    noise = [rng.normal(0, 3.0, (PHOTO_H, PHOTO_W, 1)) for _ in range(4)]
    out = []
    for i in range(count):
        cx = PHOTO_W * (0.2 + 0.6 * (i * 0.618 % 1.0))
        disc = ((xx - cx) ** 2 + (yy - PHOTO_H / 2) ** 2) < (PHOTO_H / 5) ** 2
        pixels = np.where(disc[..., None], (190.0, 120.0, 110.0), base) + noise[i % len(noise)]
        frame = np.clip(pixels, 0, 255).astype(np.uint8)
        frame[:8, :8] = np.frombuffer(i.to_bytes(8, "big") * 24, np.uint8).reshape(8, 8, 3)
        buffer = io.BytesIO()
        Image.fromarray(frame, "RGB").save(buffer, format="JPEG", quality=90, exif=photo_exif(i))
        out.append(buffer.getvalue())
    return out


def dicom_slices(count: int) -> list[bytes]:
    """``count`` copies of CT_small.dcm, each a distinct instance (new SOPInstanceUID), of
    the patient they are filed for (P-1)."""
    dataset = pydicom.dcmread(str(get_testdata_file("CT_small.dcm")))
    dataset.PatientID = "P-1"
    out = []
    for _ in range(count):
        uid = generate_uid()
        dataset.SOPInstanceUID = uid
        dataset.file_meta.MediaStorageSOPInstanceUID = uid
        buffer = io.BytesIO()
        dataset.save_as(buffer, enforce_file_format=True)
        out.append(buffer.getvalue())
    return out


# --- 1. uploads ----------------------------------------------------------------------------


@dataclass(frozen=True)
class UploadRun:
    seconds: float
    stored_bytes: int
    last_id: int


async def upload_all(user: User, pid: int, payloads: list[bytes], category: str) -> UploadRun:
    """Upload every payload, IN_FLIGHT at a time; each must come back 201 as ``category``."""
    pending: Iterator[bytes] = iter(payloads)
    stored, last_id = 0, 0

    async def worker() -> None:
        nonlocal stored, last_id
        for data in pending:  # one shared iterator: each payload is sent once
            resp = await user.request(
                "POST",
                f"/api/patients/{pid}/records",
                data=data,
                headers={"Content-Type": "application/octet-stream"},
            )
            body = await resp.json()
            if resp.status != 201 or body.get("category") != category:
                raise RuntimeError(f"upload refused: {resp.status} {body}")
            stored, last_id = stored + int(body["size"]), int(body["id"])

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))
    return UploadRun(time.perf_counter() - start, stored, last_id)


async def check_stripped(user: User, pid: int, photo_id: int) -> None:
    """The stored photo kept its pixels' size and make, but lost the GPS position."""
    resp = await user.request(
        "GET", f"/api/patients/{pid}/records/clinical_photo/{photo_id}/content"
    )
    if resp.status != 200:
        raise RuntimeError(f"stored photo not served: {resp.status}")
    with Image.open(io.BytesIO(await resp.read())) as img:
        exif = img.getexif()
        if img.size != (PHOTO_W, PHOTO_H) or exif.get(0x010F) != "Clinicam Bench":
            raise RuntimeError("the stored photo is not the uploaded one")
        if exif.get_ifd(0x8825):
            raise RuntimeError("the stored photo still has its GPS position")


async def serve_and_upload(
    folder: Path, photo_data: list[bytes], dicom_data: list[bytes]
) -> tuple[UploadRun, UploadRun]:
    config = records_config(
        folder / "state",
        f"sqlite:///{folder / 'state' / 'clinicam.db'}",
        max_upload_mb=MAX_UPLOAD_MB,
    )
    app = build_app(config, asyncio.get_running_loop())
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    user = await open_user(server, "alice")
    try:
        granted = await user.access("P-1", ("view", "edit"))
        if granted["http_status"] != 201:
            raise RuntimeError(f"no edit grant: {granted}")
        pid = int(granted["patient_id"])
        # Warm-up (first Pillow/pydicom use, first blob folders): one extra of each.
        await upload_all(user, pid, photo_data[:1], "clinical_photo")
        await upload_all(user, pid, dicom_data[:1], "ct_image")
        photo_run = await upload_all(user, pid, photo_data[1:], "clinical_photo")
        dicom_run = await upload_all(user, pid, dicom_data[1:], "ct_image")
        await check_stripped(user, pid, photo_run.last_id)
    finally:
        await user.http.close()
        await server.close()
    return photo_run, dicom_run


def blob_puts(folder: Path, payloads: list[bytes]) -> float:
    """Seconds to ``BlobStore.put`` every payload into an empty store, one at a time."""
    store = LocalBlobStore(folder)
    start = time.perf_counter()
    for data in payloads:
        store.put(io.BytesIO(data), max_bytes=MAX_UPLOAD_MB * 1024 * 1024)
    return time.perf_counter() - start


# --- 2. range requests ----------------------------------------------------------------------


def range_figures(archive_seconds: int, runs: int) -> tuple[float, float]:
    """Median remux (page cache warm) and one re-encode of 60 s mid-archive, in ms."""
    run = measure_ranges(encode_clip(), archive_seconds, runs)
    return statistics.median(run.warm_ms), run.reencode_ms


# --- 3. authorization -------------------------------------------------------------------------


def median_us(samples: list[int]) -> float:
    return statistics.median(samples) / 1000


def authz_figures(folder: Path, checks: int) -> dict[str, float]:
    """Median µs of AccessControl.check, SELECT 1, and check in its own transaction."""
    config = ServerConfig.model_validate(
        {
            "state_dir": str(folder),
            "access_rules": [
                {"role": "chair", "all_patients": True, "operations": ["view", "edit"]}
            ],
        }
    )
    access = AccessControl(config, config)
    database = open_database(f"sqlite:///{folder / 'clinicam.db'}")
    try:
        with database.session() as session, session.begin():
            patients = [
                RecordStore.ensure_patient(session, f"P-{n}", f"Patient {n}")
                for n in range(GRANT_PATIENTS)
            ]
            issued: list[tuple[Actor, IssuedGrant]] = []
            for n in range(GRANTS):
                actor = Actor(f"user{n:04d}", "chair")
                result = access.request(
                    session, actor, patients[n % GRANT_PATIENTS], ["view", "edit"], None, "bench"
                )
                assert isinstance(result, IssuedGrant)
                issued.append((actor, result))
        actor, chosen = issued[GRANTS // 2]
        pid, token = chosen.grant.patient_id, chosen.token

        def check(session: Any) -> None:
            access.check(session, actor, pid, token, "edit")

        with database.session() as session:
            try:  # a real lookup: a wrong token and another patient are refused
                access.check(session, actor, pid, token + "x", "edit")
                raise RuntimeError("a wrong token passed")
            except AccessDenied:
                pass
            try:
                access.check(session, actor, pid + 1, token, "edit")
                raise RuntimeError("another patient's grant passed")
            except AccessDenied:
                pass
            for _ in range(200):
                check(session)
                session.execute(text("SELECT 1")).scalar_one()
            check_ns, select_ns = [], []
            for _ in range(checks):  # interleaved, so both see the same conditions
                t0 = time.perf_counter_ns()
                check(session)
                t1 = time.perf_counter_ns()
                session.execute(text("SELECT 1")).scalar_one()
                t2 = time.perf_counter_ns()
                check_ns.append(t1 - t0)
                select_ns.append(t2 - t1)
        request_ns = []
        for _ in range(max(200, checks // 5)):
            t0 = time.perf_counter_ns()
            with database.session() as session, session.begin():
                check(session)
            request_ns.append(time.perf_counter_ns() - t0)
    finally:
        database.close()
    return {
        "check": median_us(check_ns),
        "select1": median_us(select_ns),
        "request": median_us(request_ns),
    }


# --- the consultation report -----------------------------------------------------------------


def report_pdf_ms(folder: Path, runs: int) -> float:
    """Median ms to sign one report (a new version each time) and render it as PDF."""
    world = report_world(folder)
    findings = "左前臂湿疹，边界清楚，无渗出。Eczema of the left forearm, no infection. " * 6

    async def one(index: int) -> float:
        given = DraftInput(f"{index}: {findings}", "润肤剂每日两次；四周后复诊。", [world.photo_id])
        await world.reports.save_draft("chair", world.cid, given)
        start = time.perf_counter()
        filed = await world.reports.sign("chair", world.cid, CHAIR_PASSWORD)
        report = await world.reports.read("chair", world.patient, str(filed["id"]), "pdf")
        pdf = render_pdf(report.verified, "zh-CN")
        elapsed = time.perf_counter() - start
        assert pdf.startswith(b"%PDF") and report.verified.valid
        return elapsed * 1000

    async def all_runs() -> list[float]:
        return [await one(i) for i in range(runs + 1)]

    samples = asyncio.run(all_runs())[1:]  # the first loads the font and makes the key
    world.database.close()
    return statistics.median(samples)


# --- main -------------------------------------------------------------------------------------


def stopwatch(what: str, fn: Callable[[], Any]) -> Any:
    start = time.perf_counter()
    result = fn()
    print(f"  ({what} took {time.perf_counter() - start:.1f} s)")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="40 uploads each, 10-minute archive (under a minute)"
    )
    args = parser.parse_args()
    uploads, archive_seconds, runs, checks = (
        (40, 600, 5, 3000) if args.quick else (200, 3600, 15, 20000)
    )
    fhir_patients = 5 if args.quick else 20
    began = time.perf_counter()

    load = os.getloadavg()[0]
    print(
        f"load average before the run: {load:.2f} on {os.cpu_count()} CPUs (other work skews this)"
    )
    photo_data = stopwatch("making the photos", lambda: photos(uploads + 1))
    dicom_data = dicom_slices(uploads + 1)
    photo_mb = sum(map(len, photo_data[1:])) / 1e6
    dicom_kb = sum(map(len, dicom_data[1:])) / len(dicom_data[1:]) / 1e3

    with tempfile.TemporaryDirectory(prefix="clinicam-records-bench-") as tmp:
        folder = Path(tmp)
        photo_run, dicom_run = asyncio.run(serve_and_upload(folder, photo_data, dicom_data))
        photo_blob_s = blob_puts(folder / "baseline-photos", photo_data[1:])
        dicom_blob_s = blob_puts(folder / "baseline-dicom", dicom_data[1:])
        authz = authz_figures(folder / "authz", checks)
        (folder / "fhir").mkdir()
        fhir = fhir_export_figures(
            folder / "fhir", photo_data[1:], dicom_data[1:], min(fhir_patients, uploads // 3)
        )
        report_ms = report_pdf_ms(folder / "report", runs)

    photos_per_s = uploads / photo_run.seconds
    dicom_per_s = uploads / dicom_run.seconds
    photo_blob_per_s, dicom_blob_per_s = uploads / photo_blob_s, uploads / dicom_blob_s
    print(
        f"photo uploads ({uploads} JPEG {PHOTO_W}x{PHOTO_H}, {photo_mb / uploads * 1e3:.0f} KB "
        f"each, {IN_FLIGHT} in flight): {photos_per_s:.1f}/s "
        f"({photo_mb / photo_run.seconds:.1f} MB/s, {1000 / photos_per_s:.1f} ms each); "
        f"stored {(photo_mb * 1e6 - photo_run.stored_bytes) / uploads:.0f} bytes smaller each "
        "(EXIF GPS stripped)"
    )
    print(
        f"  baseline BlobStore.put of the same bytes, one at a time: {photo_blob_per_s:.1f}/s "
        f"-> the upload path costs {photo_blob_per_s / photos_per_s:.1f}x a bare blob write"
    )
    print(
        f"DICOM uploads ({uploads} CT slices, {dicom_kb:.0f} KB each, {IN_FLIGHT} in flight): "
        f"{dicom_per_s:.1f}/s ({1000 / dicom_per_s:.1f} ms each)"
    )
    print(
        f"  baseline BlobStore.put of the same bytes, one at a time: {dicom_blob_per_s:.1f}/s "
        f"-> the upload path costs {dicom_blob_per_s / dicom_per_s:.1f}x a bare blob write"
    )

    range_ms, reencode_ms = range_figures(archive_seconds, runs)
    print(f"remux_range {RANGE_SECONDS} s, segments in page cache: median {range_ms:.1f} ms")
    print(f"reencode_range (decode + libx264 ultrafast), same range: {reencode_ms:.0f} ms")
    print(f"ratio reencode / remux: {reencode_ms / range_ms:.1f}x")

    print(
        f"AccessControl.check, valid edit token, {GRANTS} grants in SQLite: median "
        f"{authz['check']:.1f} us; bare SELECT 1 in the same session: {authz['select1']:.1f} us "
        f"({authz['check'] / authz['select1']:.1f}x; {checks} each, interleaved)"
    )
    print(f"  per request (new session + transaction around the check): {authz['request']:.1f} us")
    print(
        f"FHIR export, {fhir.patients} patients (2 photos, 3 CT slices, 3 EMR entries each, "
        f"bundle {fhir.bundle_kb:.0f} KB): {fhir.full_per_s:.1f} patients/s; de-identified "
        f"{fhir.deid_per_s:.1f}/s; baseline plain JSON dump of the same rows and files "
        f"{fhir.plain_per_s:.1f}/s -> FHIR costs {fhir.plain_per_s / fhir.full_per_s:.1f}x"
    )
    print(
        f"consultation report signed (argon2 password check included) and rendered as PDF: "
        f"median {report_ms:.0f} ms ({runs} versions)"
    )
    print(
        f"figures from this machine: {os.cpu_count()} CPUs, load average "
        f"{'/'.join(f'{x:.2f}' for x in os.getloadavg())} now (was {load:.2f} at the start), "
        f"SQLite WAL synchronous=FULL in {tempfile.gettempdir()}, "
        f"{time.perf_counter() - began:.0f} s in all"
    )
    result = {
        "photos_per_s": round(photos_per_s, 1),
        "dicom_per_s": round(dicom_per_s, 1),
        "range_60s_ms": round(range_ms, 1),
        "reencode_60s_ms": round(reencode_ms, 1),
        "authz_check_us": round(authz["check"], 1),
        "ratio": round(reencode_ms / range_ms, 1),
        "fhir_export_patients_per_s": round(fhir.full_per_s, 1),
        "report_pdf_ms": round(report_ms, 1),
        "backend": "sqlite",
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()

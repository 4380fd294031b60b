"""SIGKILL the server during concurrent uploads, again and again; nothing acknowledged is lost.

The issue's crash test: a real ``clinicam server`` process (SQLite WAL, or a real
PostgreSQL) takes uploads from several concurrent clients (distinct noise PNGs of
varying size, and CT slices made unique by a new SOPInstanceUID). A short random time
after the uploads start, the process is killed with SIGKILL, restarted on the same
port and state folder, and the clients log in again and carry on; five times. Then:

- the restarted server lists every acknowledged (201) upload with its id and SHA-256,
  and serves bytes with that hash;
- with the server stopped, the database holds a row for every acknowledged upload in
  the right table with the acknowledged hash and size, the blob file exists and its
  SHA-256 recomputed from disk matches;
- no row of any blob table points at a missing or different blob;
- every acknowledged upload has its ``record.create`` audit entry and
  ``clinicam audit verify`` passes.

It also asks that every record row, acknowledged or
not, has its ``record.create`` audit entry: a request cut off by the kill may still
have committed its row.

It checks that the kills landed while requests were in flight (the clients saw
requests cut off), so they can fail.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import itertools
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from aiohttp import (
    ClientConnectorError,
    ClientError,
    ClientSession,
    ClientTimeout,
    CookieJar,
)
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid
from sqlalchemy import select

from clinicam.tomlwrite import dumps
from clinicam_app.procs import free_port
from clinicam_app.procs import stop as stop_process
from server.audit.log import AuditEntry
from server.auth import hash_secret
from server.config import ServerConfig
from server.db import connect_database
from server.records.blobs import LocalBlobStore
from server.records.models import BLOB_TABLES
from server.records.store import TABLE_OF
from tests.records.api_helpers import PASSWORD

ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
KILL_CYCLES = 5
IN_FLIGHT = 5
DICOM_EVERY = 5  # every fifth upload is a CT slice, the rest are photos
KILL_DELAY_S = (0.2, 1.0)
START_TIMEOUT_S = 30.0
PATIENT = "P-1"

pytestmark = pytest.mark.timeout(240)


# --- what is uploaded ---------------------------------------------------------------


@dataclass(frozen=True)
class Upload:
    """One file a client sends; ``sha256`` is of the bytes sent."""

    name: str
    kind: str  # "photo" or "ct"
    data: bytes
    sha256: str


class Files:
    """Distinct uploads: noise PNGs of varying size and unique CT slices."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._pixels = np.random.default_rng(rng.randrange(1 << 32))
        self._count = itertools.count()
        self._ct = pydicom.dcmread(str(get_testdata_file("CT_small.dcm")))
        self._ct.PatientID = PATIENT

    def __next__(self) -> Upload:
        n = next(self._count)
        if n % DICOM_EVERY == DICOM_EVERY - 1:
            uid = generate_uid()
            self._ct.SOPInstanceUID = uid
            self._ct.file_meta.MediaStorageSOPInstanceUID = uid
            out = io.BytesIO()
            self._ct.save_as(out, enforce_file_format=True)
            data, kind = out.getvalue(), "ct"
        else:
            # Noise does not compress: 64..360 px squares are ~12 KB..390 KB on the wire.
            width, height = self._rng.randrange(64, 360), self._rng.randrange(64, 360)
            pixels = self._pixels.integers(0, 256, (height, width, 3), dtype=np.uint8)
            out = io.BytesIO()
            Image.fromarray(pixels, "RGB").save(out, format="PNG", compress_level=1)
            data, kind = out.getvalue(), "photo"
        return Upload(f"upload-{n}", kind, data, hashlib.sha256(data).hexdigest())

    def __iter__(self) -> Iterator[Upload]:
        return self


# --- what the clients saw -----------------------------------------------------------


@dataclass(frozen=True)
class Acked:
    """An upload the server answered 201 to."""

    upload: Upload
    category: str
    record_id: int
    sha256: str
    size: int
    cycle: int


@dataclass
class Ledger:
    acked: list[Acked] = field(default_factory=list)
    cut: list[tuple[int, Upload, str]] = field(default_factory=list)  # in flight at the kill
    refused: int = 0  # connection refused after the kill (never reached the server)
    unexpected: list[str] = field(default_factory=list)  # any answer other than 201
    cut_per_cycle: dict[int, int] = field(default_factory=dict)
    acked_per_cycle: dict[int, int] = field(default_factory=dict)


# --- the server process -------------------------------------------------------------


def write_config(path: Path, state_dir: Path, database_url: str, port: int) -> None:
    """A server config like ``records_config``: alice (chair) may edit P-1's records."""
    data: dict[str, Any] = {
        "log_level": "INFO",
        "state_dir": str(state_dir),
        "database_url": database_url,
        "http": {"host": HOST, "port": port, "cookie_secure": False},
        "mqtt": {"port": 1, "username": "server", "password": "x"},  # nothing listens
        "experts": [
            {
                "username": "alice",
                "display_name": "Alice",
                "password_hash": hash_secret(PASSWORD),
                "role": "chair",
            }
        ],
        "patients": [{"id": PATIENT, "name": "Jane Hill", "group": "hill"}],
        "access_rules": [{"role": "chair", "groups": ["hill"], "operations": ["view", "edit"]}],
        "records": {"max_upload_mb": 20},
    }
    ServerConfig.model_validate(data)  # a mistake here fails now, not in the child
    path.write_text(dumps(data))


class ServerProcess:
    """``python -m clinicam_app server --config FILE``, started, killed and restarted."""

    def __init__(self, config: Path, port: int, log: Path) -> None:
        self.config = config
        self.port = port
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def base(self) -> str:
        return f"http://{HOST}:{self.port}"

    async def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None
        self.starts += 1
        with self.log.open("ab") as log:
            log.write(f"\n===== start {self.starts} =====\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "clinicam_app", "server", "--config", str(self.config)],
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"server exited with {self.proc.returncode} at start {self.starts}:\n"
                    + self.log_tail()
                )
            try:
                _, writer = await asyncio.open_connection(HOST, self.port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            writer.close()
            await writer.wait_closed()
            return
        raise AssertionError(f"server not listening after {START_TIMEOUT_S:.0f} s")

    def kill(self) -> None:
        """SIGKILL: no cleanup handler, no flush, no goodbye."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        assert self.proc.returncode == -signal.SIGKILL, self.proc.returncode

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            stop_process(self.proc, "clinicam server", timeout_s=10)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


# --- a client -------------------------------------------------------------------------


@dataclass
class Client:
    http: ClientSession
    base: str
    csrf: str = ""
    token: str = ""
    patient_id: int = 0

    def headers(self) -> dict[str, str]:
        return {"X-CSRF-Token": self.csrf, "X-Clinicam-Access": self.token}

    def records_url(self) -> str:
        return f"{self.base}/api/patients/{self.patient_id}/records"


async def log_in_with_grant(http: ClientSession, base: str) -> Client:
    """Log in as alice and get (or re-collect) her edit grant for P-1."""
    client = Client(http, base)
    async with http.post(
        f"{base}/api/login", json={"username": "alice", "password": PASSWORD}
    ) as resp:
        assert resp.status == 200, await resp.text()
        client.csrf = (await resp.json())["csrf"]
    async with http.post(
        f"{base}/api/access",
        json={"patient": PATIENT, "operations": ["view", "edit"]},
        headers={"X-CSRF-Token": client.csrf},
    ) as resp:
        assert resp.status == 201, await resp.text()
        body = await resp.json()
    assert set(body["operations"]) == {"view", "edit"}, body
    client.token, client.patient_id = body["token"], int(body["patient_id"])
    return client


async def uploader(
    client: Client,
    files: Files,
    ledger: Ledger,
    cycle: int,
    stop: asyncio.Event,
    killed_at: list[float],
) -> None:
    """Upload new files one after another until the server dies or ``stop`` is set."""
    while not stop.is_set():
        upload = next(files)
        started = time.monotonic()
        try:
            async with client.http.post(
                client.records_url(),
                params={"title": upload.name},
                data=upload.data,
                headers={**client.headers(), "Content-Type": "application/octet-stream"},
            ) as resp:
                status = resp.status
                text = await resp.text()
                body = await resp.json() if status == 201 else None
        except ClientConnectorError as exc:
            if not killed_at:
                raise AssertionError(
                    f"cycle {cycle}: server refused a connection: {exc!r}"
                ) from exc
            ledger.refused += 1  # the server was already gone: nothing was sent
            return
        except (ClientError, TimeoutError) as exc:
            if killed_at and started < killed_at[0]:
                ledger.cut.append((cycle, upload, type(exc).__name__))
                ledger.cut_per_cycle[cycle] = ledger.cut_per_cycle.get(cycle, 0) + 1
                return
            raise AssertionError(
                f"cycle {cycle}: {upload.name} failed while the server was up: {exc!r}"
            ) from exc
        if status != 201 or body is None:
            ledger.unexpected.append(f"cycle {cycle}: {upload.name} got {status}: {text[:300]}")
            continue
        expected = "ct_image" if upload.kind == "ct" else "clinical_photo"
        if body.get("category") != expected:
            ledger.unexpected.append(f"cycle {cycle}: {upload.name} filed as {body!r}")
            continue
        ledger.acked.append(
            Acked(upload, body["category"], int(body["id"]), body["sha256"], body["size"], cycle)
        )
        ledger.acked_per_cycle[cycle] = ledger.acked_per_cycle.get(cycle, 0) + 1


def new_http() -> ClientSession:
    return ClientSession(
        cookie_jar=CookieJar(unsafe=True), timeout=ClientTimeout(total=30, connect=5)
    )


async def kill_cycle(
    server: ServerProcess, files: Files, ledger: Ledger, cycle: int, delay_s: float
) -> None:
    """Start the server, upload with IN_FLIGHT clients, SIGKILL it after ``delay_s``."""
    await server.start()
    async with new_http() as http:
        client = await log_in_with_grant(http, server.base)
        stop, killed_at = asyncio.Event(), list[float]()
        tasks = [
            asyncio.create_task(uploader(client, files, ledger, cycle, stop, killed_at))
            for _ in range(IN_FLIGHT)
        ]
        await asyncio.sleep(delay_s)
        killed_at.append(time.monotonic())
        server.kill()
        stop.set()
        async with asyncio.timeout(35):
            await asyncio.gather(*tasks)


# --- checks after the crashes ---------------------------------------------------------


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


async def check_through_the_api(server: ServerProcess, ledger: Ledger) -> list[str]:
    """After a last restart the server lists and serves every acknowledged upload."""
    problems: list[str] = []
    await server.start()
    async with new_http() as http:
        client = await log_in_with_grant(http, server.base)
        async with http.get(client.records_url(), headers=client.headers()) as resp:
            assert resp.status == 200, await resp.text()
            listing = (await resp.json())["records"]
        listed = {
            (category, row["id"]): row["sha256"]
            for category, rows in listing.items()
            for row in rows
        }
        for a in ledger.acked:
            what = f"acknowledged {a.upload.name} ({a.category}/{a.record_id}, cycle {a.cycle})"
            if listed.get((a.category, a.record_id)) != a.sha256:
                problems.append(f"API: {what} is not listed with its hash")
                continue
            url = f"{client.records_url()}/{a.category}/{a.record_id}/content"
            async with http.get(url, headers=client.headers()) as resp:
                served = await resp.read()
            if resp.status != 200:
                problems.append(f"API: {what}: content answers {resp.status}")
            elif hashlib.sha256(served).hexdigest() != a.sha256:
                problems.append(f"API: {what}: content has another hash")
    server.stop()
    return problems


@dataclass(frozen=True)
class Stored:
    """What the database holds after the crashes, read directly with the server stopped."""

    rows: dict[tuple[str, int], tuple[str, int]]  # (category, id) -> (sha256, size)
    audited: dict[tuple[str, int], str]  # (category, id) -> sha256 of its record.create entry


def read_back(database_url: str) -> Stored:
    category_of = {table: category for category, table in TABLE_OF.items()}
    assert set(category_of) == set(BLOB_TABLES)
    database = connect_database(database_url)
    try:
        with database.session() as session:
            rows = {
                (category_of[table], row.id): (row.blob_sha256, row.blob_size)
                for table in BLOB_TABLES
                for row in session.scalars(select(table))
            }
            audited = {
                (str(entry.detail.get("category")), int(entry.detail.get("id", -1))): str(
                    entry.detail.get("sha256")
                )
                for entry in session.scalars(
                    select(AuditEntry).where(AuditEntry.action == "record.create")
                )
            }
    finally:
        database.close()
    return Stored(rows, audited)


def lost_or_dangling(stored: Stored, blobs: LocalBlobStore, ledger: Ledger) -> list[str]:
    """The issue's property: acknowledged uploads are there; no row points at a missing blob."""
    problems: list[str] = []
    for a in ledger.acked:
        row = stored.rows.get((a.category, a.record_id))
        if row is None:
            problems.append(f"acknowledged {a.upload.name} has no row {a.category}/{a.record_id}")
        elif row != (a.sha256, a.size):
            problems.append(f"acknowledged {a.upload.name}: row {row} != ack {a.sha256, a.size}")
        if stored.audited.get((a.category, a.record_id)) != a.sha256:
            problems.append(f"acknowledged {a.upload.name} has no record.create audit entry")
    for (category, rid), (sha, size) in sorted(stored.rows.items()):
        path = blobs.path_of(sha)
        if not path.is_file():
            problems.append(f"{category}/{rid} points at missing blob {sha}")
        elif sha256_of(path) != sha or path.stat().st_size != size:
            problems.append(f"{category}/{rid}: blob {sha} on disk has other content")
    return problems


def audit_verify(database_url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "clinicam_app", "audit", "verify", "--database", database_url],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


@dataclass
class Outcome:
    ledger: Ledger
    stored: Stored
    blobs: LocalBlobStore
    staging_leftovers: list[str]
    api_problems: list[str]


async def crash_scenario(tmp_path: Path, database_url: str) -> Outcome:
    """KILL_CYCLES kills during uploads, a last restart checked through the API, stop."""
    seed = random.SystemRandom().randrange(1 << 30)
    rng = random.Random(seed)
    state_dir = tmp_path / "state"
    config, port = tmp_path / "server.toml", free_port(HOST)
    write_config(config, state_dir, database_url, port)
    server = ServerProcess(config, port, tmp_path / "server.log")
    files, ledger = Files(rng), Ledger()
    delays = [rng.uniform(*KILL_DELAY_S) for _ in range(KILL_CYCLES)]
    started = time.monotonic()
    try:
        async with asyncio.timeout(150):
            for cycle, delay in enumerate(delays, start=1):
                await kill_cycle(server, files, ledger, cycle, delay)
            api_problems = await check_through_the_api(server, ledger)
    except BaseException:
        print(f"seed {seed}; server log tail:\n{server.log_tail()}")
        raise
    finally:
        server.stop()
    assert server.starts == KILL_CYCLES + 1
    assert not ledger.unexpected, "\n".join(ledger.unexpected)
    # The kills must have landed while uploads were in flight, or this proves nothing.
    assert all(ledger.cut_per_cycle.get(c, 0) >= 1 for c in range(1, KILL_CYCLES + 1)), (
        f"some kill hit no request in flight: {ledger.cut_per_cycle}"
    )
    assert len(ledger.cut) >= 2 * KILL_CYCLES, ledger.cut_per_cycle
    assert len(ledger.acked) >= 3 * KILL_CYCLES, ledger.acked_per_cycle
    assert any(a.upload.kind == "ct" for a in ledger.acked)

    stored = read_back(database_url)
    staging = state_dir / "staging"
    leftovers = sorted(p.name for p in staging.iterdir()) if staging.is_dir() else []
    committed_unacked = sum(1 for _, upload, _ in ledger.cut if upload.sha256 in _shas(stored))
    print(
        f"\nseed {seed}: {KILL_CYCLES} kills after {', '.join(f'{d:.2f}' for d in delays)} s; "
        f"{len(ledger.acked)} acknowledged "
        f"({sum(a.upload.kind == 'ct' for a in ledger.acked)} CT), "
        f"{len(ledger.cut)} cut in flight {ledger.cut_per_cycle} "
        f"({committed_unacked} of them committed anyway), {ledger.refused} refused; "
        f"{len(stored.rows)} rows; files left in staging: {len(leftovers)} "
        f"({sum(n.startswith('upload-') for n in leftovers)} raw uploads); "
        f"{time.monotonic() - started:.1f} s"
    )
    return Outcome(ledger, stored, LocalBlobStore(state_dir / "blobs"), leftovers, api_problems)


def _shas(stored: Stored) -> set[str]:
    return {sha for sha, _ in stored.rows.values()}


# --- the tests --------------------------------------------------------------------------


async def test_sigkill_during_concurrent_uploads_loses_nothing_acknowledged(
    tmp_path: Path, database_url: str
) -> None:
    """Nothing acknowledged is lost, nothing dangles, and every record is audited.

    The last check covers records a crash let through (committed, never acknowledged):
    a row and its ``record.create`` entry commit in one transaction, so a kill can
    never leave a patient record the audit log does not mention (which
    ``clinicam audit verify`` could not notice, the chain itself being intact).
    """
    outcome = await crash_scenario(tmp_path, database_url)
    problems = outcome.api_problems + lost_or_dangling(
        outcome.stored, outcome.blobs, outcome.ledger
    )
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems)
    verified = audit_verify(database_url)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert verified.stdout.startswith("audit log OK"), verified.stdout
    unaudited = sorted(set(outcome.stored.rows) - set(outcome.stored.audited))
    assert not unaudited, (
        f"{len(unaudited)} of {len(outcome.stored.rows)} records have no record.create "
        f"audit entry after the kills: {unaudited}"
    )

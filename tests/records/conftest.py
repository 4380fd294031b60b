"""Records fixtures: a fresh database per test, on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from server.db import Database, open_database
from server.records.blobs import LocalBlobStore
from tests.records import api_helpers
from tests.seaweed import ACCESS_KEY, SECRET_KEY, SeaweedS3


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    """A migrated database."""
    db = open_database(database_url)
    yield db
    db.close()


@pytest.fixture
def blobs(tmp_path: Path) -> LocalBlobStore:
    return LocalBlobStore(tmp_path / "blobs")


@pytest.fixture(autouse=True, scope="session")
def _records_api_blobs(request: pytest.FixtureRequest) -> Iterator[None]:
    """CLINICAM_TEST_BLOBS=s3: every records API site keeps its blobs on SeaweedFS."""
    if os.environ.get("CLINICAM_TEST_BLOBS") != "s3":
        yield
        return
    seaweed: SeaweedS3 = request.getfixturevalue("seaweed")
    # Credentials from the environment (as a site may give them), so that child
    # processes started with a dumped config (its secrets masked) find them too.
    section = seaweed.config("").model_dump(exclude={"access_key", "secret_key"})
    credentials = {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in credentials.items():
            patch.setenv(name, value)
        api_helpers.SUITE_BLOBS = section
        yield
    api_helpers.SUITE_BLOBS = None

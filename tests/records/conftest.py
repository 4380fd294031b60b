"""Records fixtures: a fresh database per test, on SQLite and on a real PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from server.db import Database, open_database
from server.records.blobs import LocalBlobStore


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    """A migrated database."""
    db = open_database(database_url)
    yield db
    db.close()


@pytest.fixture
def blobs(tmp_path: Path) -> LocalBlobStore:
    return LocalBlobStore(tmp_path / "blobs")

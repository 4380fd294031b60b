"""The browser tests' shared fixtures: the database a demo runs on (O9: the flows that
live in the database run on PostgreSQL as well as on SQLite)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import fresh_postgres_database


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def demo_database(request: pytest.FixtureRequest) -> Iterator[tuple[str, ...]]:
    """``clinicam demo`` arguments for its database: none (SQLite in its state folder), or
    a new database on the session's PostgreSQL."""
    if request.param == "sqlite":
        yield ()
        return
    with fresh_postgres_database(request.getfixturevalue("postgres_server")) as url:
        yield ("--database-url", url)

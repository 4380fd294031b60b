"""Alembic environment: uses the connection handed over by ``server.db.upgrade``."""

from __future__ import annotations

import logging

from alembic import context
from sqlalchemy import Connection

# Imported so that their tables are registered on Base.metadata.
import server.access.models
import server.archive.calls
import server.archive.index
import server.audit.log
import server.consultation_notes.models
import server.directory.models
import server.fleet.models
import server.preferences
import server.records.models
import server.relevance.models  # noqa: F401
from server.db import Base, make_engine

_LOGGER = logging.getLogger(__name__)

_TARGET = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=_TARGET,
        render_as_batch=connection.dialect.name == "sqlite",  # ALTER TABLE on SQLite
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _main() -> None:
    config = context.config
    connection = config.attributes.get("connection")
    if isinstance(connection, Connection):
        _run(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no connection and no sqlalchemy.url: use server.db.upgrade")
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            _run(conn)
    finally:
        engine.dispose()


_main()

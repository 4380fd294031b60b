"""The records database: SQLAlchemy 2 engine, sessions and Alembic migrations.

SQLite (WAL, foreign keys on, ``synchronous=FULL``) is the default, one file in the
server's state folder; PostgreSQL (``postgresql+psycopg://…``) serves larger sites.
The migration scripts ship inside the server package (``server/migrations``), so an
installed server migrates its own database at start-up without an ``alembic.ini``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import DateTime, Engine, MetaData, create_engine, event, make_url
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

_LOGGER = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
DATABASE_FILE = "clinicam.db"
SQLITE_BUSY_TIMEOUT_MS = 10_000

# Stable constraint names, so later migrations can alter them on SQLite and PostgreSQL.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Every records table (and the audit log) derives from this."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on both SQLite (which drops the zone) and PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: pass a timezone-aware one")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(value: datetime | None) -> str | None:
    """A stored time as ISO 8601 for JSON answers (None stays None)."""
    return value.isoformat() if value else None


def default_database_url(state_dir: Path) -> str:
    """The SQLite file in the server's state folder."""
    return f"sqlite:///{state_dir / DATABASE_FILE}"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=FULL")  # a commit survives a power cut
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    finally:
        cursor.close()


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets WAL mode and foreign keys on every connection."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if parsed.get_backend_name() == "postgresql":
        return create_engine(parsed, pool_pre_ping=True)
    backend = parsed.get_backend_name()
    raise ValueError(f"unsupported database {backend!r}: use sqlite or postgresql")


def alembic_config(engine: Engine | None = None) -> Config:
    """An Alembic config pointing at the migrations inside this package (no .ini file)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Run the migrations up to ``revision`` (a no-op when already there)."""
    config = alembic_config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


@dataclass
class Database:
    """An engine and its session factory."""

    engine: Engine
    sessions: sessionmaker[Session]

    @property
    def backend(self) -> str:
        return self.engine.dialect.name

    def session(self) -> Session:
        return self.sessions()

    def close(self) -> None:
        self.engine.dispose()


def connect_database(url: str) -> Database:
    """Connect without migrating (for read-only tools such as ``clinicam audit verify``)."""
    engine = make_engine(url)
    return Database(engine, sessionmaker(engine, expire_on_commit=False))


def open_database(url: str) -> Database:
    """Connect to ``url`` and migrate it to the newest schema."""
    database = connect_database(url)
    before = current_revision(database.engine)
    upgrade(database.engine)
    after = current_revision(database.engine)
    if before != after:
        _LOGGER.info(
            "migrated %s from %s to %s",
            database.engine.url.render_as_string(hide_password=True),
            before or "an empty database",
            after,
        )
    return database

"""Migrations build the schema on an empty database and are a no-op on a migrated one."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

import server.consultation_notes.models
import server.directory.models  # noqa: F401  (their tables on Base.metadata)
from server.db import Base, current_revision, head_revision, open_database

TABLES = {
    "patients",
    "clinical_photos",
    "record_scans",
    "ct_images",
    "voice_notes",
    "emr_entries",
    "audit_entries",
    "audit_head",
    "access_grants",
    "access_requests",
    "consents",
    "archive_segments",
    "relevance_results",
    "diagnoses",
    "model_versions",
    "accounts",
    "appliances",
    "consultations",
    "consultation_invitations",
    "account_links",
    "config_imports",
    "consultation_notes",
    "consultation_note_revisions",
    "consultation_reports",
    "report_drafts",
    "call_recording_segments",
    "appliance_releases",
}


def test_migrations_create_every_table_and_are_idempotent(database_url: str) -> None:
    first = open_database(database_url)
    try:
        assert set(inspect(first.engine).get_table_names()) >= TABLES
        assert current_revision(first.engine) == head_revision()
    finally:
        first.close()
    again = open_database(database_url)  # already at head: nothing to do, nothing fails
    try:
        assert current_revision(again.engine) == head_revision()
        assert set(inspect(again.engine).get_table_names()) >= TABLES
        with again.engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []  # models == migrations
    finally:
        again.close()


def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path: Path) -> None:
    db = open_database(f"sqlite:///{tmp_path / 'state' / 'clinicam.db'}")
    try:
        with db.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        db.close()

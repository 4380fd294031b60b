"""Migration 0008 (consultations from request to end) adds its columns and takes them away."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command

from server.db import alembic_config, connect_database, current_revision, upgrade


def _columns(engine: sa.Engine, table: str) -> set[str]:
    return {c["name"] for c in sa.inspect(engine).get_columns(table)}


def test_upgrade_and_downgrade(tmp_path: Path) -> None:
    engine = connect_database(f"sqlite:///{tmp_path / 'db.sqlite'}").engine
    upgrade(engine, "0007")
    assert "updated_at" not in _columns(engine, "consultations")
    upgrade(engine, "0008")
    assert {"updated_at", "ended_by"} <= _columns(engine, "consultations")
    assert {"seen_at", "mail_status"} <= _columns(engine, "consultation_invitations")
    config = alembic_config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0007")
    assert current_revision(engine) == "0007"
    assert "seen_at" not in _columns(engine, "consultation_invitations")
    assert "ended_by" not in _columns(engine, "consultations")

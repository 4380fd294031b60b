"""Grants, access requests, consent, the archive index; titles and patient groups.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BLOB_TABLES = ("clinical_photos", "record_scans", "ct_images", "voice_notes")


def _when() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _patient_fk(table: str) -> sa.Column[int]:
    return sa.Column(
        "patient_id",
        sa.Integer(),
        sa.ForeignKey("patients.id", name=f"fk_{table}_patient_id_patients"),
        nullable=False,
    )


def upgrade() -> None:
    with op.batch_alter_table("patients") as batch:
        batch.add_column(sa.Column("patient_group", sa.String(64), nullable=True))
    for table in _BLOB_TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("title", sa.String(200), nullable=True))
    with op.batch_alter_table("clinical_photos") as batch:
        batch.add_column(sa.Column("consultation_id", sa.String(64), nullable=True))

    op.create_table(
        "access_grants",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_sha256", sa.String(64), nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        _patient_fk("access_grants"),
        sa.Column("operations", sa.String(32), nullable=False),
        sa.Column("basis", sa.String(200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("break_glass", sa.Boolean(), nullable=False),
        sa.Column("created_at", _when(), nullable=False),
        sa.Column("expires_at", _when(), nullable=False),
        sa.Column("revoked_at", _when(), nullable=True),
        sa.Column("revoked_by", sa.String(64), nullable=True),
        sa.Column("reviewed_at", _when(), nullable=True),
        sa.Column("reviewed_by", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_access_grants"),
        sa.UniqueConstraint("token_sha256", name="uq_access_grants_token_sha256"),
    )
    op.create_index("ix_access_grants_username", "access_grants", ["username"])
    op.create_index("ix_access_grants_patient_id", "access_grants", ["patient_id"])

    op.create_table(
        "access_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        _patient_fk("access_requests"),
        sa.Column("operations", sa.String(32), nullable=False),
        sa.Column("minutes", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", _when(), nullable=False),
        sa.Column("decided_at", _when(), nullable=True),
        sa.Column("decided_by", sa.String(64), nullable=True),
        sa.Column(
            "grant_id",
            sa.Integer(),
            sa.ForeignKey("access_grants.id", name="fk_access_requests_grant_id_access_grants"),
            nullable=True,
        ),
        sa.PrimaryKeyConstraint("id", name="pk_access_requests"),
    )
    op.create_index("ix_access_requests_username", "access_requests", ["username"])
    op.create_index("ix_access_requests_patient_id", "access_requests", ["patient_id"])

    op.create_table(
        "consents",
        sa.Column("id", sa.Integer(), nullable=False),
        _patient_fk("consents"),
        sa.Column("purpose", sa.String(32), nullable=False),
        sa.Column("granted", sa.Boolean(), nullable=False),
        sa.Column("recorded_by", sa.String(64), nullable=False),
        sa.Column("recorded_at", _when(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_consents"),
    )
    op.create_index("ix_consents_patient_id", "consents", ["patient_id"])

    op.create_table(
        "archive_segments",
        sa.Column("id", sa.Integer(), nullable=False),
        _patient_fk("archive_segments"),
        sa.Column("consultation_id", sa.String(64), nullable=False),
        sa.Column("device_id", sa.String(64), nullable=False),
        sa.Column("start_utc", _when(), nullable=False),
        sa.Column("end_utc", _when(), nullable=False),
        sa.Column("path", sa.String(300), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("frames", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_archive_segments"),
        sa.UniqueConstraint("path", name="uq_archive_segments_path"),
    )
    for column in ("patient_id", "consultation_id", "device_id", "start_utc", "end_utc"):
        op.create_index(f"ix_archive_segments_{column}", "archive_segments", [column])


def downgrade() -> None:
    for table in ("archive_segments", "consents", "access_requests", "access_grants"):
        op.drop_table(table)
    with op.batch_alter_table("clinical_photos") as batch:
        batch.drop_column("consultation_id")
    for table in _BLOB_TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("title")
    with op.batch_alter_table("patients") as batch:
        batch.drop_column("patient_group")

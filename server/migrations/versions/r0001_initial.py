"""Patients, the five category tables and the hash-chained audit log.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_GENESIS_HASH = "0" * 64


def _when() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _record_columns(table: str) -> list[sa.Column[object]]:
    return [
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "patient_id",
            sa.Integer(),
            sa.ForeignKey("patients.id", name=f"fk_{table}_patient_id_patients"),
            nullable=False,
        ),
        sa.Column("created_at", _when(), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
    ]


def _blob_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("blob_sha256", sa.String(64), nullable=False),
        sa.Column("blob_size", sa.BigInteger(), nullable=False),
        sa.Column("media_type", sa.String(100), nullable=False),
    ]


def _category(table: str, *columns: sa.schema.SchemaItem, blob: bool = True) -> None:
    extra = _blob_columns() if blob else []
    op.create_table(
        table,
        *_record_columns(table),
        *extra,
        *columns,
        sa.PrimaryKeyConstraint("id", name=f"pk_{table}"),
    )
    op.create_index(f"ix_{table}_patient_id", table, ["patient_id"])
    if blob:
        op.create_index(f"ix_{table}_blob_sha256", table, ["blob_sha256"])


def upgrade() -> None:
    op.create_table(
        "patients",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("external_id", sa.String(64), nullable=False),
        sa.Column("display_name", sa.String(200), nullable=False),
        sa.Column("created_at", _when(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_patients"),
        sa.UniqueConstraint("external_id", name="uq_patients_external_id"),
    )
    _category(
        "clinical_photos",
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("taken_at", _when(), nullable=True),
        sa.Column("source", sa.String(40), nullable=False),
        sa.Column("requested_by", sa.String(64), nullable=True),
    )
    _category(
        "record_scans",
        sa.Column("page_count", sa.Integer(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=True),
        sa.Column("height", sa.Integer(), nullable=True),
    )
    _category(
        "ct_images",
        sa.Column("study_uid", sa.String(64), nullable=False),
        sa.Column("series_uid", sa.String(64), nullable=False),
        sa.Column("instance_uid", sa.String(64), nullable=False),
        sa.Column("modality", sa.String(16), nullable=False),
        sa.Column("slice_position", sa.Float(), nullable=True),
        sa.UniqueConstraint("instance_uid", name="uq_ct_images_instance_uid"),
    )
    op.create_index("ix_ct_images_study_uid", "ct_images", ["study_uid"])
    op.create_index("ix_ct_images_series_uid", "ct_images", ["series_uid"])
    _category(
        "voice_notes",
        sa.Column("duration_s", sa.Float(), nullable=False),
        sa.Column("sample_rate", sa.Integer(), nullable=False),
        sa.Column("codec", sa.String(40), nullable=False),
    )
    _category(
        "emr_entries",
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("recorded_at", _when(), nullable=False),
        blob=False,
    )
    op.create_table(
        "audit_entries",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("at", _when(), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.String(200), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_audit_entries"),
        sa.UniqueConstraint("hash", name="uq_audit_entries_hash"),
    )
    head = op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_head"),
    )
    op.bulk_insert(head, [{"id": 1, "seq": 0, "hash": _GENESIS_HASH}])


def downgrade() -> None:
    for table in (
        "audit_head",
        "audit_entries",
        "emr_entries",
        "voice_notes",
        "ct_images",
        "record_scans",
        "clinical_photos",
        "patients",
    ):
        op.drop_table(table)

"""The consultation's report (issue 20): signed versions filed as a record category of
their own, and the chair's draft.

Revision ID: 0012_reports
Revises: 0011_notes
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_reports"
down_revision: str | None = "0011_notes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_WHEN = sa.DateTime(timezone=True)


def _patient_fk(table: str) -> sa.Column[int]:
    return sa.Column(
        "patient_id",
        sa.Integer(),
        sa.ForeignKey("patients.id", name=f"fk_{table}_patient_id_patients"),
        nullable=False,
    )


def upgrade() -> None:
    op.create_table(
        "consultation_reports",
        sa.Column("id", sa.Integer(), nullable=False),
        _patient_fk("consultation_reports"),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("blob_sha256", sa.String(64), nullable=False),
        sa.Column("blob_size", sa.BigInteger(), nullable=False),
        sa.Column("media_type", sa.String(100), nullable=False),
        sa.Column("title", sa.String(200), nullable=True),
        sa.Column("consultation_id", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("signed_by", sa.String(64), nullable=False),
        sa.Column("signed_at", _WHEN, nullable=False),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("supersedes", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_consultation_reports"),
    )
    for column in ("patient_id", "blob_sha256", "consultation_id"):
        op.create_index(f"ix_consultation_reports_{column}", "consultation_reports", [column])
    op.create_table(
        "report_drafts",
        sa.Column("consultation_id", sa.String(64), nullable=False),
        _patient_fk("report_drafts"),
        sa.Column("findings", sa.Text(), nullable=False),
        sa.Column("recommendation", sa.Text(), nullable=False),
        sa.Column("snapshots", sa.JSON(), nullable=False),
        sa.Column("signed", sa.Boolean(), nullable=False),
        sa.Column("updated_at", _WHEN, nullable=False),
        sa.Column("updated_by", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("consultation_id", name="pk_report_drafts"),
    )
    op.create_index("ix_report_drafts_patient_id", "report_drafts", ["patient_id"])


def downgrade() -> None:
    op.drop_table("report_drafts")
    op.drop_table("consultation_reports")

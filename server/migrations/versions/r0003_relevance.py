"""Relevance results, confirmed diagnoses, the model registry.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


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
    op.create_table(
        "relevance_results",
        sa.Column("id", sa.Integer(), nullable=False),
        _patient_fk("relevance_results"),
        sa.Column("consultation_id", sa.String(64), nullable=True),
        sa.Column("model_version", sa.String(64), nullable=False),
        sa.Column("produced_by", sa.String(80), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("values", sa.JSON(), nullable=False),
        sa.Column("inputs", sa.JSON(), nullable=False),
        sa.Column("requested_by", sa.String(64), nullable=False),
        sa.Column("created_at", _when(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_relevance_results"),
    )
    op.create_index("ix_relevance_results_patient_id", "relevance_results", ["patient_id"])
    op.create_table(
        "diagnoses",
        sa.Column("id", sa.Integer(), nullable=False),
        _patient_fk("diagnoses"),
        sa.Column("label", sa.String(64), nullable=False),
        sa.Column("confirmed_by", sa.String(64), nullable=False),
        sa.Column("consultation_id", sa.String(64), nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", _when(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_diagnoses"),
    )
    op.create_index("ix_diagnoses_patient_id", "diagnoses", ["patient_id"])
    op.create_table(
        "model_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("path", sa.String(400), nullable=False),
        sa.Column("card", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("decision", sa.Text(), nullable=False),
        sa.Column("created_at", _when(), nullable=False),
        sa.Column("decided_at", _when(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_model_versions"),
        sa.UniqueConstraint("version", name="uq_model_versions_version"),
    )


def downgrade() -> None:
    for table in ("model_versions", "diagnoses", "relevance_results"):
        op.drop_table(table)

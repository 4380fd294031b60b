"""Model lineage: which patients went into which model version (issue 18); the basis
of every relevance result (per-branch probabilities, weights, skipped items).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "model_training_patients",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_version", sa.String(64), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(64), nullable=False),
        sa.Column("items", sa.Integer(), nullable=False),
        sa.Column("consent_checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_model_training_patients"),
    )
    op.create_index(
        "ix_model_training_patients_model_version", "model_training_patients", ["model_version"]
    )
    op.create_index(
        "ix_model_training_patients_patient_id", "model_training_patients", ["patient_id"]
    )
    with op.batch_alter_table("relevance_results") as batch:
        batch.add_column(sa.Column("basis", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("relevance_results") as batch:
        batch.drop_column("basis")
    op.drop_index("ix_model_training_patients_patient_id", "model_training_patients")
    op.drop_index("ix_model_training_patients_model_version", "model_training_patients")
    op.drop_table("model_training_patients")

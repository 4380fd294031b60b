"""Shared notes of a consultation (issue 20): the current text, and every version of it.

Revision ID: 0011_notes
Revises: 0010
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_notes"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "consultation_notes",
        sa.Column("consultation_id", sa.String(64), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", _WHEN, nullable=False),
        sa.Column("updated_by", sa.String(64), nullable=False),
        sa.ForeignKeyConstraint(
            ["consultation_id"],
            ["consultations.cid"],
            name="fk_consultation_notes_consultation_id_consultations",
        ),
        sa.PrimaryKeyConstraint("consultation_id", name="pk_consultation_notes"),
    )
    op.create_table(
        "consultation_note_revisions",
        sa.Column("consultation_id", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("sent", sa.Text(), nullable=True),
        sa.Column("author", sa.String(64), nullable=False),
        sa.Column("at", _WHEN, nullable=False),
        sa.ForeignKeyConstraint(
            ["consultation_id"],
            ["consultations.cid"],
            name="fk_consultation_note_revisions_consultation_id_consultations",
        ),
        sa.PrimaryKeyConstraint(
            "consultation_id", "version", name="pk_consultation_note_revisions"
        ),
    )


def downgrade() -> None:
    op.drop_table("consultation_note_revisions")
    op.drop_table("consultation_notes")

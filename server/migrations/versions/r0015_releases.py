"""Appliance releases in the database and the site's blob store (issue 21): the index
of the release wheels, whose bytes are blobs named by their SHA-256.

Revision ID: 0015_releases
Revises: 0014_archive_blobs
Create Date: 2026-12-08
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015_releases"
down_revision: str | None = "0014_archive_blobs"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLE = "appliance_releases"


def upgrade() -> None:
    op.create_table(
        _TABLE,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.String(40), nullable=False),
        sa.Column("filename", sa.String(100), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=f"pk_{_TABLE}"),
        sa.UniqueConstraint("version", name=f"uq_{_TABLE}_version"),
    )
    op.create_index(f"ix_{_TABLE}_sha256", _TABLE, ["sha256"])


def downgrade() -> None:
    op.drop_table(_TABLE)

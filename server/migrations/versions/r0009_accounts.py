"""Accounts managed in the database (issue 19): one-time set-password links.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "account_links",
        sa.Column("token_digest", sa.String(64), nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("expires_at", _WHEN, nullable=False),
        sa.ForeignKeyConstraint(
            ["username"],
            ["accounts.username"],
            name="fk_account_links_username_accounts",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("token_digest", name="pk_account_links"),
    )
    op.create_index("ix_account_links_username", "account_links", ["username"])


def downgrade() -> None:
    op.drop_index("ix_account_links_username", table_name="account_links")
    op.drop_table("account_links")

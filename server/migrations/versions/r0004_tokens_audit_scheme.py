"""One token per session for a grant; the audit log's hash scheme per entry.

``access_grant_tokens``: every ask for a grant gets its own token (two sessions of one
user both keep working), scoped to the operations asked for. Existing grants keep
their one token, copied here with the grant's operations.

``audit_entries.scheme``: which hash scheme an entry was written with. Existing entries
are scheme 1 (hash over the parsed detail); new ones scheme 2 (hash over the stored,
canonical JSON text). ``clinicam audit verify`` checks each entry by its own scheme,
so an upgraded database stays verifiable without rewriting history.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "access_grant_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column(
            "grant_id",
            sa.Integer(),
            sa.ForeignKey("access_grants.id", name="fk_access_grant_tokens_grant_id_access_grants"),
            nullable=False,
        ),
        sa.Column("token_sha256", sa.String(64), nullable=False),
        sa.Column("operations", sa.String(32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_access_grant_tokens"),
        sa.UniqueConstraint("token_sha256", name="uq_access_grant_tokens_token_sha256"),
    )
    op.create_index("ix_access_grant_tokens_grant_id", "access_grant_tokens", ["grant_id"])
    op.execute(
        "INSERT INTO access_grant_tokens (grant_id, token_sha256, operations, created_at) "
        "SELECT id, token_sha256, operations, created_at FROM access_grants"
    )
    with op.batch_alter_table("audit_entries") as batch:
        batch.add_column(sa.Column("scheme", sa.Integer(), nullable=False, server_default="1"))


def downgrade() -> None:
    with op.batch_alter_table("audit_entries") as batch:
        batch.drop_column("scheme")
    op.drop_index("ix_access_grant_tokens_grant_id", "access_grant_tokens")
    op.drop_table("access_grant_tokens")

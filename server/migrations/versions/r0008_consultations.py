"""Consultations from request to end (issue 19): when a consultation last changed, and
per invitation whether its invitee has seen it and how its e-mail went.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("consultations") as table:
        table.add_column(sa.Column("updated_at", _WHEN, nullable=True))
        table.add_column(sa.Column("ended_by", sa.String(64), nullable=True))
    with op.batch_alter_table("consultation_invitations") as table:
        table.add_column(sa.Column("seen_at", _WHEN, nullable=True))
        table.add_column(sa.Column("mail_status", sa.String(200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("consultation_invitations") as table:
        table.drop_column("mail_status")
        table.drop_column("seen_at")
    with op.batch_alter_table("consultations") as table:
        table.drop_column("ended_by")
        table.drop_column("updated_at")

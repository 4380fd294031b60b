"""The directory in the database (issue 19): accounts, appliances, consultations and
their invitations; patients get the fields clinic staff register.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("display_name", sa.String(80), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("clinic", sa.String(80), nullable=True),
        sa.Column("email", sa.String(254), nullable=True),
        sa.Column("time_zone", sa.String(64), nullable=True),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("session_epoch", sa.Integer(), nullable=False),
        sa.Column("totp_secret", sa.String(64), nullable=True),
        sa.Column("totp_last_step", sa.BigInteger(), nullable=True),
        sa.Column("password_changed_at", _WHEN, nullable=False),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("username", name="pk_accounts"),
    )
    op.create_table(
        "appliances",
        sa.Column("device_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(80), nullable=False),
        sa.Column("clinic", sa.String(80), nullable=False),
        sa.Column("room", sa.String(80), nullable=True),
        sa.Column("token_hash", sa.String(255), nullable=False),
        sa.Column("broker_password_hash", sa.String(255), nullable=True),
        sa.Column("revoked", sa.Boolean(), nullable=False),
        sa.Column("enrolled_at", _WHEN, nullable=False),
        sa.Column("enrolled_by", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("device_id", name="pk_appliances"),
    )
    op.create_table(
        "consultations",
        sa.Column("cid", sa.String(64), nullable=False),
        sa.Column("title", sa.String(120), nullable=False),
        sa.Column("patient_id", sa.String(64), nullable=False),
        sa.Column("appliance", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("chair", sa.String(64), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("specialty", sa.String(80), nullable=True),
        sa.Column("urgency", sa.String(16), nullable=False),
        sa.Column("preferred_times", sa.JSON(), nullable=False),
        sa.Column("requested_by", sa.String(64), nullable=True),
        sa.Column("scheduled_start", _WHEN, nullable=True),
        sa.Column("scheduled_end", _WHEN, nullable=True),
        sa.Column("decline_reason", sa.Text(), nullable=True),
        sa.Column("started_at", _WHEN, nullable=True),
        sa.Column("ended_at", _WHEN, nullable=True),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.PrimaryKeyConstraint("cid", name="pk_consultations"),
    )
    for column in ("patient_id", "appliance", "state"):
        op.create_index(f"ix_consultations_{column}", "consultations", [column])
    op.create_table(
        "consultation_invitations",
        sa.Column("cid", sa.String(64), nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("invited_at", _WHEN, nullable=False),
        sa.Column("invited_by", sa.String(64), nullable=False),
        sa.ForeignKeyConstraint(
            ["cid"],
            ["consultations.cid"],
            name="fk_consultation_invitations_cid_consultations",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("cid", "username", name="pk_consultation_invitations"),
    )
    with op.batch_alter_table("patients") as batch:
        batch.add_column(sa.Column("sex", sa.String(16), nullable=True))
        batch.add_column(sa.Column("birth_date", sa.Date(), nullable=True))
        batch.add_column(sa.Column("clinic", sa.String(80), nullable=True))
        batch.add_column(sa.Column("registered_by", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("patients") as batch:
        for column in ("registered_by", "clinic", "birth_date", "sex"):
            batch.drop_column(column)
    op.drop_table("consultation_invitations")
    for column in ("state", "appliance", "patient_id"):
        op.drop_index(f"ix_consultations_{column}", table_name="consultations")
    op.drop_table("consultations")
    op.drop_table("appliances")
    op.drop_table("accounts")

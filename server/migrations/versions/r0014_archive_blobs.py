"""Archive segments in the object store (O8): the blob a segment's row names.

Revision ID: 0014_archive_blobs
Revises: 0013_recordings
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014_archive_blobs"
down_revision: str | None = "0013_recordings"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLE = "archive_segments"


def upgrade() -> None:
    with op.batch_alter_table(_TABLE) as batch:
        batch.add_column(sa.Column("blob_sha256", sa.String(64), nullable=True))
        batch.create_index(f"ix_{_TABLE}_blob_sha256", ["blob_sha256"])


def downgrade() -> None:
    with op.batch_alter_table(_TABLE) as batch:
        batch.drop_index(f"ix_{_TABLE}_blob_sha256")
        batch.drop_column("blob_sha256")

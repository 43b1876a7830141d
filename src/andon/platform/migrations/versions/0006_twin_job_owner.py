"""Twin jobs carry their owner: the ``andon serve`` instance running them and its last
heartbeat, so a second instance on the same metadata database marks only the jobs of a dead
instance (stale heartbeat) interrupted, never those of one still running them. Rows from
before have no owner and count as stale.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

__all__: list[str] = []

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("twin_jobs", sa.Column("owner", sa.String(32), nullable=True))
    op.add_column("twin_jobs", sa.Column("heartbeat_at", sa.BigInteger, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("twin_jobs") as batch:
        batch.drop_column("heartbeat_at")
        batch.drop_column("owner")

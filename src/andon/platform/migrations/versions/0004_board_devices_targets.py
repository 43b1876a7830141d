"""Line targets for the kiosk board and the line page.

Board devices are API keys of kind ``board`` (one site, ``board:read`` only), so they need
no table of their own; ``line_targets`` holds a manager's goals per line.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

__all__: list[str] = []

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "line_targets",
        sa.Column("tenant_id", sa.String(64), sa.ForeignKey("tenants.id"), primary_key=True),
        sa.Column(
            "site_id",
            sa.String(32),
            sa.ForeignKey("sites.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("line", sa.String(300), primary_key=True),
        sa.Column("oee", sa.Float, nullable=True),
        sa.Column("per_hour", sa.Float, nullable=True),
        sa.Column("per_shift", sa.Float, nullable=True),
        sa.Column("updated_by", sa.String(200), nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("line_targets")

"""Signal alarms: alarm evidence and shelving on alerts, engineer-set alarm limits.

Signal alarms (limits, rate of change) live in the ``alerts`` table next to the machine
alerts, so the board, the live feed and acknowledgement need nothing new: ``signal`` names
the signal path (NULL for machine alerts), ``value`` and ``threshold`` are the evidence.
Shelving applies to every alert. ``alarm_limits`` holds an engineer's limits for a signal,
overriding the plant model's ``alarms:`` block.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

__all__: list[str] = []

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_ALERT_COLUMNS = (
    ("signal", sa.String(400)),
    ("value", sa.Float),
    ("threshold", sa.Float),
    ("shelved_by", sa.String(200)),
    ("shelved_at", sa.BigInteger),
    ("shelved_until", sa.BigInteger),
    ("shelve_reason", sa.Text),
)


def upgrade() -> None:
    for name, type_ in _ALERT_COLUMNS:
        op.add_column("alerts", sa.Column(name, type_, nullable=True))
    op.create_table(
        "alarm_limits",
        sa.Column("tenant_id", sa.String(64), sa.ForeignKey("tenants.id"), primary_key=True),
        sa.Column(
            "site_id",
            sa.String(32),
            sa.ForeignKey("sites.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("signal", sa.String(400), primary_key=True),
        sa.Column("config", sa.Text, nullable=False),
        sa.Column("updated_by", sa.String(200), nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("alarm_limits")
    with op.batch_alter_table("alerts") as batch:
        for name, _ in reversed(_ALERT_COLUMNS):
            batch.drop_column(name)

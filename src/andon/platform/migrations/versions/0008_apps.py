"""The app platform's tables (issue 14): the catalog of published app versions, each
tenant's installations, the findings apps emit and people's feedback on them, proposed work
orders and each instance's small key/value state.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

__all__: list[str] = []

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def _tenant() -> sa.Column[str]:
    return sa.Column("tenant_id", sa.String(64), sa.ForeignKey("tenants.id"), nullable=False)


def _site() -> sa.Column[str]:
    return sa.Column(
        "site_id", sa.String(32), sa.ForeignKey("sites.id", ondelete="CASCADE"), nullable=False
    )


def upgrade() -> None:
    op.create_table(
        "apps",
        sa.Column("app_id", sa.String(64), primary_key=True),
        sa.Column("version", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("vendor", sa.String(200), nullable=False),
        sa.Column("category", sa.String(64), nullable=False),
        sa.Column("source_dir", sa.Text, nullable=False),
        sa.Column("manifest", sa.Text, nullable=False),
        sa.Column("report", sa.Text, nullable=False),
        sa.Column("figures", sa.Text, nullable=False),
        sa.Column("passed", sa.Boolean, nullable=False),
        sa.Column("published_by", sa.String(200), nullable=False),
        sa.Column("published_at", sa.BigInteger, nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
    )
    op.create_table(
        "app_installations",
        sa.Column("id", sa.String(32), primary_key=True),
        _tenant(),
        sa.Column("app_id", sa.String(64), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("site_ids", sa.Text, nullable=False),
        sa.Column("settings", sa.Text, nullable=False),
        sa.Column("permissions", sa.Text, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("previous_version", sa.String(64), nullable=True),
        sa.Column("previous_settings", sa.Text, nullable=True),
        sa.Column("previous_permissions", sa.Text, nullable=True),
        sa.Column("installed_by", sa.String(200), nullable=False),
        sa.Column("installed_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.Column("uninstalled_at", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_app_installations_tenant", "app_installations", ["tenant_id", "state"])
    op.create_table(
        "app_findings",
        sa.Column("id", sa.String(32), primary_key=True),
        _tenant(),
        _site(),
        sa.Column("installation_id", sa.String(32), nullable=False),
        sa.Column("app_id", sa.String(64), nullable=False),
        sa.Column("type", sa.String(100), nullable=False),
        sa.Column("machine", sa.String(500), nullable=True),
        sa.Column("start_us", sa.BigInteger, nullable=False),
        sa.Column("end_us", sa.BigInteger, nullable=False),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("title", sa.String(300), nullable=False),
        sa.Column("explanation", sa.Text, nullable=False),
        sa.Column("signals", sa.Text, nullable=False),
        sa.Column("evidence", sa.Text, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_index(
        "ix_app_findings_site_created", "app_findings", ["tenant_id", "site_id", "created_at"]
    )
    op.create_index(
        "ix_app_findings_installation", "app_findings", ["installation_id", "created_at"]
    )
    op.create_table(
        "app_feedback",
        sa.Column("id", sa.String(32), primary_key=True),
        _tenant(),
        sa.Column(
            "finding_id",
            sa.String(32),
            sa.ForeignKey("app_findings.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("installation_id", sa.String(32), nullable=False),
        sa.Column("verdict", sa.String(16), nullable=False),
        sa.Column("comment", sa.Text, nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_app_feedback_installation_at", "app_feedback", ["installation_id", "at"])
    op.create_index("ix_app_feedback_finding", "app_feedback", ["finding_id"])
    op.create_table(
        "app_work_orders",
        sa.Column("id", sa.String(32), primary_key=True),
        _tenant(),
        _site(),
        sa.Column("installation_id", sa.String(32), nullable=False),
        sa.Column("machine", sa.String(500), nullable=False),
        sa.Column("title", sa.String(300), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("due_us", sa.BigInteger, nullable=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_index(
        "ix_app_work_orders_site_created",
        "app_work_orders",
        ["tenant_id", "site_id", "created_at"],
    )
    op.create_table(
        "app_state",
        sa.Column("installation_id", sa.String(32), primary_key=True),
        sa.Column("key", sa.String(200), primary_key=True),
        _tenant(),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("app_state")
    op.drop_index("ix_app_work_orders_site_created", "app_work_orders")
    op.drop_table("app_work_orders")
    op.drop_index("ix_app_feedback_finding", "app_feedback")
    op.drop_index("ix_app_feedback_installation_at", "app_feedback")
    op.drop_table("app_feedback")
    op.drop_index("ix_app_findings_installation", "app_findings")
    op.drop_index("ix_app_findings_site_created", "app_findings")
    op.drop_table("app_findings")
    op.drop_index("ix_app_installations_tenant", "app_installations")
    op.drop_table("app_installations")
    op.drop_table("apps")

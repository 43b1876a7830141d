"""Sessions (refresh-token families) and one-time password-reset tokens.

A session is one login: every refresh token rotated from it carries its id, and every access
token names it (``sid``), so revoking the session (logout, reuse of a spent refresh token,
password change, user disable) ends all of them at once. Existing refresh tokens each become a
session of their own.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

__all__: list[str] = []

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sessions",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("tenant_id", sa.String(64), sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column(
            "user_id",
            sa.String(32),
            sa.ForeignKey("users.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("revoked_at", sa.BigInteger, nullable=True),
        sa.Column("revoked_why", sa.String(100), nullable=True),
    )
    op.create_index("ix_sessions_user", "sessions", ["user_id"])
    op.add_column("refresh_tokens", sa.Column("session_id", sa.String(32), nullable=True))
    op.create_index("ix_refresh_tokens_session", "refresh_tokens", ["session_id"])
    op.execute(
        "INSERT INTO sessions (id, tenant_id, user_id, created_at, revoked_at, revoked_why) "
        "SELECT r.id, u.tenant_id, r.user_id, 0, r.revoked_at, NULL "
        "FROM refresh_tokens r JOIN users u ON u.id = r.user_id"
    )
    op.execute("UPDATE refresh_tokens SET session_id = id")
    op.create_table(
        "password_resets",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("tenant_id", sa.String(64), sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column(
            "user_id",
            sa.String(32),
            sa.ForeignKey("users.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("expires_at", sa.BigInteger, nullable=False),
        sa.Column("used_at", sa.BigInteger, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("password_resets")
    op.drop_index("ix_refresh_tokens_session", "refresh_tokens")
    with op.batch_alter_table("refresh_tokens") as batch:
        batch.drop_column("session_id")
    op.drop_index("ix_sessions_user", "sessions")
    op.drop_table("sessions")

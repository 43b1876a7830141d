"""Emails unique per tenant, not globally; single sign-on state in the database.

A tenant admin creating a user whose email existed in another tenant got 409, which told
them the address had an account elsewhere (issue 13). ``users.email`` loses its global unique
constraint for one on ``(tenant_id, email)``, plus a plain index for logins by email.

``oidc_states`` holds the state, nonce and PKCE verifier of each sign-in in progress, so the
provider's callback may reach any worker (or a restarted one).

On SQLite the users table is rebuilt (a UNIQUE from CREATE TABLE cannot be dropped); its
``DROP TABLE`` would run the ``ON DELETE CASCADE`` of role grants, sessions and reset tokens,
so foreign keys are switched off around it. SQLite ignores that switch inside a transaction:
the open one (earlier revisions of this run, each already stamped) is committed first, and
the rebuild is committed before the switch goes back on. Re-running after a crash between
that commit and this revision's stamp finds the work done and skips it.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.engine import Connection

__all__: list[str] = []

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def _foreign_keys(bind: Connection, on: bool) -> None:
    bind.connection.dbapi_connection.commit()  # type: ignore[union-attr]
    bind.exec_driver_sql(f"PRAGMA foreign_keys={'ON' if on else 'OFF'}")
    got = bind.exec_driver_sql("PRAGMA foreign_keys").scalar()
    if bool(got) != on:
        raise RuntimeError(f"migration 0007: SQLite kept foreign_keys={got}")


def _users_per_tenant(bind: Connection) -> None:
    uniques = {u["name"] for u in sa.inspect(bind).get_unique_constraints("users")}
    if "uq_users_email" not in uniques:
        return  # done by an earlier run that crashed before its stamp
    with op.batch_alter_table("users") as batch:
        batch.drop_constraint("uq_users_email", type_="unique")
        batch.create_unique_constraint("uq_users_tenant_email", ["tenant_id", "email"])
        batch.create_index("ix_users_email", ["email"])


def _oidc_states(bind: Connection) -> None:
    if sa.inspect(bind).has_table("oidc_states"):
        return
    op.create_table(
        "oidc_states",
        sa.Column("state_hash", sa.String(64), primary_key=True),
        sa.Column("nonce", sa.String(100), nullable=False),
        sa.Column("verifier", sa.String(100), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("expires_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_oidc_states_expires", "oidc_states", ["expires_at"])


def upgrade() -> None:
    bind = op.get_bind()
    sqlite = bind.dialect.name == "sqlite"
    if sqlite:
        _foreign_keys(bind, False)
    try:
        _users_per_tenant(bind)
        _oidc_states(bind)
    finally:
        if sqlite:
            _foreign_keys(bind, True)


def downgrade() -> None:
    """Back to one account per email: fails (IntegrityError) while any email has accounts
    in two tenants, rather than dropping one of them."""
    bind = op.get_bind()
    sqlite = bind.dialect.name == "sqlite"
    op.drop_index("ix_oidc_states_expires", "oidc_states")
    op.drop_table("oidc_states")
    if sqlite:
        _foreign_keys(bind, False)
    try:
        with op.batch_alter_table("users") as batch:
            batch.drop_index("ix_users_email")
            batch.drop_constraint("uq_users_tenant_email", type_="unique")
            batch.create_unique_constraint("uq_users_email", ["email"])
    finally:
        if sqlite:
            _foreign_keys(bind, True)

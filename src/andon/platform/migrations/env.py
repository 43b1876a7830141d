"""Alembic environment: runs on the connection the platform hands over (see ``database.py``)."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from andon.platform.tables import metadata

__all__: list[str] = []

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):  # pragma: no cover - only reachable by misuse
    raise RuntimeError("andon migrations run through andon.platform.database.Database.migrate()")
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()

"""Alembic's head builds exactly the tables the code declares, idempotently, on both
backends."""

from __future__ import annotations

import asyncio

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection

from andon.platform import Database
from andon.platform.tables import metadata


def _diff(conn: Connection) -> list[object]:
    return list(compare_metadata(MigrationContext.configure(conn), metadata))


def _revision(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


def test_upgrade_head_matches_metadata_and_is_idempotent(db_url: str) -> None:
    async def go() -> None:
        db = Database(db_url)
        try:
            await db.migrate()
            await db.migrate()
            async with db.begin() as conn:
                assert await conn.run_sync(_diff) == []
                assert await conn.run_sync(_revision) == "0001"
        finally:
            await db.close()

    asyncio.run(go())

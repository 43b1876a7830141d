"""Alembic's head builds exactly the tables the code declares, idempotently, on both
backends."""

from __future__ import annotations

import asyncio

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import insert, select
from sqlalchemy.engine import Connection

from andon.platform import Database, database
from andon.platform.tables import metadata, sites, tenants


def _diff(conn: Connection) -> list[object]:
    return list(compare_metadata(MigrationContext.configure(conn), metadata))


def _revision(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


def _head() -> str | None:
    """The newest revision in the scripts (one head: no branches), so adding a migration
    does not mean editing these tests."""
    return ScriptDirectory(str(database._MIGRATIONS)).get_current_head()


def test_the_migrations_form_one_chain_from_0001() -> None:
    revs = list(ScriptDirectory(str(database._MIGRATIONS)).walk_revisions())
    assert [r.revision for r in reversed(revs)][:3] == ["0001", "0002", "0003"]
    assert len(ScriptDirectory(str(database._MIGRATIONS)).get_heads()) == 1


def test_upgrade_head_matches_metadata_and_is_idempotent(db_url: str) -> None:
    async def go() -> None:
        db = Database(db_url)
        try:
            await db.migrate()
            await db.migrate()
            async with db.begin() as conn:
                assert await conn.run_sync(_diff) == []
                assert await conn.run_sync(_revision) == _head()
        finally:
            await db.close()

    asyncio.run(go())


def _upgrade_to(conn: Connection, target: str) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(database._MIGRATIONS))
    cfg.attributes["connection"] = conn
    command.upgrade(cfg, target)


def test_a_0001_database_with_data_upgrades_to_head_in_one_step(db_url: str) -> None:
    async def go() -> None:
        db = Database(db_url)
        try:
            async with db.begin() as conn:
                await conn.run_sync(_upgrade_to, "0001")
                assert await conn.run_sync(_revision) == "0001"
                await conn.execute(insert(tenants).values(id="t", name="T", created_at=1))
                await conn.execute(
                    insert(sites).values(
                        id="s",
                        tenant_id="t",
                        key="k",
                        name="S",
                        model_yaml="",
                        created_at=1,
                        updated_at=1,
                    )
                )
            await db.migrate()
            async with db.begin() as conn:
                assert await conn.run_sync(_revision) == _head()
                assert await conn.run_sync(_diff) == []
                assert (await conn.execute(select(sites.c.id))).scalars().all() == ["s"]
        finally:
            await db.close()

    asyncio.run(go())

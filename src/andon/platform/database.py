"""The metadata database: an async SQLAlchemy engine plus Alembic migrations.

Embedded mode uses SQLite (``sqlite:///path``, driven by aiosqlite); server mode uses
PostgreSQL (``postgresql://user@host/db``, driven by asyncpg). Plain URLs are mapped to the
async drivers here, so configuration never names a driver.

>>> async_url("sqlite:///x.db"), async_url("postgresql://u@h/db")
('sqlite+aiosqlite:///x.db', 'postgresql+asyncpg://u@h/db')
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

__all__ = ["Database", "async_url"]

_MIGRATIONS = Path(__file__).parent / "migrations"
_LOCK_ID = 0x616E646F6E  # "andon": serialises concurrent `upgrade head` on PostgreSQL


def async_url(url: str) -> str:
    """The same URL with the async driver andon uses for its scheme."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError(f"database URL {url!r} has no scheme (sqlite:/// or postgresql://)")
    base = scheme.split("+", 1)[0].lower()
    if base == "sqlite":
        return f"sqlite+aiosqlite://{rest}"
    if base in ("postgresql", "postgres"):
        return f"postgresql+asyncpg://{rest}"
    raise ValueError(f"unsupported database scheme {scheme!r} (use sqlite:/// or postgresql://)")


def _upgrade(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_ID})
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    cfg.attributes["connection"] = conn
    command.upgrade(cfg, "head")


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=5000")
    cur.execute("PRAGMA journal_mode=WAL")  # readers do not wait for the audit writer
    cur.close()


class Database:
    """One engine per process; ``begin()`` yields a connection inside a transaction."""

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = async_url(url)
        kwargs: dict[str, Any] = {}
        if self.url.startswith("postgresql"):
            kwargs = {"pool_size": pool_size, "max_overflow": pool_size, "pool_pre_ping": True}
        self.engine: AsyncEngine = create_async_engine(self.url, **kwargs)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    async def migrate(self) -> None:
        """``alembic upgrade head``: idempotent, and safe with several workers starting."""
        async with self.engine.begin() as conn:
            await conn.run_sync(_upgrade)

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.begin() as conn:
            yield conn

    async def close(self) -> None:
        await self.engine.dispose()

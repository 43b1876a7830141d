"""Metadata databases for tests: a SQLite file, and a fresh PostgreSQL database on
127.0.0.1:5432 (started by ``scripts/services-postgres.sh``; unreachable means failure, not
skip)."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import create_async_engine

from andon.platform.database import async_url

__all__ = ["BACKENDS", "PG_ADMIN_URL", "database_url"]

BACKENDS = ("sqlite", "postgresql")
PG_ADMIN_URL = os.environ.get(
    "ANDON_TEST_PG_URL", "postgresql://andon:andon@127.0.0.1:5432/postgres"
)


async def _admin(sql: str) -> None:
    engine = create_async_engine(async_url(PG_ADMIN_URL), isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(sql))
    except (OSError, OperationalError, DBAPIError) as exc:
        raise RuntimeError(
            f"PostgreSQL at {PG_ADMIN_URL} is unreachable or refused ({exc}); "
            "run scripts/services-postgres.sh"
        ) from exc
    finally:
        await engine.dispose()


@contextmanager
def database_url(backend: str, tmp: Path) -> Iterator[str]:
    """A URL of an empty metadata database of ``backend``, dropped afterwards."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp / f'meta-{secrets.token_hex(4)}.db'}"
        return
    name = f"andon_test_{secrets.token_hex(6)}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

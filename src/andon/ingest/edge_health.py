"""The platform's record of edge health: the latest report of each edge agent.

One row per ``(tenant, site, edge)``, replaced by a report received later (by the
platform's clock: an edge clock stepping back must not freeze it, decision 0312), at most
``MAX_EDGES_PER_SITE`` edges per site. The report is ``andon.wire.health.EdgeHealth``, the
same type the edge writes and sends. The table lives in the metadata database, whose schema
is the platform's (``andon.platform.tables.edge_health``): the caller hands over the
database and the table, so ingest does not import the layer above it.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import Table, and_, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from andon.wire.health import EdgeHealth

__all__ = ["MAX_EDGES_PER_SITE", "STALE_INTERVALS", "EdgeHealthTable", "StoredHealth"]

MAX_EDGES_PER_SITE = 1_000
STALE_INTERVALS = 3
"""A report is stale after this many of its edge's intervals without a newer one."""


class Transactional(Protocol):
    """A database that hands out connections in a transaction (``andon.platform.Database``)."""

    def begin(self) -> AbstractAsyncContextManager[AsyncConnection]: ...


@dataclass(frozen=True)
class StoredHealth:
    """One edge's latest report as received."""

    report: EdgeHealth
    received_us: int
    reporter: str
    """Who sent it (the API key, as the audit log names it)."""


class EdgeHealthTable:
    """The latest health report of each edge, in ``table`` (columns ``tenant_id``,
    ``site_id``, ``edge``, ``reported_us``, ``received_us``, ``reporter``, ``body``)."""

    def __init__(
        self, db: Transactional, table: Table, max_edges_per_site: int = MAX_EDGES_PER_SITE
    ) -> None:
        self.db = db
        self.table = table
        self.max_edges = max_edges_per_site

    async def put(self, tenant: str, site_id: str, health: StoredHealth) -> bool:
        """Keep ``health`` as its edge's latest; False when the site has no room for
        another edge."""
        table = self.table
        t = table.c
        key = and_(t.tenant_id == tenant, t.site_id == site_id, t.edge == health.report.edge)
        values = {
            "reported_us": health.report.time_us,
            "received_us": health.received_us,
            "reporter": health.reporter,
            "body": health.report.model_dump_json(),
        }
        async with self.db.begin() as conn:
            known = (await conn.execute(select(t.received_us).where(key))).first()
            if known is not None:
                await conn.execute(
                    update(table).where(key, t.received_us <= health.received_us).values(**values)
                )
                return True
            count = await conn.scalar(
                select(func.count()).where(t.tenant_id == tenant, t.site_id == site_id)
            )
            if int(count or 0) >= self.max_edges:
                return False
        try:
            async with self.db.begin() as conn:
                await conn.execute(
                    insert(table).values(
                        tenant_id=tenant, site_id=site_id, edge=health.report.edge, **values
                    )
                )
        except IntegrityError:  # the same edge's first two reports raced: keep the newer
            async with self.db.begin() as conn:
                await conn.execute(
                    update(table).where(key, t.received_us <= health.received_us).values(**values)
                )
        return True

    async def site(self, tenant: str, site_id: str) -> list[StoredHealth]:
        """Every edge's latest snapshot at a site, by edge id."""
        t = self.table.c
        async with self.db.begin() as conn:
            rows = await conn.execute(
                select(t.body, t.received_us, t.reporter)
                .where(t.tenant_id == tenant, t.site_id == site_id)
                .order_by(t.edge)
            )
            return [
                StoredHealth(EdgeHealth.model_validate_json(r.body), r.received_us, r.reporter)
                for r in rows
            ]

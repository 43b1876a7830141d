"""Where twin scenario jobs live on the platform: ``SqlJobStore`` keeps the rows of
``andon.twin.jobs.TwinJobs`` in the metadata database's ``twin_jobs`` table (the twin's
``JobStore`` protocol), and ``twin_jobs`` builds the service from the ``twin`` settings.
Here, not in ``andon.twin``, because the twin imports nothing above it (``docs/layering.md``)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import and_, func, insert, or_, select, update

from andon.model.types import Micros
from andon.platform import tables
from andon.platform.config import Twin
from andon.platform.database import Database
from andon.store.base import TelemetryStore
from andon.twin.jobs import ACTIVE, TwinJobs, TwinPrices

__all__ = ["SqlJobStore", "twin_jobs"]


def _dump(v: Any) -> str | None:
    return None if v is None else json.dumps(v, separators=(",", ":"))


class SqlJobStore:
    """Jobs in the metadata database's ``twin_jobs`` table (every query carries the tenant,
    like the rest of the service layer)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.t = tables.twin_jobs

    def _out(self, r: Mapping[Any, Any]) -> dict[str, Any]:
        row = dict(r)
        row["request"] = json.loads(row["request"]) if row["request"] else {}
        row["result"] = json.loads(row["result"]) if row["result"] else None
        return row

    async def create(self, row: dict[str, Any]) -> None:
        vals = {**row, "request": _dump(row["request"]), "result": _dump(row.get("result"))}
        async with self.db.begin() as conn:
            await conn.execute(insert(self.t).values(**vals))

    async def get(self, tenant: str, site_id: str, job_id: str) -> dict[str, Any] | None:
        t = self.t
        q = select(t).where(t.c.id == job_id, t.c.tenant_id == tenant, t.c.site_id == site_id)
        async with self.db.begin() as conn:
            r = (await conn.execute(q)).mappings().first()
        return None if r is None else self._out(r)

    async def list(self, tenant: str, site_id: str, limit: int) -> list[dict[str, Any]]:
        t = self.t
        q = (
            select(t)
            .where(t.c.tenant_id == tenant, t.c.site_id == site_id)
            .order_by(t.c.created_at.desc(), t.c.id)
            .limit(limit)
        )
        async with self.db.begin() as conn:
            rows = (await conn.execute(q)).mappings().all()
        return [self._out(r) for r in rows]

    async def active(self, tenant: str) -> int:
        t = self.t
        q = select(func.count()).where(t.c.tenant_id == tenant, t.c.status.in_(ACTIVE))
        async with self.db.begin() as conn:
            return int((await conn.execute(q)).scalar_one())

    async def update(self, job_id: str, **fields: Any) -> None:
        if "result" in fields:
            fields["result"] = _dump(fields["result"])
        async with self.db.begin() as conn:
            await conn.execute(update(self.t).where(self.t.c.id == job_id).values(**fields))

    async def beat(self, owner: str, now: Micros) -> None:
        t = self.t
        q = update(t).where(t.c.owner == owner, t.c.status.in_(ACTIVE)).values(heartbeat_at=now)
        async with self.db.begin() as conn:
            await conn.execute(q)

    async def interrupt_stale(
        self, now: Micros, stale_before: Micros, owner: str, *, unowned: bool = True
    ) -> int:
        t = self.t
        stale = and_(t.c.owner != owner, t.c.heartbeat_at < stale_before)
        q = (
            update(t)
            .where(t.c.status.in_(ACTIVE), or_(stale, t.c.owner.is_(None)) if unowned else stale)
            .values(status="failed", error="interrupted", finished_at=now)
        )
        async with self.db.begin() as conn:
            res = await conn.execute(q)
        return int(res.rowcount or 0)


def twin_jobs(
    cfg: Twin, db: Database, telemetry: TelemetryStore, clock: Callable[[], Micros]
) -> TwinJobs:
    """The service's job runner, from the ``twin`` settings."""
    return TwinJobs(
        SqlJobStore(db),
        telemetry,
        clock,
        prices=TwinPrices(cfg.per_hour, cfg.currency),
        workers=cfg.workers,
        max_per_tenant=cfg.max_jobs_per_tenant,
        history_days=cfg.history_days,
        heartbeat_s=cfg.heartbeat_s,
    )

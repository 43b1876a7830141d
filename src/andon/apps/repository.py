"""``SqlAppRepository``: what app instances write and people answer, in the metadata database.

It is the ``AppSink`` the gateway hands an instance's writes to (findings, work-order
proposals, key/value state) and reads people's feedback back from, and the store the API's
findings inbox reads and writes. Every query carries the tenant in its ``WHERE`` clause; an
instance's writes are checked against its grant here too (the gateway checks first), so a
sink handed a forged site refuses it rather than storing it under another site.

Errors are the platform's: ``NotFound`` (nothing of that id in the tenant), ``Invalid`` (a
finding or value that cannot be stored, saying which field and why; the state cap).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, Literal

from sqlalchemy import and_, delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from andon.apps.grant import AppGrant
from andon.apps.sinks import StateLimitExceeded
from andon.model.types import Micros
from andon.platform.database import Database
from andon.platform.security import new_id
from andon.platform.service import Invalid, NotFound
from andon.platform.tables import (
    app_feedback,
    app_findings,
    app_installations,
    app_state,
    app_work_orders,
    sites,
)
from andon.sdk import Feedback, Finding, WorkOrder

__all__ = ["MAX_COMMENT", "VERDICTS", "SqlAppRepository", "Verdict"]

MAX_STATE_KEY: Final = 200
MAX_COMMENT: Final = 2000
MAX_FEEDBACK: Final = 10_000
"""Verdicts one ``feedback_since`` returns at most (the app asks again from the last one)."""
Verdict = Literal["confirmed", "rejected"]
VERDICTS: Final = ("confirmed", "rejected")


def _text(value: Any, what: str, limit: int, *, empty: bool = False) -> str:
    if not isinstance(value, str):
        raise Invalid(f"{what}: must be text, got {type(value).__name__}")
    if not value and not empty:
        raise Invalid(f"{what}: must not be empty")
    if len(value) > limit:
        raise Invalid(f"{what}: {len(value):,} characters, over the limit of {limit:,}")
    return value


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _finding_out(r: Mapping[Any, Any]) -> dict[str, Any]:
    out = dict(r)
    out["signals"] = json.loads(r["signals"])
    out["evidence"] = json.loads(r["evidence"])
    return out


class SqlAppRepository:
    """Findings, feedback, work-order proposals and app state on the metadata database;
    an ``andon.apps.sinks.AppSink``.

    ``clock``: µs since the epoch (the platform's), stamped on people's feedback."""

    def __init__(self, db: Database, clock: Callable[[], Micros]) -> None:
        self.db = db
        self.clock = clock

    async def _own_site(self, conn: AsyncConnection, grant: AppGrant, site: str) -> str:
        if site not in grant.site_ids:
            raise Invalid(f"site: {site!r:.80} is not one of the installation's sites")
        found = await conn.scalar(
            select(sites.c.id).where(sites.c.tenant_id == grant.tenant_id, sites.c.id == site)
        )
        if found is None:  # the site was deleted since the installation
            raise NotFound(f"site {site!r:.80} not in tenant")
        return site

    async def _tenant_of(self, conn: AsyncConnection, instance_id: str) -> str:
        tenant = await conn.scalar(
            select(app_installations.c.tenant_id).where(app_installations.c.id == instance_id)
        )
        if tenant is None:
            raise NotFound(f"instance {instance_id!r:.80} is not installed")
        return str(tenant)

    # -- AppSink: what the gateway calls for an instance ------------------------------------

    async def add_finding(self, grant: AppGrant, finding: Finding, at_us: Micros) -> str:
        """Keep one finding of the instance (checked by ``Finding`` and the gateway; its
        site once more against the grant and the tenant); its id."""
        row = {
            "id": new_id(),
            "tenant_id": grant.tenant_id,
            "installation_id": grant.instance_id,
            "app_id": grant.app_id,
            "type": finding.type,
            "machine": finding.machine,
            "start_us": finding.start_us,
            "end_us": finding.end_us,
            "score": float(finding.score),
            "title": finding.title,
            "explanation": finding.explanation,
            "signals": _dumps(list(finding.signals)),
            "evidence": _dumps(finding.evidence),
            "created_at": at_us,
        }
        async with self.db.begin() as conn:
            row["site_id"] = await self._own_site(conn, grant, finding.site)
            await conn.execute(insert(app_findings).values(**row))
        return str(row["id"])

    async def add_work_order(self, grant: AppGrant, order: WorkOrder, at_us: Micros) -> str:
        """Keep one work-order proposal of the instance; its id."""
        row = {
            "id": new_id(),
            "tenant_id": grant.tenant_id,
            "installation_id": grant.instance_id,
            "machine": order.machine,
            "title": order.title,
            "detail": order.detail,
            "due_us": order.due_us,
            "created_at": at_us,
        }
        async with self.db.begin() as conn:
            row["site_id"] = await self._own_site(conn, grant, order.site)
            await conn.execute(insert(app_work_orders).values(**row))
        return str(row["id"])

    async def get_state(self, instance_id: str, key: str) -> str | None:
        """The JSON text the instance stored under ``key``, or ``None``."""
        async with self.db.begin() as conn:
            text = await conn.scalar(
                select(app_state.c.value).where(
                    app_state.c.installation_id == instance_id, app_state.c.key == key
                )
            )
        return None if text is None else str(text)

    async def set_state(self, instance_id: str, key: str, value: str, limit_bytes: int) -> None:
        """Store ``value`` (JSON text) under ``key``; ``StateLimitExceeded`` and nothing
        stored when the instance's keys and values would take more than ``limit_bytes``
        (``andon.apps.sinks.state_size``)."""
        _text(key, "key", MAX_STATE_KEY)
        json.loads(value)  # the gateway sends JSON; anything else is a bug worth seeing
        size = len(key.encode()) + len(value.encode())
        async with self.db.begin() as conn:
            tenant = await self._tenant_of(conn, instance_id)
            where = and_(app_state.c.installation_id == instance_id, app_state.c.key == key)
            used = await conn.scalar(
                select(func.coalesce(func.sum(app_state.c.size), 0)).where(
                    app_state.c.installation_id == instance_id, app_state.c.key != key
                )
            )
            if int(used or 0) + size > limit_bytes:
                raise StateLimitExceeded(
                    f"state would be {int(used or 0) + size:,} bytes, over {limit_bytes:,}"
                )
            await conn.execute(delete(app_state).where(where))
            await conn.execute(
                insert(app_state).values(
                    tenant_id=tenant,
                    installation_id=instance_id,
                    key=key,
                    value=value,
                    size=size,
                    updated_at=self.clock(),
                )
            )

    async def feedback_since(self, instance_id: str, since_us: Micros) -> list[Feedback]:
        """People's verdicts on the instance's findings given at or after ``since_us``,
        oldest first."""
        q = (
            select(app_feedback)
            .where(app_feedback.c.installation_id == instance_id, app_feedback.c.at >= since_us)
            .order_by(app_feedback.c.at, app_feedback.c.id)
            .limit(MAX_FEEDBACK)
        )
        async with self.db.begin() as conn:
            rows = (await conn.execute(q)).mappings().all()
        return [
            Feedback(r["finding_id"], r["verdict"], r["comment"], r["actor"], r["at"]) for r in rows
        ]

    # -- the findings inbox (API) -----------------------------------------------------------

    async def findings(
        self,
        tenant_id: str,
        site_id: str,
        *,
        machine: str | None = None,
        type_: str | None = None,
        app_id: str | None = None,
        verdict: Literal["open", "confirmed", "rejected"] | None = None,
        start: int | None = None,
        end: int | None = None,
        limit: int = 200,
    ) -> list[dict[str, Any]]:
        """The site's findings, newest first, each with its latest ``verdict`` (``None``:
        not yet answered). ``start``/``end`` filter on the finding's window overlapping."""
        conds = [app_findings.c.tenant_id == tenant_id, app_findings.c.site_id == site_id]
        if machine is not None:
            conds.append(app_findings.c.machine == machine)
        if type_ is not None:
            conds.append(app_findings.c.type == type_)
        if app_id is not None:
            conds.append(app_findings.c.app_id == app_id)
        if start is not None:
            conds.append(app_findings.c.end_us >= start)
        if end is not None:
            conds.append(app_findings.c.start_us < end)
        q = (
            select(app_findings)
            .where(*conds)
            .order_by(app_findings.c.created_at.desc(), app_findings.c.id)
            .limit(limit if verdict is None else 10_000)
        )
        async with self.db.begin() as conn:
            rows = [_finding_out(r) for r in (await conn.execute(q)).mappings().all()]
            decided = await self._decisions(conn, tenant_id, [r["id"] for r in rows])
        for r in rows:
            r["verdict"] = decided.get(r["id"])
        if verdict is not None:
            want = None if verdict == "open" else verdict
            rows = [r for r in rows if r["verdict"] == want][:limit]
        return rows

    async def _decisions(
        self, conn: AsyncConnection, tenant_id: str, ids: Iterable[str]
    ) -> dict[str, str]:
        ids = list(ids)
        if not ids:
            return {}
        q = (
            select(app_feedback.c.finding_id, app_feedback.c.verdict)
            .where(app_feedback.c.tenant_id == tenant_id, app_feedback.c.finding_id.in_(ids))
            .order_by(app_feedback.c.at, app_feedback.c.id)
        )
        out: dict[str, str] = {}
        for fid, dec in (await conn.execute(q)).all():
            out[fid] = dec  # the latest wins
        return out

    async def finding(self, tenant_id: str, site_id: str, finding_id: str) -> dict[str, Any]:
        """One finding of the site with every verdict on it (oldest first, with who)."""
        async with self.db.begin() as conn:
            row = (
                (
                    await conn.execute(
                        select(app_findings).where(
                            app_findings.c.tenant_id == tenant_id,
                            app_findings.c.site_id == site_id,
                            app_findings.c.id == finding_id,
                        )
                    )
                )
                .mappings()
                .first()
            )
            if row is None:
                raise NotFound(f"finding {finding_id!r:.80} not in site")
            fb = (
                (
                    await conn.execute(
                        select(app_feedback)
                        .where(
                            app_feedback.c.tenant_id == tenant_id,
                            app_feedback.c.finding_id == finding_id,
                        )
                        .order_by(app_feedback.c.at, app_feedback.c.id)
                    )
                )
                .mappings()
                .all()
            )
        out = _finding_out(row)
        out["feedback"] = [
            {k: f[k] for k in ("id", "verdict", "comment", "actor", "at")} for f in fb
        ]
        out["verdict"] = out["feedback"][-1]["verdict"] if fb else None
        return out

    async def add_feedback(
        self,
        tenant_id: str,
        site_id: str,
        finding_id: str,
        verdict: Verdict,
        comment: str,
        actor: str,
    ) -> dict[str, Any]:
        """A person confirms or rejects a finding (appended: the latest verdict stands, the
        app reads them all); the finding with its verdicts after."""
        if verdict not in VERDICTS:
            raise Invalid(f"verdict: must be one of {', '.join(VERDICTS)}")
        async with self.db.begin() as conn:
            inst = await conn.scalar(
                select(app_findings.c.installation_id).where(
                    app_findings.c.tenant_id == tenant_id,
                    app_findings.c.site_id == site_id,
                    app_findings.c.id == finding_id,
                )
            )
            if inst is None:
                raise NotFound(f"finding {finding_id!r:.80} not in site")
            await conn.execute(
                insert(app_feedback).values(
                    id=new_id(),
                    tenant_id=tenant_id,
                    finding_id=finding_id,
                    installation_id=inst,
                    verdict=verdict,
                    comment=_text(comment, "comment", MAX_COMMENT, empty=True),
                    actor=actor[:200],
                    at=self.clock(),
                )
            )
        return await self.finding(tenant_id, site_id, finding_id)

    async def work_orders(self, tenant_id: str, site_id: str) -> list[dict[str, Any]]:
        """The site's proposed work orders, newest first."""
        async with self.db.begin() as conn:
            rows = (
                (
                    await conn.execute(
                        select(app_work_orders)
                        .where(
                            app_work_orders.c.tenant_id == tenant_id,
                            app_work_orders.c.site_id == site_id,
                        )
                        .order_by(app_work_orders.c.created_at.desc())
                        .limit(1000)
                    )
                )
                .mappings()
                .all()
            )
        return [dict(r) for r in rows]

    async def drop_state(self, tenant_id: str, installation_id: str) -> int:
        """Delete an instance's key/value state (on uninstall); how many keys went."""
        async with self.db.begin() as conn:
            res = await conn.execute(
                delete(app_state).where(
                    app_state.c.tenant_id == tenant_id,
                    app_state.c.installation_id == installation_id,
                )
            )
        return int(res.rowcount or 0)

    async def counts(self, tenant_id: str, installation_id: str) -> dict[str, int]:
        """How many findings, decisions, work orders and state keys an instance has."""
        out: dict[str, int] = {}
        async with self.db.begin() as conn:
            for name, table in (
                ("findings", app_findings),
                ("feedback", app_feedback),
                ("work_orders", app_work_orders),
                ("state_keys", app_state),
            ):
                n = await conn.scalar(
                    select(func.count()).where(
                        table.c.tenant_id == tenant_id,
                        table.c.installation_id == installation_id,
                    )
                )
                out[name] = int(n or 0)
        return out

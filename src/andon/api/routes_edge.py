"""API routes: edge (registered on the shared declared router of ``andon.api.routes``).

``POST /sites/{site_id}/edge/health``: an edge agent (an edge API key, ``ingest:write`` at
the site) reports its connection health; the platform keeps the latest snapshot per
``(tenant, site, edge)``. ``GET`` (``edge:read``) returns them with their staleness.

Snapshots are kept behind ``EdgeHealthStore``; the one used now (``MemoryEdgeHealth``) lives
in the API process, so a platform restart forgets them until each edge reports again (every
``health_interval_s``, 15 s by default) and several API processes would each see only their
own edges. A table is the durable answer (see decision 0305).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Protocol

from fastapi import HTTPException, Request

from andon.api.deps import Ctx
from andon.api.routes import api
from andon.api.schemas_edge import (
    ConnectorHealthOut,
    DeviceHealthOut,
    EdgeHealthAck,
    EdgeHealthIn,
    EdgeSnapshotOut,
    SiteEdgeHealthOut,
)
from andon.platform.permissions import Permission

__all__ = ["EdgeHealthStore", "MemoryEdgeHealth", "StoredHealth", "api", "health_store"]

MAX_EDGES_PER_SITE = 1_000
STALE_INTERVALS = 3


@dataclass(frozen=True)
class StoredHealth:
    """One edge's latest report as received."""

    report: EdgeHealthIn
    received_us: int
    reporter: str
    """Who sent it (the API key, as the audit log names it)."""


class EdgeHealthStore(Protocol):
    """Where the platform keeps the latest health snapshot of each edge."""

    def put(self, tenant: str, site_id: str, health: StoredHealth) -> bool:
        """Keep ``health`` as its edge's latest; False when the site has too many edges."""
        ...

    def site(self, tenant: str, site_id: str) -> list[StoredHealth]:
        """Every edge's latest snapshot at a site, by edge id."""
        ...


class MemoryEdgeHealth:
    """``EdgeHealthStore`` in this process's memory, bounded per site."""

    def __init__(self, max_edges_per_site: int = MAX_EDGES_PER_SITE) -> None:
        self.max_edges = max_edges_per_site
        self._sites: dict[tuple[str, str], dict[str, StoredHealth]] = {}
        self._lock = threading.Lock()

    def put(self, tenant: str, site_id: str, health: StoredHealth) -> bool:
        with self._lock:
            edges = self._sites.setdefault((tenant, site_id), {})
            edge = health.report.edge
            if edge not in edges and len(edges) >= self.max_edges:
                return False
            old = edges.get(edge)
            if old is None or old.report.time_us <= health.report.time_us:
                edges[edge] = health  # a late, older report never replaces a newer one
            return True

    def site(self, tenant: str, site_id: str) -> list[StoredHealth]:
        with self._lock:
            edges = self._sites.get((tenant, site_id), {})
            return [edges[k] for k in sorted(edges)]


def health_store(request: Request) -> EdgeHealthStore:
    """The app's store of edge health (made on first use)."""
    state = request.app.state
    store: EdgeHealthStore | None = getattr(state, "edge_health", None)
    if store is None:
        store = MemoryEdgeHealth()
        state.edge_health = store
    return store


@api.route(
    "POST",
    "/sites/{site_id}/edge/health",
    name="edge.health.report",
    permission=Permission.INGEST_WRITE,
    scope="site",
    status_code=202,
)
async def report_health(
    site_id: str, body: EdgeHealthIn, request: Request, ctx: Ctx
) -> EdgeHealthAck:
    """An edge agent's connection health: per connector and device, last success, error
    counts, latency, reconnects; its buffer and uplink. The latest report per edge is kept."""
    now = ctx.services.clock()
    stored = StoredHealth(body, now, ctx.principal.actor)
    if not health_store(request).put(ctx.tenant, ctx.site_id, stored):
        raise HTTPException(
            409, f"site has {MAX_EDGES_PER_SITE} edges reporting health; no room for another"
        )
    return EdgeHealthAck(edge=body.edge, received_us=now)


@api.route(
    "GET",
    "/sites/{site_id}/edge/health",
    name="edge.health.read",
    permission=Permission.EDGE_READ,
    scope="site",
)
async def read_health(site_id: str, request: Request, ctx: Ctx) -> SiteEdgeHealthOut:
    """The latest health of every edge at the site, with staleness: ``age_s`` since the
    report arrived (``stale`` after three of the edge's intervals without one) and, per
    device, ``since_success_s`` from its last good read to the edge's snapshot."""
    now = ctx.services.clock()
    edges = [_snapshot(h, now) for h in health_store(request).site(ctx.tenant, ctx.site_id)]
    return SiteEdgeHealthOut(site_id=ctx.site_id, edges=edges)


def _snapshot(h: StoredHealth, now: int) -> EdgeSnapshotOut:
    r = h.report
    age = max(0.0, (now - h.received_us) / 1e6)
    return EdgeSnapshotOut(
        edge=r.edge,
        reported_us=r.time_us,
        received_us=h.received_us,
        age_s=round(age, 3),
        stale=age > STALE_INTERVALS * r.interval_s,
        uplink=r.uplink,
        buffer=r.buffer,
        connectors=[
            ConnectorHealthOut(
                connector=c.connector,
                devices=[
                    DeviceHealthOut(
                        device=d.device,
                        connected=d.connected,
                        last_success_us=d.last_success_us,
                        since_success_s=None
                        if d.last_success_us is None
                        else round(max(0.0, (r.time_us - d.last_success_us) / 1e6), 3),
                        last_error=d.last_error,
                        errors=d.errors,
                        reconnects=d.reconnects,
                        points=d.points,
                        latency_ms=d.latency_ms,
                        rejected=dict(d.rejected),
                    )
                    for d in c.devices
                ],
            )
            for c in r.connectors
        ],
    )

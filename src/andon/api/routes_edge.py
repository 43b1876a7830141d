"""API routes: edge (registered on the shared declared router of ``andon.api.routes``).

``POST /sites/{site_id}/ingest``: data from an edge agent (an edge API key, ``ingest:write``
at the site), handed to the ingest gateway (``andon.ingest.gateway``) like the frames that
arrive over MQTT: either one binary frame (``Content-Type: application/vnd.andon.frame``,
what the edge's HTTPS uplink sends, historical flag included) or JSON columns (``IngestIn``:
samples, text values, states, open states, parts) from simple clients.

``POST /sites/{site_id}/edge/health``: an edge agent (an edge API key, ``ingest:write`` at
the site) reports its connection health; the platform keeps the latest snapshot per
``(tenant, site, edge)`` in the metadata database (``andon.ingest.edge_health``), so a restart or a
second API process sees the same. ``GET`` (``edge:read``) returns them with their staleness.
Reports are ordered, and their age measured, by the platform's time of receipt, never by the
edge's own clock, so an edge whose clock steps back is not left stale (decision 0312).

``GET /ingest/stats`` (platform administrators): the ingest gateway's running totals, every
refused frame and point counted by reason, and the MQTT receiver's connection state.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from fastapi import Body, HTTPException, Request

from andon.api.deps import Access, Ctx
from andon.api.params import api
from andon.api.schemas import IngestIn, IngestOut
from andon.ingest.edge_health import (
    MAX_EDGES_PER_SITE,
    STALE_INTERVALS,
    EdgeHealthTable,
    StoredHealth,
)
from andon.ingest.gateway import EdgeIdentity, IngestGateway, OutsideSite, SiteRef
from andon.model.types import PartBatch, SampleBatch, StateBatch, TextBatch
from andon.platform.permissions import Permission
from andon.platform.service import Invalid
from andon.platform.tables import edge_health
from andon.wire.frames import FRAME_CONTENT_TYPE, HEADER
from andon.wire.health import EdgeHealth, EdgeHealthAck, EdgeSnapshot, SiteEdgeHealth

__all__ = ["api"]


@api.route(
    "POST",
    "/sites/{site_id}/edge/health",
    name="edge.health.report",
    permission=Permission.INGEST_WRITE,
    scope="site",
    status_code=202,
)
async def report_health(site_id: str, body: EdgeHealth, ctx: Ctx) -> EdgeHealthAck:
    """An edge agent's connection health: per connector and device, last success, error
    counts, latency, reconnects; its buffer and uplink. The latest report per edge is kept.
    Receipt is stamped by ingest's clock, which a platform clock stepped back does not move
    back (else every later report would look older than the kept one)."""
    now = ctx.services.ingestor.now()
    stored = StoredHealth(body, now, ctx.principal.actor)
    if not await _table(ctx).put(ctx.tenant, ctx.site_id, stored):
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
async def read_health(site_id: str, ctx: Ctx) -> SiteEdgeHealth:
    """The latest health of every edge at the site, with staleness: ``age_s`` since the
    report arrived (``stale`` after three of the edge's intervals without one) and, per
    device, ``since_success_s`` from its last good read to the edge's snapshot."""
    now = ctx.services.ingestor.now()
    stored = await _table(ctx).site(ctx.tenant, ctx.site_id)
    edges = [EdgeSnapshot.of(h.report, h.received_us, now, STALE_INTERVALS) for h in stored]
    return SiteEdgeHealth(site_id=ctx.site_id, edges=edges)


def _table(ctx: Access) -> EdgeHealthTable:
    return EdgeHealthTable(ctx.services.platform.db, edge_health)


# ---- ingest --------------------------------------------------------------------------------------

_UNREADABLE = {"malformed_frame", "unsupported_version", "bad_seq"}
_UNANSWERED = {"store_failed", "internal_error"}
"""Not stored, not lost: the edge sends the frame again (503 with a Retry-After)."""


async def _deny_outside(ctx: Access, why: str, names: list[str]) -> HTTPException:
    await ctx.audit(
        "ingest.write",
        f"site:{ctx.site_id}",
        "denied",
        {"status": 403, "why": why, "names": names[:3]},
    )
    return HTTPException(403, "names outside this site")


def _limit(ctx: Access, points: int) -> None:
    wait = ctx.services.limiter.take(ctx.tenant, "ingest", points)
    if wait:
        retry = "60" if math.isinf(wait) else str(max(1, math.ceil(wait)))
        raise HTTPException(429, "ingest rate limit exceeded", headers={"Retry-After": retry})


@api.route(
    "POST",
    "/sites/{site_id}/ingest",
    name="ingest.write",
    permission=Permission.INGEST_WRITE,
    scope="site",
)
async def ingest(
    site_id: str,
    body: Annotated[IngestIn | bytes, Body(description="JSON columns, or one binary frame")],
    request: Request,
    ctx: Ctx,
) -> IngestOut:
    """Data from an edge agent: one binary uplink frame (``Content-Type:
    application/vnd.andon.frame``) or JSON columns (samples, text values, state intervals,
    open states, part counts). Rows of unknown signals or machines, bad timestamps or values,
    values of the wrong kind for their signal are refused and counted; a resent point is
    stored once (counted in ``duplicates``, ``texts_duplicate`` for text values)."""
    svc = ctx.services
    gateway = svc.gateway
    if gateway is None:
        raise RuntimeError("the ingest gateway is not running")
    model = await svc.model(ctx.tenant, ctx.site or {})
    site = SiteRef(ctx.site_id, model.plant.site.id)
    frame = request.headers.get("content-type", "").split(";")[0].strip() == FRAME_CONTENT_TYPE
    if frame:
        if not isinstance(body, bytes):
            raise Invalid("a frame body must be the frame's bytes")
        return await _ingest_frame(ctx, gateway, site, body)
    if not isinstance(body, IngestIn):
        raise Invalid(f"send JSON columns (IngestIn) or one frame as {FRAME_CONTENT_TYPE}")
    points = sum(
        len(x.ts) if hasattr(x, "ts") else len(x.start)
        for x in (body.samples, body.states, body.parts, body.open_states, body.texts)
        if x is not None
    )
    _limit(ctx, points)
    try:
        s, st, op, pt, tx = body.samples, body.states, body.open_states, body.parts, body.texts
        res = await gateway.columns(
            ctx.tenant,
            site,
            samples=None
            if s is None
            else SampleBatch.build(
                s.names, s.index, s.ts, [math.nan if v is None else v for v in s.value], s.quality
            ),
            states=None
            if st is None
            else StateBatch.build(st.names, st.index, st.start, st.end, st.state, st.reason),
            open_states=None
            if op is None
            else StateBatch.build(op.names, op.index, op.start, op.end, op.state, op.reason),
            parts=None
            if pt is None
            else PartBatch.build(pt.names, pt.index, pt.ts, pt.product, pt.good, pt.scrap),
            texts=None
            if tx is None
            else TextBatch.build(
                tx.names,
                tx.index,
                tx.ts,
                tx.value,
                tx.quality,
                code=None if tx.code is None else [math.nan if c is None else c for c in tx.code],
            ),
        )
    except OutsideSite as exc:
        raise await _deny_outside(ctx, "names outside the site", exc.names) from None
    except ValueError as exc:
        raise Invalid(str(exc)) from exc
    return IngestOut(
        accepted=res.accepted,
        duplicates=res.duplicates,
        rejected=res.rejected,
        conflicts=res.conflicts,
        states=res.states,
        parts=res.parts,
        open_states=res.open_states,
        texts=res.texts,
        texts_duplicate=res.texts_duplicate,
    )


async def _ingest_frame(
    ctx: Access, gateway: IngestGateway, site: SiteRef, body: bytes
) -> IngestOut:
    points = HEADER.unpack_from(body)[5] if len(body) >= HEADER.size else 0
    _limit(ctx, points)
    # the guard checked the key may write this site: the frame must be for this site
    bearer = EdgeIdentity(ctx.principal.id, ctx.tenant, frozenset({site.site_id}))
    res = await gateway.frames([(None, body)], bearer=bearer)
    if res.refused:
        why = res.refused[0]
        if why in _UNREADABLE:
            raise Invalid(f"frame refused: {why}")
        if why == "too_large":
            cap = gateway.max_frame_bytes
            raise HTTPException(413, f"frame refused: {len(body):,} bytes, over {cap:,}")
        if why in _UNANSWERED:
            raise HTTPException(503, f"frame not stored ({why})", headers={"Retry-After": "5"})
        raise await _deny_outside(ctx, why, [])
    return IngestOut(
        accepted=res.accepted,
        duplicates=res.duplicates,
        rejected=res.rejected,
        conflicts=res.conflicts,
        states=0,
        parts=0,
        texts=res.texts_accepted,
        texts_duplicate=res.texts_duplicate,
    )


@api.route(
    "GET",
    "/ingest/stats",
    name="ingest.stats",
    permission=Permission.PLATFORM_ADMIN,
    scope="platform",
)
async def ingest_stats(ctx: Ctx, request: Request) -> dict[str, Any]:
    """The ingest gateway's totals since the platform started: frames stored and refused by
    reason (``too_large``, ``bad_seq``, ``store_failed``, ``internal_error``, key and site
    refusals...), points stored, duplicate, in conflict (same instant, another value) and
    refused by reason (``unknown_signal``, ``future``, ``dictionary_full``...), and the MQTT
    receiver's connection state; the live bus's totals (``bus``: published, delivered,
    dropped from full subscriber queues, per open subscription too) and what ingest published
    on it (``live``: published, failed); requests answered 503 because a dependency was
    down (``unavailable``, per route). Every tenant together: platform administrators
    only."""
    svc = ctx.services
    out: dict[str, Any] = {"ingest": svc.ingestor.stats.as_dict()}
    out["bus"] = svc.bus.stats().as_dict()
    if svc.ingestor.live is not None:
        out["live"] = svc.ingestor.live.stats.as_dict()
    if svc.gateway is not None:
        out["gateway"] = svc.gateway.stats.as_dict()
    unavailable = getattr(request.app.state, "unavailable", None)
    if unavailable is not None:  # requests answered 503 (a dependency down), per route
        out["unavailable"] = dict(sorted(unavailable.counts.items()))
    r = svc.receiver
    if r is not None:
        out["receiver"] = {
            "connected": r.connected.is_set(),
            "connects": r.connects,
            "last_error": r.last_error,
        }
    return out

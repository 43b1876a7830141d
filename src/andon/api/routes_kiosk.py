"""API routes of the kiosk board (registered on the shared declared router of
``andon.api.routes``): board devices, line targets, the kiosk board with shift progress,
and the kiosk's live feed.

A board device is an API key of kind ``board`` that holds ``board:read`` at one site
(``andon.platform.boards``); ``board:read`` opens the two kiosk endpoints and nothing else,
so a TV's credential read off its browser storage shows a board and no data besides. The
feed re-checks the credentials on every tick, so a revoked device's open feed ends within
one tick (docs/decisions/0613-*, 0614-*)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query, Request
from fastapi.responses import StreamingResponse

from andon.api.deps import Access, Ctx
from andon.api.feeds import event_stream
from andon.api.live import FloorFeed, SiteFeed
from andon.api.params import _model, api
from andon.api.routes_analytics import _table
from andon.api.routes_ops import board
from andon.api.schemas_kiosk import (
    BoardDeviceCreated,
    BoardDeviceIn,
    BoardDeviceOut,
    KioskLineOut,
    KioskOut,
    ShiftProgressOut,
    TargetIn,
    TargetOut,
)
from andon.kpi.progress import shift_progress, shift_window
from andon.kpi.ranges import line_outputs
from andon.kpi.timeline import Buckets
from andon.model.plant import Plant
from andon.platform.boards import (
    LineTarget,
    TargetRecords,
    list_devices,
    register_device,
    revoke_device,
)
from andon.platform.permissions import Permission
from andon.platform.service import Invalid
from andon.twin.jobs import find_line

__all__ = ["api"]

P = Permission
LineFilter = Annotated[
    str | None, Query(min_length=1, max_length=300, description="only this line (path)")
]


def _device(k: dict[str, Any]) -> BoardDeviceOut:
    return BoardDeviceOut(
        id=k["id"],
        name=k["name"],
        site_id=k["site_ids"][0],
        created_by=k["created_by"],
        created_at=k["created_at"],
        expires_at=k["expires_at"],
        revoked_at=k["revoked_at"],
    )


def _targets(ctx: Access) -> TargetRecords:
    return TargetRecords(ctx.services.platform.db, ctx.services.clock)


def _target(t: LineTarget) -> TargetOut:
    return TargetOut(
        line=t.line,
        oee=t.oee,
        per_hour=t.per_hour,
        per_shift=t.per_shift,
        updated_by=t.updated_by,
        updated_at=t.updated_at,
    )


def _line_paths(plant: Plant) -> dict[str, str]:
    """Line path → display name."""
    return {f"{plant.site.id}/{a.id}/{ln.id}": ln.name or ln.id for a, ln in plant.lines()}


def _check_line(plant: Plant, line: str, where: str) -> str:
    path = line.strip("/")
    if path not in _line_paths(plant):
        raise Invalid(f"{where}: {line[:200]!r} is not a line of this site")
    return path


# ---- board devices ---------------------------------------------------------------------------


@api.route(
    "POST",
    "/sites/{site_id}/board-devices",
    name="board.devices.create",
    permission=P.BOARD_MANAGE,
    scope="site",
    status_code=201,
)
async def create_device(site_id: str, body: BoardDeviceIn, ctx: Ctx) -> BoardDeviceCreated:
    """Register a board device (a TV's browser) for this site. The answer's ``secret`` is
    the device's credential, shown this once: it reads this site's kiosk board and feed
    and nothing else, until it expires (``ttl_days``, default ten years) or is revoked."""
    key, secret = await register_device(
        ctx.services.platform,
        ctx.tenant,
        ctx.site_id,
        ctx.principal,
        body.name,
        body.ttl_days * 86_400,
    )
    await ctx.audit(
        "board.devices.create", f"key:{key['id']}", detail={"site": ctx.site_id, "name": body.name}
    )
    return BoardDeviceCreated(device=_device(key), secret=secret)


@api.route(
    "GET",
    "/sites/{site_id}/board-devices",
    name="board.devices.list",
    permission=P.BOARD_MANAGE,
    scope="site",
)
async def get_devices(site_id: str, ctx: Ctx) -> list[BoardDeviceOut]:
    """The site's board devices, revoked ones included (with ``revoked_at``)."""
    return [_device(k) for k in await list_devices(ctx.services.platform, ctx.tenant, site_id)]


@api.route(
    "DELETE",
    "/sites/{site_id}/board-devices/{key_id}",
    name="board.devices.revoke",
    permission=P.BOARD_MANAGE,
    scope="site",
)
async def delete_device(site_id: str, key_id: str, ctx: Ctx) -> BoardDeviceOut:
    """Revoke a board device: its next request gets 401 and its open feed ends within one
    tick. It stays listed, with ``revoked_at``."""
    key = await revoke_device(ctx.services.platform, ctx.tenant, ctx.site_id, key_id)
    await ctx.audit("board.devices.revoke", f"key:{key_id}", detail={"site": ctx.site_id})
    return _device(key)


# ---- line targets ----------------------------------------------------------------------------


@api.route(
    "GET", "/sites/{site_id}/targets", name="targets.list", permission=P.KPI_READ, scope="site"
)
async def get_targets(site_id: str, ctx: Ctx) -> list[TargetOut]:
    """Every line's targets (lines without any are left out)."""
    got = await _targets(ctx).of_site(ctx.tenant, ctx.site_id)
    return [_target(t) for _, t in sorted(got.items())]


@api.route(
    "PUT", "/sites/{site_id}/targets", name="targets.put", permission=P.BOARD_MANAGE, scope="site"
)
async def put_target(site_id: str, body: TargetIn, ctx: Ctx) -> TargetOut:
    """Set a line's targets: OEE (0–1), good parts per hour, per shift; each optional, and
    what is left out is cleared (all left out removes the line's targets)."""
    plant = (await _model(ctx)).plant
    line = _check_line(plant, body.line, "line")
    t = await _targets(ctx).put(
        ctx.tenant,
        ctx.site_id,
        line,
        oee=body.oee,
        per_hour=body.per_hour,
        per_shift=body.per_shift,
        actor=ctx.principal.actor,
    )
    await ctx.audit(
        "targets.put",
        f"line:{line}",
        detail={"oee": body.oee, "per_hour": body.per_hour, "per_shift": body.per_shift},
    )
    return _target(t)


# ---- the kiosk board -------------------------------------------------------------------------


@api.route("GET", "/sites/{site_id}/kiosk", name="kiosk.get", permission=P.BOARD_READ, scope="site")
async def kiosk(site_id: str, ctx: Ctx, line: LineFilter = None) -> KioskOut:
    """The andon board (as ``/board``, filtered to ``line`` when given) and per line its
    targets, its OEE over the current shift so far and the shift's plan versus actual good
    output (plan = target rate × planned production time elapsed in the shift)."""
    svc = ctx.services
    plant = (await _model(ctx)).plant
    names = _line_paths(plant)
    only = None if line is None else _check_line(plant, line, "line")
    b = await board(site_id, ctx)
    if only is not None:
        b.machines = [m for m in b.machines if m.line == only]
        b.lines = [x for x in b.lines if x.line == only]
        mine = {m.machine for m in b.machines}
        b.alerts = [a for a in b.alerts if a.machine is None or a.machine in mine]
    targets = await _targets(ctx).of_site(ctx.tenant, ctx.site_id)
    wanted = [only] if only is not None else list(names)
    step = svc.settings.kpi_cache_s * 1_000_000
    now = b.now - b.now % step if step > 0 else b.now

    async def compute() -> dict[str, Any]:
        return {"lines": await _kiosk_lines(ctx, plant, names, wanted, targets, now)}

    if step > 0:
        # once per KPI step for every screen showing the same lines and targets
        sig = repr(sorted((k, v.oee, v.per_hour, v.per_shift) for k, v in targets.items()))
        key = (ctx.tenant, f"{ctx.site_id}|kiosk|{only or ''}|{sig}", _site_version(ctx))
        got = await svc.kpi_cache.get(key, now, compute)
    else:
        got = await compute()
    lines: list[KioskLineOut] = got["lines"]
    site = ctx.site or {}
    return KioskOut(
        site=str(site.get("name", plant.site.name or plant.site.id)),
        timezone=plant.site.timezone,
        board=b,
        lines=lines,
    )


def _site_version(ctx: Access) -> int:
    """The site's model version (cache keys change with the model)."""
    return int((ctx.site or {}).get("updated_at", 0))


async def _kiosk_lines(
    ctx: Access,
    plant: Plant,
    names: dict[str, str],
    wanted: list[str],
    targets: dict[str, LineTarget],
    now: int,
) -> list[KioskLineOut]:
    """Per line: targets, OEE over the shift so far (the line page's computation) and the
    shift's plan versus actual."""
    _, start, _, until = shift_window(plant, now)
    outputs = line_outputs(plant)
    out_machines = sorted({m for ln in wanted for m in outputs[ln]})
    parts = await ctx.services.store.read_parts(ctx.tenant, out_machines, start, until)
    lines = []
    for ln in wanted:
        t = targets.get(ln)
        prog = shift_progress(
            plant,
            ln,
            parts,
            now,
            per_hour=None if t is None else t.per_hour,
            per_shift=None if t is None else t.per_shift,
        )
        ref = find_line(plant, ln)
        machines = tuple(ref.machine_path(m) for m in ref.line.machines)
        oee = None
        if until > start:
            table = await _table(ctx, plant, machines, start, until, Buckets.single(start, until))
            whole = table.group(lambda m, bk, p: ("line", bk, ""))
            if len(whole):
                v = float(whole.oee[0])
                oee = round(v, 6) if v == v else None
        lines.append(
            KioskLineOut(
                line=ln,
                name=names[ln],
                oee=oee,
                target=None if t is None else _target(t),
                shift=ShiftProgressOut(
                    shift=prog.label,
                    start=prog.start,
                    end=prog.end,
                    until=prog.until,
                    planned_s=round(prog.planned_s, 3),
                    planned_total_s=round(prog.planned_total_s, 3),
                    per_hour=None if prog.per_hour is None else round(prog.per_hour, 6),
                    plan=prog.plan,
                    actual=prog.actual,
                ),
            )
        )
    return lines


@api.route(
    "GET",
    "/sites/{site_id}/kiosk/feed",
    name="kiosk.feed",
    permission=P.BOARD_READ,
    scope="site",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {"schema": {"type": "string"}}}}},
)
async def kiosk_feed(
    site_id: str,
    ctx: Ctx,
    request: Request,
    line: LineFilter = None,
    interval_s: Annotated[float, Query(ge=0.2, le=60)] = 1.0,
    max_ticks: Annotated[int, Query(ge=1, le=86_400)] = 3600,
) -> StreamingResponse:
    """Server-sent events for the kiosk: ``event: states`` (machines whose current state
    changed; all on the first tick) and ``event: alerts`` (opened, acknowledged or closed),
    as the live feed sends them, but no signal values. The credentials are re-checked on
    every tick: a revoked device or role gets ``event: end`` within one tick."""
    model = await _model(ctx)
    base = model.plant.site.id + "/"
    want = base if line is None else _check_line(model.plant, line, "line") + "/"
    svc = ctx.services
    # no values are sent, but the bus's samples tell the floor when a machine was heard
    feed = SiteFeed(
        svc.bus,
        ctx.tenant,
        model.plant.site.id,
        (),
        FloorFeed(ctx, model, want),
        max_queue=svc.settings.bus.max_queue,
    )

    async def tick(n: int) -> list[str]:
        return await feed.tick()

    return event_stream(ctx, request, tick, interval_s=interval_s, max_ticks=max_ticks, live=feed)

"""API routes of the shop floor (registered on the shared declared router of
``andon.api.routes``): the andon board, stops and operator reasons, the downtime Pareto,
and alerts (the feeds' ``states``/``alerts`` events: ``andon.api.live.FloorFeed``).

The board's machine states come from ``andon.floor.alerts.floor_snapshot``, read once per
0.2 s step per site for every board (``andon.api.live.floor_now``, ``Services.floor_cache``);
today's OEE shares ``kpi_summary``'s once-per-step computation. See
``docs/decisions/0606-*.md`` and ``0802-*.md``."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import HTTPException, Path, Query

from andon.api.deps import Access, Ctx, SiteModel
from andon.api.live import floor_now, floor_records, site_cache_key
from andon.api.params import _LABELS, _MAX_ROWS, End, Start, _model, _range, _today, api
from andon.api.schemas_ops import (
    AlertOut,
    BoardLineOut,
    BoardMachineOut,
    BoardOut,
    DowntimeOut,
    DowntimeRowOut,
    ReasonCategoryOut,
    ReasonIn,
    ReasonItemOut,
    ReasonTreeOut,
    StopOut,
    StopsOut,
)
from andon.floor.alerts import (
    LOOKBACK_US,
    FloorRecords,
    reason_tree,
)
from andon.floor.board import assemble_board, clip_states, line_bottlenecks, today_kpis
from andon.kpi.api import read_states_live
from andon.kpi.reasons import ReasonTree, apply_entries, downtime
from andon.model.plant import Plant
from andon.model.types import MachineState, Micros, StateBatch
from andon.platform.permissions import Permission
from andon.platform.service import NotFound

__all__ = ["api"]

P = Permission


def _records(ctx: Access) -> FloorRecords:
    return floor_records(ctx)


def _invalid(field: str, msg: str, where: str = "body") -> HTTPException:
    """A 422 shaped like FastAPI's own validation errors, naming the field."""
    return HTTPException(
        422, [{"loc": [where, field], "msg": f"{field}: {msg}", "type": "value_error"}]
    )


def _alert(a: dict[str, Any]) -> AlertOut:
    return AlertOut(**a)


def _machines_of_line(plant: Plant, line: str | None) -> list[str] | None:
    if line is None:
        return None
    for a, ln in plant.lines():
        if f"{plant.site.id}/{a.id}/{ln.id}" == line.strip("/"):
            return [plant.machine_path(a, ln, m) for m in ln.machines]
    raise _invalid("line", f"not a line of this site: {line[:200]!r}", "query")


# ---- the board -------------------------------------------------------------------------------


@api.route("GET", "/sites/{site_id}/board", name="board.get", permission=P.KPI_READ, scope="site")
async def board(site_id: str, ctx: Ctx) -> BoardOut:
    """The andon board in one call: every machine's current state (``offline`` when nothing
    was heard for ``monitoring.stale_after_s``), today's OEE and parts (the production day
    of the site's shift calendar, ``andon.kpi.ranges.today``, until ``kpi_end``: the
    ``kpi_cache_s`` step), each line's good output per planned production hour today (the
    figures of ``/kpi/summary``, from ``plant_summary``) and bottleneck over the last hour,
    and the open alerts less the shelved ones (``shelved_alerts`` counts those). Machines
    outside their shift calendar are ``not_scheduled``, not ``offline``."""
    svc = ctx.services
    model = await _model(ctx)
    plant = model.plant
    snap = await floor_now(ctx, model)
    now = svc.clock()
    step = svc.settings.kpi_cache_s * 1_000_000
    end = now - now % step if step > 0 else now
    start = _today(plant, end)

    # bound now: ``end`` is rebound below to the step the cache answered with, and the
    # computation runs later (a late-bound ``end`` computed the stale step over and over)
    async def summary(start: Micros = start, end: Micros = end) -> dict[str, Any]:
        return {"kpis": await today_kpis(svc.store, plant, start, end)}

    async def lines_now() -> dict[str, Any]:
        return {"bottleneck": line_bottlenecks(plant, snap, snap.now)}

    if step > 0:
        # the previous step's figures while this step's are computed: the board never waits
        s = await svc.kpi_cache.get(site_cache_key(ctx, "|board"), end, summary, stale_ok=True)
        bn = await svc.kpi_cache.get(
            site_cache_key(ctx, "|bottleneck"), end, lines_now, stale_ok=True
        )
    else:
        s, bn = await summary(), await lines_now()
    b = await assemble_board(
        _records(ctx), ctx.tenant, ctx.site_id, plant, snap, s["kpis"], bn["bottleneck"], now
    )
    return BoardOut(
        now=b.now,
        kpi_start=b.kpi_start,
        kpi_end=b.kpi_end,
        clock_rate=svc.clock_rate,
        machines=[BoardMachineOut(**dataclasses.asdict(m)) for m in b.machines],
        lines=[BoardLineOut(**dataclasses.asdict(ln)) for ln in b.lines],
        alerts=[_alert(x) for x in b.alerts],
        shelved_alerts=b.shelved_alerts,
    )


# ---- reasons and stops -----------------------------------------------------------------------


def _label(cat_id: str) -> str:
    return cat_id.replace("_", " ").capitalize()


@api.route(
    "GET",
    "/sites/{site_id}/reasons/tree",
    name="reasons.tree",
    permission=P.STATE_READ,
    scope="site",
)
async def get_reason_tree(site_id: str, ctx: Ctx) -> ReasonTreeOut:
    """The reasons an operator may enter: the default tree plus the plant's failure modes,
    each of those with the machines it may be entered on (the machines that have it)."""
    plant = (await _model(ctx)).plant
    tree = reason_tree(plant)
    labels = {
        fm.code: dict(fm.description_i18n)
        for _, _, m in plant.machines()
        for fm in m.sim.failure_modes
    }

    def item(r: str, d: str) -> ReasonItemOut:
        ms = tree.scope.get(r)
        return ReasonItemOut(
            id=r,
            label=d,
            label_i18n=labels.get(r, {}),
            machines=None if ms is None else sorted(ms),
        )

    return ReasonTreeOut(
        categories=[
            ReasonCategoryOut(
                id=c,
                label=_label(c),
                reasons=[item(r, d) for r, d in rs.items()],
            )
            for c, rs in tree.categories.items()
        ]
    )


def _entries_by_stop(
    rows: list[dict[str, Any]],
) -> dict[tuple[str, int], tuple[dict[str, Any], int]]:
    """Per stop: the latest entry (the reason) and the earliest entry time (the ack)."""
    out: dict[tuple[str, int], tuple[dict[str, Any], int]] = {}
    for r in rows:  # oldest first
        k = (r["machine"], int(r["stop_start"]))
        first = out[k][1] if k in out else int(r["entered_at"])
        out[k] = (r, first)
    return out


def _stop_out(
    b: StateBatch, i: int, tree: ReasonTree, entry: tuple[dict[str, Any], int] | None
) -> StopOut:
    code = b.reason[i] or None
    category = reason = None
    if entry is not None:
        category, reason = entry[0]["category"], entry[0]["reason"]
    elif code is not None:
        category, reason = tree.resolve(code)
    return StopOut(
        machine=b.names[int(b.index[i])],
        start=int(b.start[i]),
        end=int(b.end[i]),
        state=_LABELS[int(b.state[i])],
        code=code,
        category=category,
        reason=reason,
        entered_by=None if entry is None else entry[0]["actor"],
        entered_at=None if entry is None else int(entry[0]["entered_at"]),
        acked_at=None if entry is None else entry[1],
        note=None if entry is None else entry[0]["note"],
    )


StopKind = Literal["all", "down", "idle", "planned"]
_KINDS: dict[str, tuple[MachineState, ...]] = {
    "down": (MachineState.DOWN,),
    "idle": (MachineState.STARVED, MachineState.BLOCKED),
    "planned": (MachineState.PLANNED_STOP,),
}


def _own_machines(model: SiteModel, machine: list[str] | None) -> list[str]:
    if not machine:
        return list(model.machines)
    known = set(model.machines)
    bad = [m for m in machine if m not in known]
    if bad:
        raise _invalid("machine", f"not machines of this site: {', '.join(bad[:3])}", "query")
    return machine


@api.route(
    "GET", "/sites/{site_id}/stops", name="stops.list", permission=P.STATE_READ, scope="site"
)
async def list_stops(
    site_id: str,
    ctx: Ctx,
    start: Start,
    end: End,
    machine: Annotated[list[str] | None, Query(max_length=100)] = None,
    unexplained: bool = False,
    kind: Annotated[
        StopKind,
        Query(description="down; idle (starved or blocked); planned (planned stops); all"),
    ] = "all",
    micro: Annotated[
        bool,
        Query(
            description="false: leave out finished stops shorter than "
            "monitoring.unexplained_min_stop_s (micro-stops, which never need a reason)"
        ),
    ] = True,
) -> StopsOut:
    """Stops (every interval that is not ``running``, touching pieces joined) overlapping
    ``[start, end)``, unclipped so ``start`` identifies the stop, oldest first, with their
    machine code and the operator's reason. ``unexplained=true``: only ``down`` stops with
    neither, and at least ``monitoring.unexplained_min_stop_s`` long. ``kind=down&micro=false``
    is what needs a reason (the reasons page's default)."""
    _range(start, end)
    model = await _model(ctx)
    machines = _own_machines(model, machine)
    tree = reason_tree(model.plant)
    svc = ctx.services
    b = await read_states_live(svc.store, ctx.tenant, machines, start - LOOKBACK_US, end)
    rows = await _records(ctx).reason_rows(
        ctx.tenant, ctx.site_id, start - LOOKBACK_US, end, machines
    )
    entries = _entries_by_stop(rows)
    sel = (b.state != MachineState.RUNNING) & (b.end > start)
    if kind != "all":
        sel &= np.isin(b.state, [int(x) for x in _KINDS[kind]])
    min_us = int(svc.settings.monitoring.unexplained_min_stop_s * 1e6)
    if not micro:
        # a stop still under way (its end is the open state's "now") may yet need a reason
        sel &= (b.end - b.start >= min_us) | (b.end >= end)
    if unexplained:
        sel &= (b.state == MachineState.DOWN) & (b.end - b.start >= min_us)
    idx = np.flatnonzero(sel)
    idx = idx[np.lexsort((b.index[idx], b.start[idx]))]
    out: list[StopOut] = []
    for i in idx.tolist():
        m, s = b.names[int(b.index[i])], int(b.start[i])
        entry = entries.get((m, s))
        if unexplained and (b.reason[i] or entry is not None):
            continue
        out.append(_stop_out(b, i, tree, entry))
        if len(out) >= _MAX_ROWS:
            return StopsOut(stops=await _with_names(ctx, out), truncated=True)
    return StopsOut(stops=await _with_names(ctx, out))


async def _with_names(ctx: Access, stops: list[StopOut]) -> list[StopOut]:
    """Fill ``entered_by_name`` with the email of users who entered reasons (one query)."""
    ids = {s.entered_by[5:] for s in stops if s.entered_by and s.entered_by.startswith("user:")}
    emails = await ctx.services.platform.user_emails(ctx.tenant, ids)
    for s in stops:
        if s.entered_by and s.entered_by.startswith("user:"):
            s.entered_by_name = emails.get(s.entered_by[5:])
    return stops


@api.route(
    "POST",
    "/sites/{site_id}/stops/reason",
    name="stops.reason",
    permission=P.REASON_WRITE,
    scope="site",
)
async def enter_reason(site_id: str, body: ReasonIn, ctx: Ctx) -> StopOut:
    """Enter the reason of a stop (machine + the stop's ``start`` as ``/stops`` lists it).
    Entries are appended, never changed: a later entry replaces the reason, the first one
    stays the acknowledgement (MTTA). Audited with the reason before and after."""
    model = await _model(ctx)
    if body.machine not in model.machines:
        raise _invalid("machine", f"not a machine of this site: {body.machine[:300]!r}")
    tree = reason_tree(model.plant)
    if body.category not in tree.categories:
        raise _invalid(
            "category", f"unknown category {body.category!r} (one of {', '.join(tree.categories)})"
        )
    if body.reason not in tree.categories[body.category]:
        raise _invalid("reason", f"{body.reason!r} is not a reason of {body.category!r}")
    if not tree.fits(body.reason, body.machine):
        owners = ", ".join(sorted(tree.scope.get(body.reason, ())))
        raise _invalid(
            "reason",
            f"{body.reason!r} is a failure mode of {owners}, not of {body.machine!r}",
        )
    svc = ctx.services
    # one read around the stop: validates it and gives its full extent for the answer
    b = await read_states_live(
        svc.store,
        ctx.tenant,
        [body.machine],
        max(0, body.start - LOOKBACK_US),
        body.start + LOOKBACK_US,
    )
    at = np.flatnonzero(b.start == body.start)
    if len(at) == 0:
        raise _invalid("start", f"no stop of {body.machine} starts at {body.start}")
    i = int(at[0])
    if b.state[i] == MachineState.RUNNING:
        raise _invalid("start", f"the interval at {body.start} is running, not a stop")
    rec = _records(ctx)
    key = (body.machine, body.start)
    old = _entries_by_stop(
        await rec.reason_rows(ctx.tenant, ctx.site_id, body.start, body.start + 1, [body.machine])
    ).get(key)
    await rec.add_reason(
        ctx.tenant,
        ctx.site_id,
        machine=body.machine,
        stop_start=body.start,
        category=body.category,
        reason=body.reason,
        actor=ctx.principal.actor,
        note=body.note,
    )
    new = _entries_by_stop(
        await rec.reason_rows(ctx.tenant, ctx.site_id, body.start, body.start + 1, [body.machine])
    ).get(key)
    out = (await _with_names(ctx, [_stop_out(b, i, tree, new)]))[0]

    def brief(e: tuple[dict[str, Any], int] | None) -> dict[str, Any] | None:
        if e is None:
            return None
        return {k: e[0][k] for k in ("category", "reason", "actor", "entered_at", "note")}

    await ctx.audit(
        "stops.reason",
        f"stop:{body.machine}@{body.start}",
        detail={"before": brief(old), "after": brief(new)},
    )
    return out


@api.route(
    "GET", "/sites/{site_id}/kpi/downtime", name="kpi.downtime", permission=P.KPI_READ, scope="site"
)
async def downtime_pareto(
    site_id: str,
    ctx: Ctx,
    start: Start,
    end: End,
    line: Annotated[str | None, Query(max_length=200, description="a line path")] = None,
) -> DowntimeOut:
    """The downtime Pareto of ``down`` time in ``[start, end)``, largest first: machine codes
    mapped through the reason tree, unexplained stops filled from operator entries (the
    latest entry wins); what stays unexplained is ``unexplained_s``."""
    _range(start, end)
    model = await _model(ctx)
    machines = _machines_of_line(model.plant, line) or list(model.machines)
    svc = ctx.services
    states = await read_states_live(svc.store, ctx.tenant, machines, start - LOOKBACK_US, end)
    entries = await _records(ctx).reason_entries(ctx.tenant, ctx.site_id, start - LOOKBACK_US, end)
    filled, _acks = apply_entries(states, entries)
    d = downtime(clip_states(filled, start, end), reason_tree(model.plant))
    return DowntimeOut(
        rows=[
            DowntimeRowOut(
                category=r["category"],
                reason=r["reason"],
                seconds=r["duration_s"],
                count=r["stops"],
            )
            for r in d["pareto"]
        ],
        unexplained_s=d["unexplained_s"],
        downtime_s=d["downtime_s"],
    )


# ---- alerts ----------------------------------------------------------------------------------


@api.route(
    "GET", "/sites/{site_id}/alerts", name="alerts.list", permission=P.STATE_READ, scope="site"
)
async def list_alerts(
    site_id: str,
    ctx: Ctx,
    status: Literal["open", "all"] = "open",
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[AlertOut]:
    """The site's open alerts (or all, newest first). Alerts are opened and closed by the
    evaluator (``monitoring`` settings): ``down`` too long, ``offline``, ``unexplained_stop``."""
    rows = await _records(ctx).alerts(
        ctx.tenant, ctx.site_id, open_only=status == "open", limit=limit
    )
    return [_alert(a) for a in rows]


@api.route(
    "POST",
    "/sites/{site_id}/alerts/{alert_id}/ack",
    name="alerts.ack",
    permission=P.ALERT_ACK,
    scope="site",
)
async def ack_alert(
    site_id: str, alert_id: Annotated[str, Path(max_length=64)], ctx: Ctx
) -> AlertOut:
    """Acknowledge an alert (open or closed). The first acknowledgement stays; acknowledging
    again changes nothing but is audited too."""
    got = await _records(ctx).ack(ctx.tenant, ctx.site_id, alert_id, ctx.principal.actor)
    return await _alert_changed(ctx, alert_id, got, "alerts.ack", ("acked_by", "acked_at"))


async def _alert_changed(
    ctx: Access,
    alert_id: str,
    got: tuple[dict[str, Any], dict[str, Any]] | None,
    action: str,
    fields: tuple[str, ...],
    about: tuple[str, ...] = ("kind", "machine"),
) -> AlertOut:
    """The answer to a change of one alert (acknowledge, shelve, unshelve): 404 when the
    records found no such alert of the site; else audited as ``action`` with ``fields``
    before and after and the alert's ``about`` fields, and the alert as it is now."""
    if got is None:
        raise NotFound("alert")
    before, after = got
    detail: dict[str, Any] = {
        "before": {k: before[k] for k in fields},
        "after": {k: after[k] for k in fields},
    }
    detail.update((k, after[k]) for k in about)
    await ctx.audit(action, f"alert:{alert_id}", detail=detail)
    return _alert(after)

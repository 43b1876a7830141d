"""API routes: analytics (registered on the shared declared router of ``andon.api.routes``).

The dashboard's line, machine and energy pages and the twin's scenario jobs. Thin: every
figure comes from ``andon.kpi`` (OEE table and waterfall, line OEE, reliability, energy,
carbon, baseline) or ``andon.twin`` (bottleneck analysis, calibration, experiments); this
module validates ids and ranges, picks the machines, and shapes the answers."""

from __future__ import annotations

from collections import defaultdict
from typing import Annotated, Any

import numpy as np
from fastapi import HTTPException, Query

from andon.api.deps import Access, Ctx, SiteModel
from andon.api.params import End, Start, api
from andon.api.schemas_analytics import (
    BottlenecksOut,
    EnergyOut,
    JobOut,
    LineFlowOut,
    LineKpiOut,
    MachineKpiOut,
    ScenarioOut,
    TwinJobIn,
)
from andon.floor.alerts import FloorRecords
from andon.kpi import api as kpi
from andon.kpi.baseline import fit_baseline
from andon.kpi.buffers import BufferLevel, buffer_levels
from andon.kpi.carbon import GridFactor, co2e_kg, grid_factor
from andon.kpi.oee import LOSSES, OEETable
from andon.kpi.ranges import today
from andon.kpi.reasons import apply_entries
from andon.kpi.reliability import reliability
from andon.kpi.summary import line_rate, line_rates, parts_of
from andon.kpi.timeline import Buckets
from andon.model.plant import Machine, Plant
from andon.model.types import Micros, StateBatch
from andon.platform.permissions import Permission
from andon.platform.service import Invalid, NotFound
from andon.twin.bottleneck import analyse
from andon.twin.jobs import LineRef, TooManyJobs, TwinJobs, find_line, scenario_baseline

__all__ = ["api"]

P = Permission
MAX_RANGE_S = 93 * 86_400
"""Longest range one analytics call covers (a quarter)."""
MAX_BUCKETS = 1000
BASELINE_DAYS = 28
LineQ = Annotated[str, Query(min_length=1, max_length=300, description="line path")]
MachineQ = Annotated[str, Query(min_length=1, max_length=300, description="machine path")]
BucketS = Annotated[int, Query(ge=60, le=31 * 86_400, description="bucket width, seconds")]
TrendBucketS = Annotated[
    int | None,
    Query(ge=60, le=31 * 86_400, description="bucket width of the trend, seconds (none: no trend)"),
]


async def _plant(ctx: Access) -> Plant:
    if ctx.site is None:
        raise RuntimeError(f"{ctx.endpoint.name} is not site-scoped")
    model: SiteModel = await ctx.services.model(ctx.tenant, ctx.site)
    return model.plant.model_copy(update={"tenant": ctx.tenant})


def _range(start: int, end: int) -> None:
    if end <= start:
        raise Invalid("end must be after start")
    if end - start > MAX_RANGE_S * 1_000_000:
        raise Invalid(f"the range is longer than {MAX_RANGE_S // 86_400} days")


def _buckets(start: int, end: int, bucket_s: int) -> Buckets:
    step = bucket_s * 1_000_000
    n = -(-(end - start) // step)
    if n > MAX_BUCKETS:
        raise Invalid(f"{n} buckets of {bucket_s} s; at most {MAX_BUCKETS}: widen bucket_s")
    edges = np.minimum(start + np.arange(n + 1, dtype=np.int64) * step, end)
    return Buckets(edges, tuple(str(int(e)) for e in edges[:-1]))


def _machine(plant: Plant, machine: str) -> str:
    paths = [plant.machine_path(a, ln, m) for a, ln, m in plant.machines()]
    if machine not in paths:
        raise Invalid(f"machine: {machine!r} is not a machine of this site")
    return machine


def _machine_model(plant: Plant, path: str) -> Machine:
    return next(m for a, ln, m in plant.machines() if plant.machine_path(a, ln, m) == path)


def _r(x: Any, nd: int = 6) -> float | None:
    if x is None:
        return None
    v = float(x)
    return round(v, nd) if np.isfinite(v) else None


async def _table(
    ctx: Access,
    plant: Plant,
    machines: tuple[str, ...],
    start: Micros,
    end: Micros,
    buckets: Buckets,
    by_product: bool = False,
) -> OEETable:
    """``andon.kpi.api.oee`` (the one OEE function: shift calendar, open states) over
    ``buckets``; time after the API's clock has not happened yet."""
    return await kpi.oee(
        ctx.services.store,
        plant,
        start,
        end,
        by_product=by_product,
        selection=kpi.Selection(machines),
        now=ctx.services.clock(),
        bucket_set=buckets,
    )


# ---- line pages ---------------------------------------------------------------------------


BUFFER_LOOKBACK_US = 24 * 3_600_000_000
"""A buffer's level counts from its last empty or full moment within this window."""


async def _buffer_levels(ctx: Access, plant: Plant, ref: LineRef) -> dict[str, BufferLevel]:
    if not ref.line.buffers:
        return {}
    machines = [ref.machine_path(m) for m in ref.line.machines]
    now = ctx.services.clock()
    start = now - BUFFER_LOOKBACK_US
    store = ctx.services.store
    states = await kpi.read_states_live(store, ctx.tenant, machines, start, now)
    parts = await store.read_parts(ctx.tenant, machines, start, now)
    at = min(now, int(states.end.max())) if len(states) else now
    return {b.buffer: b for b in buffer_levels(plant, ref.path, states, parts, at)}


def _level(lv: BufferLevel | None) -> dict[str, Any]:
    if lv is None:
        return {"level": None, "level_source": None, "level_at": None}
    return {"level": lv.level, "level_source": lv.source, "level_at": lv.at}


@api.route(
    "GET", "/sites/{site_id}/lines/flow", name="lines.flow", permission=P.SITE_READ, scope="site"
)
async def line_flow(site_id: str, ctx: Ctx, line: LineQ) -> LineFlowOut:
    """The line's machines and buffers in flow order, with each buffer's current level
    derived from the part counts and states of the machines on either side
    (``andon.kpi.buffers``, decision 0615)."""
    plant = await _plant(ctx)
    ref = find_line(plant, line)
    levels = await _buffer_levels(ctx, plant, ref)
    return LineFlowOut.model_validate(
        {
            "line": ref.path,
            "name": ref.line.name,
            "machines": [
                {"machine": ref.machine_path(m), "name": m.name, "kind": m.type.value}
                for m in ref.line.machines
            ],
            "buffers": [
                {
                    "buffer": ref.buffer_path(b.id),
                    "capacity": b.capacity,
                    **_level(levels.get(ref.buffer_path(b.id))),
                    "from": [f"{ref.path}/{x}" for x in b.from_],
                    "to": [f"{ref.path}/{x}" for x in b.to],
                }
                for b in ref.line.buffers
            ],
        }
    )


@api.route(
    "GET", "/sites/{site_id}/lines/kpi", name="lines.kpi", permission=P.KPI_READ, scope="site"
)
async def line_kpi(
    site_id: str,
    ctx: Ctx,
    line: LineQ,
    start: Start,
    end: End,
    bucket_s: TrendBucketS = None,
) -> LineKpiOut:
    """Line OEE (machines together, and bottleneck-based), the six-big-losses waterfall of
    the line's machines summed, per-machine OEE, and good output (the last stations') per
    planned production hour (``andon.kpi.summary.line_rates``, as the board); with
    ``bucket_s``, the same OEE and output per bucket (``trend``, the line page's goal chart)."""
    _range(start, end)
    trend_buckets = None if bucket_s is None else _buckets(start, end, bucket_s)
    plant = await _plant(ctx)
    ref = find_line(plant, line)
    machines = tuple(ref.machine_path(m) for m in ref.line.machines)
    table = await _table(ctx, plant, machines, start, end, Buckets.single(start, end), True)
    per_machine = table.group(lambda m, b, p: (m, b, ""))
    whole = per_machine.group(lambda m, b, p: ("line", b, ""))
    lines = [x for x in kpi.line_oee(table, plant) if x.line == ref.path]
    rows = {r["machine"]: r for r in per_machine.rows()}
    has = len(whole) > 0
    steps = whole.waterfall(0) if has else [(k, 0.0) for k in ("planned_busy_s", *LOSSES)]
    if not has:
        steps.append(("fully_productive_s", 0.0))
    counts = {m: parts_of(rows.get(m, {})) for m in machines}
    good = {m: counts[m][0] for m in machines}
    rate = next(
        r
        for r in line_rates(plant, good, start, end, ctx.services.clock())
        if r["line"] == ref.path
    )
    return LineKpiOut.model_validate(
        {
            "line": ref.path,
            "start": start,
            "end": end,
            "oee": {
                "availability": _r(whole.availability[0]) if has else None,
                "performance": _r(whole.performance[0]) if has else None,
                "quality": _r(whole.quality[0]) if has else None,
                "oee": _r(whole.oee[0]) if has else None,
            },
            "oee_bottleneck": _r(lines[0].oee_bottleneck) if lines else None,
            "bottleneck": list(lines[0].bottleneck) if lines else [],
            "waterfall": [{"loss": k.removesuffix("_s"), "seconds": round(v, 3)} for k, v in steps],
            "machines": [
                {
                    "machine": m,
                    "oee": rows.get(m, {}).get("oee"),
                    "availability": rows.get(m, {}).get("availability"),
                    "performance": rows.get(m, {}).get("performance"),
                    "quality": rows.get(m, {}).get("quality"),
                    "good": counts[m][0],
                    "scrap": counts[m][1],
                }
                for m in machines
            ],
            "good_out": rate["good_out"],
            "planned_production_s": rate["planned_production_s"],
            "throughput_per_h": rate["throughput_per_h"],
            "trend": []
            if trend_buckets is None
            else await _line_trend(ctx, plant, ref.path, machines, trend_buckets),
        }
    )


async def _line_trend(
    ctx: Access, plant: Plant, line: str, machines: tuple[str, ...], b: Buckets
) -> list[dict[str, Any]]:
    """Per bucket: the line's OEE (its machines' ``kpi.api.oee`` rows summed, as the whole
    range's) and its good output and rate (``line_rates`` over the bucket, as the board)."""
    start, end = int(b.edges[0]), int(b.edges[-1])
    table = await _table(ctx, plant, machines, start, end, b)
    per_machine = {
        (r["machine"], r["bucket"]): r for r in table.group(lambda m, k, p: (m, k, "")).rows()
    }
    whole = {r["bucket"]: r for r in table.group(lambda m, k, p: ("line", k, "")).rows()}
    now = ctx.services.clock()
    out = []
    for i, label in enumerate(b.labels):
        a, z = int(b.edges[i]), int(b.edges[i + 1])
        good = {m: parts_of(per_machine.get((m, label), {}))[0] for m in machines}
        rate = next(r for r in line_rates(plant, good, a, z, now) if r["line"] == line)
        r = whole.get(label, {})
        out.append(
            {
                "start": a,
                "end": z,
                **{k: _r(r.get(k)) for k in ("oee", "availability", "performance", "quality")},
                "good_out": rate["good_out"],
                "planned_production_s": rate["planned_production_s"],
                "per_hour": rate["throughput_per_h"],
            }
        )
    return out


@api.route(
    "GET",
    "/sites/{site_id}/lines/bottlenecks",
    name="lines.bottlenecks",
    permission=P.KPI_READ,
    scope="site",
)
async def line_bottlenecks(
    site_id: str, ctx: Ctx, line: LineQ, start: Start, end: End, bucket_s: BucketS
) -> BottlenecksOut:
    """The momentary bottleneck per bucket by the active-period method
    (``andon.twin.bottleneck.analyse``, the code the twin uses on simulated timelines);
    ``shares``: the part of the bucket each machine was the sole bottleneck, ``shifting``: the
    part in which it shifted between two (so a bucket's parts add up to at most 1);
    ``bottleneck``: the machine that was (sole or shifting) bottleneck longest."""
    _range(start, end)
    b = _buckets(start, end, bucket_s)
    plant = await _plant(ctx)
    ref = find_line(plant, line)
    machines = [ref.machine_path(m) for m in ref.line.machines]
    states = await ctx.services.store.read_states(ctx.tenant, machines, start, end)
    out = []
    for i in range(len(b)):
        a, z = int(b.edges[i]), int(b.edges[i + 1])
        rows = np.flatnonzero((states.end > a) & (states.start < z))
        part = StateBatch(
            states.names,
            states.index[rows],
            states.start[rows],
            states.end[rows],
            states.state[rows],
            tuple(states.reason[int(k)] for k in rows),
        )
        rep = analyse(part, a, z, machines)
        best = rep.momentary_bottleneck
        busy = rep.sole[best] + rep.shifting[best]
        out.append(
            {
                "start": a,
                "end": z,
                "bottleneck": best if busy > 0 else None,
                "shares": {m: round(rep.sole[m], 6) for m in machines},
                "shifting": round(rep.shifting_total, 6),
            }
        )
    return BottlenecksOut.model_validate({"line": ref.path, "buckets": out})


# ---- machine page ---------------------------------------------------------------------------


@api.route(
    "GET",
    "/sites/{site_id}/machines/kpi",
    name="machines.kpi",
    permission=P.KPI_READ,
    scope="site",
)
async def machine_kpi(
    site_id: str, ctx: Ctx, machine: MachineQ, start: Start, end: End, bucket_s: BucketS
) -> MachineKpiOut:
    """OEE per bucket, the loss waterfall over the whole range, MTBF / MTTR / MTTA and
    failures over the range (MTTA: from a stop's start to its first reason entry), energy and
    energy per good part, and the machine's signals with their names and units."""
    _range(start, end)
    b = _buckets(start, end, bucket_s)
    plant = await _plant(ctx)
    path = _machine(plant, machine)
    sel = kpi.Selection((path,))
    table = await _table(ctx, plant, (path,), start, end, b)
    rows = {r["bucket"]: r for r in table.rows()}
    trend = []
    for label, edge in zip(b.labels, b.edges[:-1].tolist(), strict=True):
        r = rows.get(label, {})
        trend.append(
            {
                "start": int(edge),
                **{k: r.get(k) for k in ("oee", "availability", "performance", "quality")},
            }
        )
    whole = table.group(lambda m, b_, p: (m, "range", ""))
    steps = (
        whole.waterfall(0)
        if len(whole)
        else [(k, 0.0) for k in ("planned_busy_s", *LOSSES, "fully_productive_s")]
    )
    model = _machine_model(plant, path)
    svc = ctx.services
    store = svc.store
    states = await store.read_states(ctx.tenant, [path], start, end)
    floor = FloorRecords(svc.platform.db, svc.clock)
    entries = await floor.reason_entries(ctx.tenant, ctx.site_id, start, end)
    states, acked = apply_entries(states, [e for e in entries if e.machine == path])
    rel = reliability(states, acknowledged=acked, per_reason=False)
    mine = next((r.as_dict() for r in rel if r.machine == path), None)
    energy = await kpi.energy_report(store, plant, start, end, selection=sel, factor=None)
    e = energy.machine(path)
    good = sum(parts_of(r)[0] for r in rows.values())
    return MachineKpiOut.model_validate(
        {
            "machine": path,
            "start": start,
            "end": end,
            "trend": trend,
            "waterfall": [{"loss": k.removesuffix("_s"), "seconds": round(v, 3)} for k, v in steps],
            "signals": [
                {
                    "signal": f"{path}/{sg.id}",
                    "name": sg.name,
                    "name_i18n": dict(sg.name_i18n),
                    "unit": sg.unit,
                }
                for sg in model.signals
            ],
            "mtbf_s": mine["mtbf_s"] if mine else None,
            "mttr_s": mine["mttr_s"] if mine else None,
            "mtta_s": mine["mtta_s"] if mine else None,
            "failures": mine["failures"] if mine else 0,
            "kwh": e.kwh if e else None,
            "kwh_per_part": e.kwh_per_good_part if e else None,
            "good": good,
        }
    )


# ---- energy page ----------------------------------------------------------------------------


def _factor(plant: Plant) -> GridFactor | None:
    try:
        return grid_factor(plant.site.timezone)
    except KeyError:
        return None


async def _baseline(ctx: Access, plant: Plant, start: Micros, end: Micros) -> dict[str, Any] | None:
    """Fit energy on production over the days of the 28 days before ``start`` that have
    energy, predict the days of the range; null when it cannot be fitted."""
    store = ctx.services.store
    base0 = start - BASELINE_DAYS * 86_400_000_000
    base = await kpi.energy_periods(store, plant, base0, start, period="day")
    base = [r for r in base if r.kwh > 0]
    if len(base) < 3 or len({r.production for r in base}) < 2:
        return None
    try:
        model = fit_baseline([r.kwh for r in base], [r.production for r in base])
    except ValueError:
        return None
    rep = await kpi.energy_periods(store, plant, start, end, period="day")
    expected = float(np.sum(model.predict([r.production for r in rep])))
    return {
        "expected_kwh": round(expected, 3),
        "actual_kwh": round(sum(r.kwh for r in rep), 3),
        "r2": round(model.r2, 6),
        "periods": model.n,
    }


@api.route("GET", "/sites/{site_id}/energy", name="energy.get", permission=P.KPI_READ, scope="site")
async def energy(site_id: str, ctx: Ctx, start: Start, end: End) -> EnergyOut:
    """Energy by machine and state, the site's total with its emissions and tariff cost,
    peak 15-minute demand (site meters; the machines' when the site has none), kWh per
    good part, energy and tCO2e by month (site time), and the energy baseline against the
    actual.

    Two totals, both labelled: ``machines_kwh`` (the machines' own meters) and ``site_kwh``
    (the site meters, base load included). ``kwh`` (``basis``: ``meters`` or ``machines``),
    its ``tco2e`` and ``cost``, ``kwh_per_part`` (per good part leaving the lines' last
    stations) and the months all count the same energy, so the months add up to it."""
    _range(start, end)
    plant = await _plant(ctx)
    store = ctx.services.store
    factor = _factor(plant)
    rep = await kpi.energy_report(store, plant, start, end, factor=factor)
    by_machine = [
        {
            "machine": r.machine,
            "kwh": r.kwh,
            "by_state": r.kwh_by_state,
            "parts": r.good_parts,
            "kwh_per_part": r.kwh_per_good_part,
        }
        for r in rep.machines
    ]
    peaks: list[tuple[float, int | None]] = [(r.peak_kw_15min, r.peak_at) for r in rep.meters]
    if not peaks:
        peaks = [(r.peak_kw_15min, None) for r in rep.machines]
    peak_kw, peak_at = max(peaks, key=lambda x: x[0], default=(0.0, None))
    days = await kpi.energy_periods(store, plant, start, end, period="day")
    months: dict[str, float] = defaultdict(float)
    for d in days:
        months[d.bucket[:7]] += d.kwh
    tot = rep.total

    def tco2e(kwh: float) -> float | None:
        return None if factor is None else round(co2e_kg(kwh, factor) / 1000, 9)

    return EnergyOut.model_validate(
        {
            "start": start,
            "end": end,
            "by_machine": by_machine,
            "total": {
                "basis": tot.basis,
                "kwh": round(tot.kwh, 6),
                "machines_kwh": round(tot.machines_kwh, 6),
                "site_kwh": tot.site_kwh,
                "tco2e": tco2e(tot.kwh),
                "good_out": tot.good_out,
                "kwh_per_part": tot.kwh_per_part,
                "cost": tot.cost,
                "currency": tot.currency,
                "cost_by_period": [
                    {
                        "period": k,
                        "kwh": round(v["kwh"], 6),
                        "price": v["price"],
                        "cost": round(v["cost"], 2),
                    }
                    for k, v in (tot.cost_by_period or {}).items()
                ],
            },
            "peak_kw": round(peak_kw, 3),
            "peak_at": peak_at,
            "months": [
                {"month": m, "kwh": round(k, 3), "tco2e": tco2e(k)}
                for m, k in sorted(months.items())
            ],
            "baseline": await _baseline(ctx, plant, start, end),
            "grid": None
            if factor is None
            else {
                "country": factor.country,
                "factor_kg_per_kwh": factor.kg_per_kwh,
                "year": factor.year,
                "source": factor.source,
            },
        }
    )


# ---- twin -----------------------------------------------------------------------------------


def _jobs(ctx: Access) -> TwinJobs:
    jobs = ctx.services.twin_jobs
    if jobs is None:
        raise RuntimeError("the twin job runner is not started")
    return jobs


def _job_out(row: dict[str, Any]) -> JobOut:
    return JobOut.model_validate(
        {k: row.get(k) for k in JobOut.model_fields} | {"progress": float(row["progress"])}
    )


@api.route(
    "GET",
    "/sites/{site_id}/twin/scenario",
    name="twin.scenario",
    permission=P.KPI_READ,
    scope="site",
)
async def twin_scenario(site_id: str, ctx: Ctx, line: LineQ) -> ScenarioOut:
    """The line's editable baseline from the plant model's configuration: what
    ``POST .../twin/jobs`` ``changes`` refer to; ``measured``: the line's rate today as the
    board gives it (production day until the ``kpi_cache_s`` step)."""
    plant = await _plant(ctx)
    ref = find_line(plant, line)
    svc = ctx.services
    now = svc.clock()
    step = svc.settings.kpi_cache_s * 1_000_000
    end = now - now % step if step > 0 else now
    start = today(plant, end).start
    rate: dict[str, Any] = {"good_out": 0, "planned_production_s": 0.0, "throughput_per_h": None}
    if end > start:
        rate = await line_rate(svc.store, plant, ref.path, start, end)
    measured = {"start": start, "end": end, **{k: v for k, v in rate.items() if k != "line"}}
    return ScenarioOut.model_validate({**scenario_baseline(plant, ref), "measured": measured})


@api.route(
    "POST",
    "/sites/{site_id}/twin/jobs",
    name="twin.jobs.create",
    permission=P.TWIN_RUN,
    scope="site",
    status_code=202,
)
async def create_job(site_id: str, body: TwinJobIn, ctx: Ctx) -> JobOut:
    """Queue a scenario: the line's twin (calibrated from its history when there is enough)
    with ``changes``, against today's configuration, common random numbers. 429 when the
    tenant already has its share of queued or running jobs."""
    cfg = ctx.services.settings.twin
    if body.hours > cfg.max_hours:
        raise Invalid(f"hours: at most {cfg.max_hours:g}")
    if body.replications > cfg.max_replications:
        raise Invalid(f"replications: at most {cfg.max_replications}")
    plant = await _plant(ctx)
    ref: LineRef = find_line(plant, body.line, "line")
    request = body.model_dump(mode="json")
    request["line"] = ref.path
    try:
        row = await _jobs(ctx).submit(
            ctx.tenant, ctx.site_id, plant, ref, request, ctx.principal.actor
        )
    except TooManyJobs as exc:
        raise HTTPException(429, str(exc), headers={"Retry-After": "10"}) from None
    await ctx.audit(
        "twin.jobs.create",
        f"job:{row['id']}",
        detail={"line": ref.path, "hours": body.hours, "replications": body.replications},
    )
    return _job_out(row)


@api.route(
    "GET", "/sites/{site_id}/twin/jobs", name="twin.jobs.list", permission=P.KPI_READ, scope="site"
)
async def list_jobs(
    site_id: str, ctx: Ctx, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> list[JobOut]:
    """The site's twin jobs, newest first."""
    rows = await _jobs(ctx).store.list(ctx.tenant, ctx.site_id, limit)
    return [_job_out(r) for r in rows]


@api.route(
    "GET",
    "/sites/{site_id}/twin/jobs/{job_id}",
    name="twin.jobs.get",
    permission=P.KPI_READ,
    scope="site",
)
async def get_job(site_id: str, job_id: str, ctx: Ctx) -> JobOut:
    """One job: status, progress (0..1, persisted after every replication) and result."""
    row = await _jobs(ctx).store.get(ctx.tenant, ctx.site_id, job_id)
    if row is None:
        raise NotFound(f"job {job_id}")
    return _job_out(row)

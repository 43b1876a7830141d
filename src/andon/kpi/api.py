"""The KPI engine over a telemetry store: explicit time ranges in, tables out.

Each function reads what it needs through the ``TelemetryStore`` protocol (states, parts,
samples; always for the plant's tenant and ``[start, end)``) and hands it to the pure,
vectorised functions of the other modules, which tests drive directly with hand-made
timelines.

Line OEE (``line_oee``) is given two ways, see ``docs/decisions/0101-line-oee.md``:

* **average**: the mean of the machines' OEE weighted by their planned busy time;
* **bottleneck**: the line's good output valued at the bottleneck's ideal cycle time, over
  the bottleneck's planned busy time. Machines with the same input and output buffers form a
  stage that works in parallel (stage ideal cycle = 1 / Σ 1/ideal); the bottleneck is the
  stage with the largest ideal load (Σ stage ideal cycle × parts it made). The line's output
  is the good parts of the machines that feed no buffer.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from andon.kpi.baseline import fit_baseline
from andon.kpi.carbon import GridFactor, co2e_kg, grid_factor
from andon.kpi.cost import LossPrices, LossRow, loss_costs
from andon.kpi.energy import (
    Tariff,
    cumulative_power,
    cumulative_register,
    energy_between,
    energy_by_state,
    peak_demand,
    tariff_cost,
)
from andon.kpi.oee import OEETable, oee_table
from andon.kpi.periods import Period, buckets
from andon.kpi.ranges import line_outputs
from andon.kpi.reasons import ReasonLog, ReasonTree, apply_entries, downtime
from andon.kpi.reliability import ReliabilityRow, reliability
from andon.kpi.timeline import Buckets, Plan, TimeModel, merge_touching
from andon.model.plant import Plant, Signal
from andon.model.types import F64, I64, Micros, PartBatch, StateBatch
from andon.store.base import TelemetryStore

__all__ = [
    "BaselineFit",
    "DowntimeReport",
    "DowntimeRow",
    "EnergyBaseline",
    "EnergyPeriod",
    "EnergyReport",
    "EnergyTotal",
    "LineOEE",
    "LossRow",
    "MachineEnergy",
    "MeterEnergy",
    "ReliabilityRow",
    "Selection",
    "downtime_report",
    "energy_baseline",
    "energy_periods",
    "energy_report",
    "ideal_cycles",
    "line_oee",
    "loss_report",
    "oee",
    "read_states_live",
    "read_timeline",
    "reliability_report",
    "select",
    "with_open_states",
]


def ideal_cycles(plant: Plant) -> dict[str, dict[str, float]]:
    """Ideal cycle time (s) by machine path and product."""
    return {plant.machine_path(a, ln, m): dict(m.ideal_cycle_s) for a, ln, m in plant.machines()}


@dataclass(frozen=True, slots=True)
class Selection:
    """The machines a report covers (paths, in plant order)."""

    machines: tuple[str, ...]


def select(plant: Plant, line: str | None = None, machine: str | None = None) -> Selection:
    """Machines of one line or one machine (by id or path), or of the whole plant."""
    out = []
    for a, ln, m in plant.machines():
        path = plant.machine_path(a, ln, m)
        line_path = f"{plant.site.id}/{a.id}/{ln.id}"
        if line is not None and line not in (ln.id, line_path):
            continue
        if machine is not None and machine not in (m.id, path):
            continue
        out.append(path)
    if not out:
        what = f"line {line!r}" if line is not None else f"machine {machine!r}"
        raise KeyError(f"no {what} in the plant")
    return Selection(tuple(out))


def with_open_states(
    closed: StateBatch, open_: StateBatch, start: Micros, end: Micros
) -> StateBatch:
    """``closed`` (intervals read for ``[start, end)``) plus each machine's open state where
    it continues the history (it begins at or after the machine's last closed end), clipped to
    the range, with touching pieces of one state joined.

    >>> closed = StateBatch.build(["m"], [0], [0], [10], [1], ["x"])
    >>> live = StateBatch.build(["m", "n"], [0, 1], [10, 0], [15, 5], [3, 1])
    >>> b = with_open_states(closed, live, 0, 100)
    >>> rows = zip(b.index, b.start, b.end, b.state)
    >>> [(b.names[i], int(s), int(e), int(st)) for i, s, e, st in rows]
    [('m', 0, 10, 1), ('m', 10, 15, 3), ('n', 0, 5, 1)]
    >>> stale = StateBatch.build(["m"], [0], [5], [8], [3])  # the interval has since closed
    >>> len(with_open_states(closed, stale, 0, 100))
    1
    """
    if not len(open_):
        return merge_touching(closed)
    last_end: dict[str, int] = {}
    for i, e in zip(closed.index.tolist(), closed.end.tolist(), strict=True):
        n = closed.names[i]
        last_end[n] = max(last_end.get(n, e), e)
    names = list(closed.names)
    pos = {n: i for i, n in enumerate(names)}
    idx, st, en, ss, rr = [], [], [], [], []
    for j in range(len(open_)):
        name = open_.names[int(open_.index[j])]
        a, b = int(open_.start[j]), int(open_.end[j])
        if a < last_end.get(name, a) or b <= start or a >= end:
            continue
        if name not in pos:
            pos[name] = len(names)
            names.append(name)
        idx.append(pos[name])
        st.append(max(a, start))
        en.append(min(b, end))
        ss.append(int(open_.state[j]))
        rr.append(open_.reason[j])
    if not idx:
        return merge_touching(closed)
    both = StateBatch(
        tuple(names),
        np.concatenate([closed.index, np.asarray(idx, dtype=np.int32)]),
        np.concatenate([closed.start, np.asarray(st, dtype=np.int64)]),
        np.concatenate([closed.end, np.asarray(en, dtype=np.int64)]),
        np.concatenate([closed.state, np.asarray(ss, dtype=np.uint8)]),
        (*closed.reason, *rr),
    )
    return merge_touching(both)


async def read_states_live(
    store: TelemetryStore, tenant: str, machines: Sequence[str], start: Micros, end: Micros
) -> StateBatch:
    """The state timeline of ``machines`` over ``[start, end)`` up to this moment: closed
    intervals and the states still going on (``with_open_states``), touching pieces joined."""
    closed = await store.read_states(tenant, machines, start, end)
    return with_open_states(closed, await store.open_states(tenant, machines), start, end)


async def read_timeline(
    store: TelemetryStore,
    plant: Plant,
    start: Micros,
    end: Micros,
    machines: Sequence[str] | None = None,
    reason_log: ReasonLog | None = None,
) -> tuple[StateBatch, PartBatch, dict[tuple[str, Micros], Micros]]:
    """States (with operator reasons filled in), parts and acknowledgement times."""
    if end <= start:
        raise ValueError("the range is empty: end must be after start")
    states = await store.read_states(plant.tenant, machines, start, end)
    parts = await store.read_parts(plant.tenant, machines, start, end)
    acked: dict[tuple[str, Micros], Micros] = {}
    if reason_log is not None:
        states, acked = apply_entries(states, reason_log.entries(plant.tenant, start, end))
    return states, parts, acked


async def oee(
    store: TelemetryStore,
    plant: Plant,
    start: Micros,
    end: Micros,
    *,
    period: Period = "all",
    by_product: bool = False,
    model: TimeModel | None = None,
    selection: Selection | None = None,
    now: Micros | None = None,
    bucket_set: Buckets | None = None,
) -> OEETable:
    """OEE and loss waterfall per machine and period (and product): the one function that
    every page, the API and the CLI use for OEE.

    Planned busy time follows the site's shift calendar (``Plan``, decision 0105): breaks
    and maintenance windows are planned downtime and time outside the shifts is not
    scheduled, whatever the machines did; work done then is in the ``outside_plan_*``
    columns; planned time for which a machine reported nothing is ``no_data``. Each
    machine's open (still going) state counts up to the moment it was last reported
    (``read_states_live``). ``now``: nothing at or after it exists yet, so time from then on
    is not counted (give it for a live range that ends in the future). ``bucket_set``:
    explicit buckets (e.g. fixed 15-min ones) instead of ``period``; they must cover
    ``[start, end)``.

    The timeline is read with a margin of ``max(1 h, micro-stop threshold, cycle window)``
    either side, so that a stop cut by the range is still judged on its whole length
    (micro-stop or breakdown), start-up rejects see the setups and parts just before the
    range and a part's cycle window is complete; only time and parts inside ``[start, end)``
    are counted.
    """
    model = model or TimeModel()
    sel = selection or select(plant)
    if end <= start:
        raise ValueError("the range is empty: end must be after start")
    margin = max(3_600_000_000, round(model.micro_stop_s * 1e6), round(model.cycle_window_s * 1e6))
    # the range as far as it has happened: parts up to its end (one finished at the end
    # belongs to it), states a margin beyond
    upto = end if now is None else max(min(end, now), start - margin + 1)
    horizon = end + margin if now is None else max(min(end + margin, now), upto)
    lo = start - margin
    states = await read_states_live(store, plant.tenant, sel.machines, lo, horizon)
    parts = await store.read_parts(plant.tenant, sel.machines, lo, upto + 1)
    ids = {plant.machine_path(a, ln, m): m.id for a, ln, m in plant.machines()}
    site = plant.site
    plan = Plan.from_calendar(
        site.calendar, site.timezone, {m: ids[m] for m in sel.machines}, lo, horizon
    )
    b = bucket_set or buckets(period, start, end, site.timezone, site.calendar)
    if b.edges[0] != start or b.edges[-1] != end:
        raise ValueError("bucket_set must cover [start, end) exactly")
    return oee_table(
        states,
        parts,
        ideal_cycles(plant),
        b,
        model,
        by_product=by_product,
        machines=sel.machines,
        plan=plan,
    )


@dataclass(frozen=True, slots=True)
class LineOEE:
    """A line's OEE in one bucket: ``oee_average`` (machines' OEE weighted by planned busy
    time), ``oee_bottleneck`` (output valued at the bottleneck stage's ideal cycle), the
    bottleneck stage's machines, the line's good output and planned busy time."""

    line: str
    bucket: str
    oee_average: float
    oee_bottleneck: float | None
    bottleneck: tuple[str, ...]
    good_out: int
    planned_busy_s: float

    def as_dict(self) -> dict[str, Any]:
        """The JSON row (``andon kpi oee --lines``, the report's ``lines`` sheet)."""
        return {
            "line": self.line,
            "bucket": self.bucket,
            "oee_average": self.oee_average,
            "oee_bottleneck": self.oee_bottleneck,
            "bottleneck": list(self.bottleneck),
            "good_out": self.good_out,
            "planned_busy_s": self.planned_busy_s,
        }


def line_oee(table: OEETable, plant: Plant) -> list[LineOEE]:
    """Line OEE per line and bucket, average and bottleneck-based, from a table split by
    product (``oee(..., by_product=True)``)."""
    c = table.columns
    val: dict[tuple[str, str, str], dict[str, float]] = {}
    for i, key in enumerate(zip(table.machine, table.bucket, table.product, strict=True)):
        val[key] = {k: float(c[k][i]) for k in ("produced", "good")}
    machines = table.group(lambda m, b, p: (m, b, ""))
    oee_m = machines.oee
    tot: dict[tuple[str, str], tuple[float, float]] = {}
    for i, mb in enumerate(zip(machines.machine, machines.bucket, strict=True)):
        pbt = float(machines.columns["planned_busy_s"][i])
        tot[mb] = (pbt, float(oee_m[i]) * pbt if np.isfinite(oee_m[i]) else 0.0)
    labels = list(dict.fromkeys(table.bucket))
    out: list[LineOEE] = []
    for a, ln in plant.lines():
        paths = {m.id: plant.machine_path(a, ln, m) for m in ln.machines}
        ins = {mid: frozenset(b.id for b in ln.buffers if mid in b.to) for mid in paths}
        outs = {mid: frozenset(b.id for b in ln.buffers if mid in b.from_) for mid in paths}
        stages: dict[tuple[frozenset[str], frozenset[str]], list[str]] = {}
        for m in ln.machines:
            stages.setdefault((ins[m.id], outs[m.id]), []).append(m.id)
        last = [mid for mid in paths if not outs[mid]]
        spec = {m.id: m for m in ln.machines}
        products = [p.id for p in ln.products]
        for label in labels:
            pbt = sum(tot.get((paths[mid], label), (0.0, 0.0))[0] for mid in paths)
            weighted = sum(tot.get((paths[mid], label), (0.0, 0.0))[1] for mid in paths)
            if pbt <= 0:
                continue

            def count(
                col: str, mid: str, prod: str, label: str = label, paths: dict[str, str] = paths
            ) -> float:
                return val.get((paths[mid], label, prod), {}).get(col, 0.0)

            best: tuple[float, list[str], dict[str, float]] | None = None
            for members in stages.values():
                cyc = {
                    p: 1.0 / sum(1.0 / spec[mid].ideal_cycle_s[p] for mid in members)
                    for p in products
                    if all(p in spec[mid].ideal_cycle_s for mid in members)
                }
                load = sum(
                    cyc.get(p, 0.0) * sum(count("produced", mid, p) for mid in members)
                    for p in products
                )
                if best is None or load > best[0]:
                    best = (load, members, cyc)
            assert best is not None
            _, members, cyc = best
            out_good = {p: sum(count("good", mid, p) for mid in last) for p in products}
            bn_pbt = sum(tot.get((paths[mid], label), (0.0, 0.0))[0] for mid in members)
            bn_pbt /= len(members)
            valued = sum(out_good[p] * cyc.get(p, 0.0) for p in products)
            out.append(
                LineOEE(
                    line=f"{plant.site.id}/{a.id}/{ln.id}",
                    bucket=label,
                    oee_average=round(weighted / pbt, 9),
                    oee_bottleneck=round(valued / bn_pbt, 9) if bn_pbt > 0 else None,
                    bottleneck=tuple(paths[mid] for mid in members),
                    good_out=int(sum(out_good.values())),
                    planned_busy_s=round(pbt, 6),
                )
            )
    return out


async def reliability_report(
    store: TelemetryStore,
    plant: Plant,
    start: Micros,
    end: Micros,
    *,
    selection: Selection | None = None,
    reason_log: ReasonLog | None = None,
    exclude: Sequence[str] = (),
    min_down_s: float = 0.0,
) -> list[ReliabilityRow]:
    """MTBF, MTTR, MTTA and failure counts per machine and per reason (``as_dict()``: the
    JSON row)."""
    sel = selection or select(plant)
    states, _, acked = await read_timeline(store, plant, start, end, sel.machines, reason_log)
    return reliability(states, exclude=exclude, min_down_s=min_down_s, acknowledged=acked)


@dataclass(frozen=True, slots=True)
class DowntimeRow:
    """One reason of the downtime Pareto: its stops, their time and share of all downtime."""

    category: str
    reason: str
    stops: int
    duration_s: float
    share: float | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "category": self.category,
            "reason": self.reason,
            "stops": self.stops,
            "duration_s": self.duration_s,
            "share": self.share,
        }


@dataclass(frozen=True, slots=True)
class DowntimeReport:
    """The downtime Pareto (largest first) and the downtime no reason explains."""

    pareto: tuple[DowntimeRow, ...]
    downtime_s: float
    unexplained_s: float
    unexplained_share: float | None

    def as_dict(self) -> dict[str, Any]:
        """The JSON object ``andon kpi downtime --json`` prints."""
        return {
            "pareto": [r.as_dict() for r in self.pareto],
            "downtime_s": self.downtime_s,
            "unexplained_s": self.unexplained_s,
            "unexplained_share": self.unexplained_share,
        }


async def downtime_report(
    store: TelemetryStore,
    plant: Plant,
    start: Micros,
    end: Micros,
    *,
    tree: ReasonTree | None = None,
    selection: Selection | None = None,
    reason_log: ReasonLog | None = None,
    include_planned: bool = False,
) -> DowntimeReport:
    """The downtime Pareto (category › reason) and unexplained downtime."""
    sel = selection or select(plant)
    states, _, _ = await read_timeline(store, plant, start, end, sel.machines, reason_log)
    d = downtime(states, tree or ReasonTree.default(), include_planned=include_planned)
    return DowntimeReport(
        tuple(
            DowntimeRow(r["category"], r["reason"], r["stops"], r["duration_s"], r["share"])
            for r in d["pareto"]
        ),
        d["downtime_s"],
        d["unexplained_s"],
        d["unexplained_share"],
    )


_MARGIN_US = 15 * 60 * 1_000_000
"""Energy samples read beyond each end of a range, for interpolation at the ends."""


async def _cumulatives(
    store: TelemetryStore,
    tenant: str,
    sources: Sequence[tuple[str, str, float | None]],
    start: Micros,
    end: Micros,
) -> dict[str, tuple[I64, F64]]:
    """The cumulative kWh series of each ``(signal path, "energy" | "power", rollover)``
    source that has samples, from one read of all of them (bad-quality samples dropped)."""
    if not sources:
        return {}
    # read a margin either side so that the register can be interpolated at the range ends
    paths = [p for p, _, _ in sources]
    batch = await store.read(tenant, paths, start - _MARGIN_US, end + _MARGIN_US)
    pos = {n: i for i, n in enumerate(batch.names)}
    out: dict[str, tuple[I64, F64]] = {}
    for path, kind, rollover in sources:
        if path not in pos:
            continue
        ok = (batch.index == pos[path]) & (batch.quality != 2)
        ts, v = batch.ts[ok], batch.value[ok]
        order = np.argsort(ts, kind="stable")
        ts, v = ts[order], v[order]
        if len(ts) == 0:
            continue
        if kind == "energy":
            out[path] = (ts, cumulative_register(v, rollover))
        else:
            out[path] = cumulative_power(ts, v)
    return out


def _kwh(series: tuple[I64, F64], start: Micros, end: Micros) -> float:
    ts, cum = series
    return float(energy_between(ts, cum, np.array([start]), np.array([end]))[0])


async def _finished_parts(
    store: TelemetryStore, tenant: str, machines: Sequence[str], start: Micros, end: Micros
) -> PartBatch:
    """Parts finished in ``(start, end]``: a part finished at t counts where t - 1 µs lies
    (its work ended there), as the OEE table counts it (``andon.kpi.oee``), so the energy
    figures' part counts equal the board's."""
    return await store.read_parts(tenant, machines, start + 1, end + 1)


def _outputs(plant: Plant, sel: Selection) -> list[str]:
    """The selected machines whose good parts are output: the lines' last stations among
    them, or every selected machine when none is a last station."""
    last = {m for ms in line_outputs(plant).values() for m in ms}
    return [m for m in sel.machines if m in last] or list(sel.machines)


def _money(cost: Mapping[str, Mapping[str, float]]) -> float:
    return round(sum(v["cost"] for v in cost.values()), 2)


CostByPeriod = Mapping[str, Mapping[str, float]]
"""Cost per tariff period: ``{period: {"kwh", "price", "cost"}}``."""


@dataclass(frozen=True, slots=True)
class MachineEnergy:
    """A machine's energy in ``energy_report``: kWh (and by state), idle (starved or
    blocked) and non-productive kWh, good parts and kWh per good part, the 15-min peak; with
    a tariff its ``cost``, with a grid factor its ``co2e_kg``."""

    machine: str
    source: str
    kwh: float
    kwh_by_state: Mapping[str, float]
    idle_kwh: float
    nonproductive_kwh: float
    good_parts: int
    kwh_per_good_part: float | None
    peak_kw_15min: float
    cost: float | None = None
    co2e_kg: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """The JSON row: ``cost`` and ``co2e_kg`` only where there are."""
        row: dict[str, Any] = {
            "machine": self.machine,
            "source": self.source,
            "kwh": self.kwh,
            "kwh_by_state": dict(self.kwh_by_state),
            "idle_kwh": self.idle_kwh,
            "nonproductive_kwh": self.nonproductive_kwh,
            "good_parts": self.good_parts,
            "kwh_per_good_part": self.kwh_per_good_part,
            "peak_kw_15min": self.peak_kw_15min,
        }
        if self.cost is not None:
            row["cost"] = self.cost
        if self.co2e_kg is not None:
            row["co2e_kg"] = self.co2e_kg
        return row


@dataclass(frozen=True, slots=True)
class MeterEnergy:
    """A site meter's energy in ``energy_report``: kWh, the 15-min peak and when; with a
    tariff its cost (per period, in ``currency``), with a grid factor its ``co2e_kg``."""

    meter: str
    source: str
    kwh: float
    peak_kw_15min: float
    peak_at: Micros | None
    cost: float | None = None
    cost_by_period: CostByPeriod | None = None
    currency: str | None = None
    co2e_kg: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """The JSON row: the cost and ``co2e_kg`` only where there are."""
        row: dict[str, Any] = {
            "meter": self.meter,
            "source": self.source,
            "kwh": self.kwh,
            "peak_kw_15min": self.peak_kw_15min,
            "peak_at": self.peak_at,
        }
        if self.cost is not None:
            row["cost"] = self.cost
            row["cost_by_period"] = self.cost_by_period
            row["currency"] = self.currency
        if self.co2e_kg is not None:
            row["co2e_kg"] = self.co2e_kg
        return row


@dataclass(frozen=True, slots=True)
class EnergyTotal:
    """``energy_report``'s total of the selection (see there)."""

    basis: str
    kwh: float
    machines_kwh: float
    site_kwh: float | None
    good_out: int
    kwh_per_part: float | None
    cost: float | None = None
    cost_by_period: CostByPeriod | None = None
    currency: str | None = None
    co2e_kg: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """The JSON object: the cost and ``co2e_kg`` only where there are."""
        out: dict[str, Any] = {
            "basis": self.basis,
            "kwh": self.kwh,
            "machines_kwh": self.machines_kwh,
            "site_kwh": self.site_kwh,
            "good_out": self.good_out,
            "kwh_per_part": self.kwh_per_part,
        }
        if self.cost is not None:
            out["cost"] = self.cost
            out["cost_by_period"] = self.cost_by_period
            out["currency"] = self.currency
        if self.co2e_kg is not None:
            out["co2e_kg"] = self.co2e_kg
        return out


@dataclass(frozen=True, slots=True)
class EnergyReport:
    """``energy_report``'s answer: machines, meters, the total and the grid factor used."""

    machines: tuple[MachineEnergy, ...]
    meters: tuple[MeterEnergy, ...]
    total: EnergyTotal
    grid_factor: GridFactor | None

    def machine(self, path: str) -> MachineEnergy | None:
        """The row of machine ``path`` (None: no energy signal or no data)."""
        return next((r for r in self.machines if r.machine == path), None)

    def as_dict(self) -> dict[str, Any]:
        """The JSON object ``andon kpi energy --json`` prints."""
        f = self.grid_factor
        return {
            "machines": [r.as_dict() for r in self.machines],
            "meters": [r.as_dict() for r in self.meters],
            "total": self.total.as_dict(),
            "grid_factor": None
            if f is None
            else {
                "country": f.country,
                "kg_per_kwh": f.kg_per_kwh,
                "year": f.year,
                "source": f.source,
            },
        }


async def energy_report(
    store: TelemetryStore,
    plant: Plant,
    start: Micros,
    end: Micros,
    *,
    selection: Selection | None = None,
    tariff: Tariff | None = None,
    factor: GridFactor | None = None,
) -> EnergyReport:
    """Energy per machine and state, idle energy, energy per good part, peak demand, cost
    and CO2e, for machines and meters, and the ``total`` of the selection. An energy
    register is used where the machine or meter has one, its power signal otherwise.

    ``total``: ``machines_kwh`` (the selected machines' own meters), ``site_kwh`` (the site
    meters, base load included; only for the whole plant and null without meters),
    ``kwh`` and ``basis`` (the site meters' when there are, the machines' otherwise: the
    figure ``energy_periods`` gives per period), ``good_out`` (good parts leaving the
    selection: the lines' last stations, ``_outputs``), ``kwh_per_part`` (``kwh`` per
    ``good_out``), and with a tariff (``tariff``, or the site's) ``cost`` and
    ``cost_by_period`` of ``kwh``; with a grid factor its ``co2e_kg``."""
    sel = selection or select(plant)
    tenant = plant.tenant
    if factor is None:
        try:
            factor = grid_factor(plant.site.timezone)
        except KeyError:
            factor = None
    if tariff is None:
        tariff = Tariff.of_site(plant.site)
    states, _, _ = await read_timeline(store, plant, start, end, sel.machines)
    parts = await _finished_parts(store, tenant, sel.machines, start, end)
    st_pos = {n: i for i, n in enumerate(states.names)}
    pt_pos = {n: i for i, n in enumerate(parts.names)}
    whole = len(sel.machines) == len(plant.machines())
    m_src: dict[str, tuple[str, Signal]] = {}
    for a, ln, m in plant.machines():
        path = plant.machine_path(a, ln, m)
        sig = _energy_signal(m.signals)
        if path in sel.machines and sig is not None:
            m_src[path] = (f"{path}/{sig.id}", sig)
    mt_src: dict[str, tuple[str, Signal, float | None]] = {}
    for mt in plant.site.meters if whole else ():
        sig = _energy_signal(mt.signals)
        if sig is not None:
            key = f"{plant.site.id}/{mt.id}"
            mt_src[key] = (f"{key}/{sig.id}", sig, mt.rollover_kwh)
    series_of = await _cumulatives(
        store,
        tenant,
        [(p, s.type, None) for p, s in m_src.values()]
        + [(p, s.type, r) for p, s, r in mt_src.values()],
        start,
        end,
    )

    def good_of(path: str) -> int:
        return int(parts.good[parts.index == pt_pos[path]].sum()) if path in pt_pos else 0

    machines_out: list[MachineEnergy] = []
    m_cost: dict[str, dict[str, float]] = {}
    for path, (sig_path, sig) in m_src.items():
        series = series_of.get(sig_path)
        if series is None:
            continue
        ts, cum = series
        mine = np.flatnonzero(states.index == st_pos[path]) if path in st_pos else np.zeros(0, int)
        by_state = energy_by_state(ts, cum, _take(states, mine))
        good = good_of(path)
        kwh = _kwh(series, start, end)
        idle = by_state["starved"] + by_state["blocked"]
        nonprod = kwh - by_state["running"] - by_state["offline"]
        money: float | None = None
        if tariff is not None:
            cost = tariff_cost(ts, cum, start, end, tariff)
            money = _money(cost)
            for k, v in cost.items():
                acc = m_cost.setdefault(k, {"kwh": 0.0, "price": v["price"], "cost": 0.0})
                acc["kwh"] += v["kwh"]
                acc["cost"] += v["cost"]
        machines_out.append(
            MachineEnergy(
                machine=path,
                source=sig.type,
                kwh=round(kwh, 6),
                kwh_by_state={k: round(v, 6) for k, v in by_state.items()},
                idle_kwh=round(idle, 6),
                nonproductive_kwh=round(nonprod, 6),
                good_parts=good,
                kwh_per_good_part=round(kwh / good, 6) if good else None,
                peak_kw_15min=round(peak_demand(ts, cum, start, end).kw, 6),
                cost=money,
                co2e_kg=None if factor is None else round(co2e_kg(kwh, factor), 6),
            )
        )
    meters_out: list[MeterEnergy] = []
    mt_cost: dict[str, dict[str, float]] = {}
    for key, (sig_path, sig, _) in mt_src.items():
        series = series_of.get(sig_path)
        if series is None:
            continue
        ts, cum = series
        demand = peak_demand(ts, cum, start, end)
        kwh = _kwh(series, start, end)
        mt_money: tuple[float | None, CostByPeriod | None, str | None] = (None, None, None)
        if tariff is not None:
            cost = tariff_cost(ts, cum, start, end, tariff)
            mt_money = (_money(cost), cost, tariff.currency)
            for k, v in cost.items():
                acc = mt_cost.setdefault(k, {"kwh": 0.0, "price": v["price"], "cost": 0.0})
                acc["kwh"] += v["kwh"]
                acc["cost"] += v["cost"]
        meters_out.append(
            MeterEnergy(
                key,
                sig.type,
                round(kwh, 6),
                round(demand.kw, 6),
                demand.at,
                *mt_money,
                co2e_kg=None if factor is None else round(co2e_kg(kwh, factor), 6),
            )
        )
    machines_kwh = sum(r.kwh for r in machines_out)
    site_kwh = sum(r.kwh for r in meters_out) if meters_out else None
    kwh = site_kwh if site_kwh is not None else machines_kwh
    good_out = sum(good_of(p) for p in _outputs(plant, sel))
    t_money: tuple[float | None, CostByPeriod | None, str | None] = (None, None, None)
    if tariff is not None:
        by_period = mt_cost if site_kwh is not None else m_cost
        t_money = (_money(by_period), by_period, tariff.currency)
    total = EnergyTotal(
        "meters" if site_kwh is not None else "machines",
        round(kwh, 6),
        round(machines_kwh, 6),
        None if site_kwh is None else round(site_kwh, 6),
        good_out,
        round(kwh / good_out, 6) if good_out else None,
        *t_money,
        co2e_kg=None if factor is None else round(co2e_kg(kwh, factor), 6),
    )
    return EnergyReport(tuple(machines_out), tuple(meters_out), total, factor)


def _take(states: StateBatch, rows: np.ndarray) -> StateBatch:
    return StateBatch(
        states.names,
        states.index[rows],
        states.start[rows],
        states.end[rows],
        states.state[rows],
        tuple(states.reason[int(i)] for i in rows),
    )


async def loss_report(
    store: TelemetryStore,
    plant: Plant,
    start: Micros,
    end: Micros,
    prices: LossPrices,
    *,
    selection: Selection | None = None,
    model: TimeModel | None = None,
) -> list[LossRow]:
    """Every loss of the range in money, ranked (largest first; ``as_dict()``: the JSON
    row)."""
    sel = selection or select(plant)
    table = await oee(store, plant, start, end, model=model, selection=sel)
    energy = await energy_report(store, plant, start, end, selection=sel)
    kwh: Mapping[str, float] = {m.machine: m.nonproductive_kwh for m in energy.machines}
    return loss_costs(table, prices, kwh)


@dataclass(frozen=True, slots=True)
class EnergyPeriod:
    """One period of ``energy_periods``: its label, kWh, good parts out and (when asked
    for) degree days; with ``energy_baseline``, the baseline's prediction and the savings."""

    bucket: str
    kwh: float
    production: int
    degree_days: float | None = None
    predicted_kwh: float | None = None
    savings_kwh: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """The JSON row: degree days and the prediction only where there are."""
        row: dict[str, Any] = {
            "bucket": self.bucket,
            "kwh": self.kwh,
            "production": self.production,
        }
        if self.degree_days is not None:
            row["degree_days"] = self.degree_days
        if self.predicted_kwh is not None:
            row["predicted_kwh"] = self.predicted_kwh
            row["savings_kwh"] = self.savings_kwh
        return row


@dataclass(frozen=True, slots=True)
class BaselineFit:
    """An energy baseline's regression: kWh = intercept + per unit × production (+ per
    degree day × degree days), its R² and the number of periods it was fitted on."""

    intercept_kwh: float
    kwh_per_unit: float
    kwh_per_degree_day: float | None
    r2: float
    periods: int


@dataclass(frozen=True, slots=True)
class EnergyBaseline:
    """``energy_baseline``'s answer: the fit, the reporting periods with prediction and
    savings, and the total savings."""

    baseline: BaselineFit
    periods: tuple[EnergyPeriod, ...]
    savings_kwh: float

    def as_dict(self) -> dict[str, Any]:
        """The JSON object ``andon kpi energy --baseline-from ... --json`` prints."""
        b = self.baseline
        return {
            "baseline": {
                "intercept_kwh": b.intercept_kwh,
                "kwh_per_unit": b.kwh_per_unit,
                "kwh_per_degree_day": b.kwh_per_degree_day,
                "r2": b.r2,
                "periods": b.periods,
            },
            "periods": [p.as_dict() for p in self.periods],
            "savings_kwh": self.savings_kwh,
        }


async def energy_periods(
    store: TelemetryStore,
    plant: Plant,
    start: Micros,
    end: Micros,
    *,
    period: Period = "day",
    selection: Selection | None = None,
    degree_days: Mapping[str, float] | None = None,
) -> list[EnergyPeriod]:
    """Energy and production per period: the data of an energy baseline.

    Energy is the site's meters when the selection is the whole plant and the site's
    meters have data, otherwise the sum of the selected machines' own registers (or power
    signals): the ``total`` of ``energy_report``, which the periods add up to.
    Production is the good parts of the selected machines that feed no buffer (the line
    outputs), or of all selected machines when none does. ``degree_days`` by period label.
    """
    sel = selection or select(plant)
    b = buckets(period, start, end, plant.site.timezone, plant.site.calendar)
    tenant = plant.tenant
    meters: list[tuple[str, str, float | None]] = []
    if len(sel.machines) == len(plant.machines()):
        for mt in plant.site.meters:
            sig = _energy_signal(mt.signals)
            if sig is not None:
                meters.append((f"{plant.site.id}/{mt.id}/{sig.id}", sig.type, mt.rollover_kwh))
    series_of = await _cumulatives(store, tenant, meters, start, end)
    if not series_of:
        machines: list[tuple[str, str, float | None]] = []
        for a, ln, m in plant.machines():
            path = plant.machine_path(a, ln, m)
            sig = _energy_signal(m.signals)
            if path in sel.machines and sig is not None:
                machines.append((f"{path}/{sig.id}", sig.type, None))
        series_of = await _cumulatives(store, tenant, machines, start, end)
    kwh = np.zeros(len(b))
    for series in series_of.values():
        kwh += energy_between(series[0], series[1], b.edges[:-1], b.edges[1:])
    parts = await _finished_parts(store, tenant, _outputs(plant, sel), start, end)
    k = b.of(parts.ts - 1)
    ok = k >= 0
    good = np.bincount(k[ok], weights=parts.good[ok].astype(np.float64), minlength=len(b))
    return [
        EnergyPeriod(
            label,
            round(float(kwh[i]), 6),
            int(good[i]),
            None if degree_days is None else float(degree_days.get(label, 0.0)),
        )
        for i, label in enumerate(b.labels)
    ]


def _energy_signal(signals: Sequence[Signal]) -> Signal | None:
    return next((s for s in signals if s.type == "energy"), None) or next(
        (s for s in signals if s.type == "power"), None
    )


async def energy_baseline(
    store: TelemetryStore,
    plant: Plant,
    baseline: tuple[Micros, Micros],
    reporting: tuple[Micros, Micros],
    *,
    period: Period = "day",
    selection: Selection | None = None,
    degree_days: Mapping[str, float] | None = None,
) -> EnergyBaseline:
    """Fit an energy baseline over ``baseline`` periods and the savings of ``reporting``
    periods against it (ISO 50001 energy performance indicator with a regression
    baseline)."""
    base = await energy_periods(
        store, plant, *baseline, period=period, selection=selection, degree_days=degree_days
    )
    rep = await energy_periods(
        store, plant, *reporting, period=period, selection=selection, degree_days=degree_days
    )

    def cols(rows: list[EnergyPeriod]) -> tuple[F64, F64, F64 | None]:
        e = np.array([r.kwh for r in rows], dtype=np.float64)
        p = np.array([r.production for r in rows], dtype=np.float64)
        dd = (
            np.array([r.degree_days or 0.0 for r in rows], dtype=np.float64)
            if degree_days is not None
            else None
        )
        return e, p, dd

    e0, p0, d0 = cols(base)
    model = fit_baseline(e0, p0, d0)
    e1, p1, d1 = cols(rep)
    predicted = model.predict(p1, d1)
    periods = tuple(
        dataclasses.replace(r, predicted_kwh=round(pred, 6), savings_kwh=round(pred - r.kwh, 6))
        for r, pred in zip(rep, predicted.tolist(), strict=True)
    )
    fit = BaselineFit(model.intercept, model.per_unit, model.per_degree_day, model.r2, model.n)
    return EnergyBaseline(fit, periods, round(model.savings(e1, p1, d1), 6))

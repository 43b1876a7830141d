"""Per-machine and per-line figures for a time range, read back from the telemetry store:
state durations, parts, OEE, energy, energy per good part and each line's output rate.

Every figure comes from the one function that computes it for every other page (see
``docs/decisions/0108-one-function-per-figure.md``): OEE and parts from
``andon.kpi.api.oee`` (what ``andon kpi oee`` and the line and machine pages report), kWh
and kWh per good part from ``andon.kpi.api.energy_report`` (the energy page's), and a line's
rate from ``line_rates`` (the line page's): good parts leaving the line's last stations per
hour of planned production time (``andon.kpi.ranges``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from andon.kpi.api import Selection, energy_report, oee, read_states_live
from andon.kpi.ranges import line_outputs, planned_production_s
from andon.model.plant import Plant
from andon.model.types import MachineState, Micros
from andon.store.base import TelemetryStore

__all__ = [
    "LineRate",
    "MachineSummary",
    "MeterKwh",
    "PartCounts",
    "PlantSummary",
    "line_rate",
    "line_rates",
    "parts_of",
    "plant_summary",
]


@dataclass(frozen=True, slots=True)
class PartCounts:
    good: int
    scrap: int


@dataclass(frozen=True, slots=True)
class MachineSummary:
    """One machine over a range: seconds per state (label), parts, A/P/Q/OEE, kWh."""

    machine: str
    states_s: dict[str, float]
    parts: PartCounts
    availability: float | None
    performance: float | None
    quality: float | None
    oee: float | None
    performance_flag: bool
    kwh: float | None
    kwh_per_good_part: float | None

    def as_dict(self) -> dict[str, Any]:
        """The JSON object (``/kpi/summary``'s and ``andon demo --json``'s machine rows)."""
        return {
            "machine": self.machine,
            "states_s": dict(self.states_s),
            "parts": {"good": self.parts.good, "scrap": self.parts.scrap},
            "availability": self.availability,
            "performance": self.performance,
            "quality": self.quality,
            "oee": self.oee,
            "performance_flag": self.performance_flag,
            "kwh": self.kwh,
            "kwh_per_good_part": self.kwh_per_good_part,
        }


@dataclass(frozen=True, slots=True)
class LineRate:
    """A line's output over a range (``line_rates``' row)."""

    line: str
    good_out: int
    planned_production_s: float
    throughput_per_h: float | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "line": self.line,
            "good_out": self.good_out,
            "planned_production_s": self.planned_production_s,
            "throughput_per_h": self.throughput_per_h,
        }


@dataclass(frozen=True, slots=True)
class MeterKwh:
    meter: str
    kwh: float

    def as_dict(self) -> dict[str, Any]:
        return {"meter": self.meter, "kwh": self.kwh}


@dataclass(frozen=True, slots=True)
class PlantSummary:
    """``plant_summary``'s figures: per machine, per line and per site meter."""

    machines: tuple[MachineSummary, ...]
    lines: tuple[LineRate, ...]
    meters: tuple[MeterKwh, ...]

    def as_dict(self) -> dict[str, Any]:
        """The JSON object, in the order ``/kpi/summary`` and the demo print it."""
        return {
            "machines": [m.as_dict() for m in self.machines],
            "lines": [ln.as_dict() for ln in self.lines],
            "meters": [m.as_dict() for m in self.meters],
        }


def _r(x: float | None, nd: int = 6) -> float | None:
    return None if x is None else round(float(x), nd)


def parts_of(row: Mapping[str, Any]) -> tuple[int, int]:
    """Good and scrap parts of an OEE table row (``OEETable.rows``), wherever they were
    finished: in planned busy time (``good``, ``scrap``) or outside it (``outside_plan_*``,
    in no ratio but still parts the machine made). Every page's part counts come from here.

    >>> parts_of({"good": 9, "scrap": 1, "outside_plan_produced": 3, "outside_plan_good": 2})
    (11, 2)
    """
    out_prod = int(row.get("outside_plan_produced", 0))
    out_good = int(row.get("outside_plan_good", 0))
    good = int(row.get("good", 0)) + out_good
    return good, int(row.get("scrap", 0)) + out_prod - out_good


def line_rates(
    plant: Plant,
    good: Mapping[str, int],
    start: Micros,
    end: Micros,
    now: Micros | None = None,
) -> list[dict[str, Any]]:
    """Each line's output over ``[start, end)``: ``good_out`` (good parts of the stations
    that feed no buffer, from ``good`` by machine path), ``planned_production_s`` (the
    calendar's production time of those stations in the range, up to ``now``: time still
    to come is not production time) and ``throughput_per_h`` (``good_out`` per planned
    production hour; ``None`` when nothing was planned).

    >>> from andon.model.loader import parse_plant
    >>> from importlib.resources import files
    >>> plant = parse_plant((files("andon.sim") / "plants" / "demo.yaml").read_text())
    >>> from andon.model.types import to_micros
    >>> from datetime import datetime
    >>> from zoneinfo import ZoneInfo
    >>> at = lambda h: to_micros(datetime(2026, 3, 3, h, tzinfo=ZoneInfo("Asia/Taipei")))
    >>> r = line_rates(plant, {"tc1/machining/L1/IP-01": 49}, at(0), at(7))[0]
    >>> r["line"], r["good_out"], r["planned_production_s"], r["throughput_per_h"]
    ('tc1/machining/L1', 49, 3600.0, 49.0)
    """
    out = []
    stop = end if now is None else min(end, now)
    for line, last in line_outputs(plant).items():
        n = int(sum(good.get(m, 0) for m in last))
        planned = planned_production_s(plant, last, start, stop)
        out.append(
            {
                "line": line,
                "good_out": n,
                "planned_production_s": round(planned, 3),
                "throughput_per_h": round(n / planned * 3600.0, 6) if planned > 0 else None,
            }
        )
    return out


async def line_rate(
    store: TelemetryStore,
    plant: Plant,
    line: str,
    start: Micros,
    end: Micros,
    now: Micros | None = None,
) -> dict[str, Any]:
    """``line_rates`` of one line (by path) from the store: the good parts of its last
    stations as ``andon.kpi.api.oee`` counts them (as ``plant_summary`` does)."""
    last = line_outputs(plant).get(line)
    if last is None:
        raise KeyError(f"no line {line!r} in the plant")
    table = await oee(store, plant, start, end, selection=Selection(last), now=now)
    good = {r["machine"]: parts_of(r)[0] for r in table.rows()}
    return next(r for r in line_rates(plant, good, start, end, now) if r["line"] == line)


async def plant_summary(
    store: TelemetryStore, plant: Plant, start: Micros, end: Micros, now: Micros | None = None
) -> PlantSummary:
    """The board's and ``/kpi/summary``'s figures for ``[start, end)``; with ``now`` (a
    range that ends in the future) time from ``now`` on is neither OEE time nor planned
    production time."""
    machines = [plant.machine_path(a, ln, m) for a, ln, m in plant.machines()]
    table = await oee(store, plant, start, end, now=now)
    rows = {r["machine"]: r for r in table.rows()}
    energy = await energy_report(store, plant, start, end, factor=None)
    kwh_rows = {r.machine: r for r in energy.machines}
    states = await read_states_live(store, plant.tenant, machines, start, end)
    st_pos = {n: i for i, n in enumerate(states.names)}
    st_dur = (states.end - states.start).astype(np.float64) / 1e6
    machines_out: list[MachineSummary] = []
    good_by: dict[str, int] = {}
    for path in machines:
        durations = {s.label: 0.0 for s in MachineState}
        if path in st_pos:
            sel = states.index == st_pos[path]
            sums = np.bincount(states.state[sel], weights=st_dur[sel], minlength=len(MachineState))
            durations = {s.label: float(sums[s]) for s in MachineState}
        row = rows.get(path, {})
        good_by[path], scrap = parts_of(row)
        e = kwh_rows.get(path)
        machines_out.append(
            MachineSummary(
                machine=path,
                states_s={k: round(v, 3) for k, v in durations.items()},
                parts=PartCounts(good_by[path], scrap),
                availability=_r(row.get("availability")),
                performance=_r(row.get("performance")),
                quality=_r(row.get("quality")),
                oee=_r(row.get("oee")),
                performance_flag=bool(row.get("performance_flag", False)),
                kwh=None if e is None else e.kwh,
                kwh_per_good_part=None if e is None else e.kwh_per_good_part,
            )
        )
    return PlantSummary(
        tuple(machines_out),
        tuple(LineRate(**r) for r in line_rates(plant, good_by, start, end, now)),
        tuple(MeterKwh(m.meter, m.kwh) for m in energy.meters),
    )

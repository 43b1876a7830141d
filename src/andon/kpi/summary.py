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
from typing import Any

import numpy as np

from andon.kpi.api import Selection, energy_report, oee, read_states_live
from andon.kpi.ranges import line_outputs, planned_production_s
from andon.model.plant import Plant
from andon.model.types import MachineState, Micros
from andon.store.base import TelemetryStore

__all__ = ["line_rate", "line_rates", "parts_of", "plant_summary"]


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
) -> dict[str, Any]:
    """The board's and ``/kpi/summary``'s figures for ``[start, end)``; with ``now`` (a
    range that ends in the future) time from ``now`` on is neither OEE time nor planned
    production time."""
    machines = [plant.machine_path(a, ln, m) for a, ln, m in plant.machines()]
    table = await oee(store, plant, start, end, now=now)
    rows = {r["machine"]: r for r in table.rows()}
    energy = await energy_report(store, plant, start, end, factor=None)
    kwh_rows = {r["machine"]: r for r in energy["machines"]}
    states = await read_states_live(store, plant.tenant, machines, start, end)
    st_pos = {n: i for i, n in enumerate(states.names)}
    st_dur = (states.end - states.start).astype(np.float64) / 1e6
    machines_out: list[dict[str, Any]] = []
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
            {
                "machine": path,
                "states_s": {k: round(v, 3) for k, v in durations.items()},
                "parts": {"good": good_by[path], "scrap": scrap},
                "availability": _r(row.get("availability")),
                "performance": _r(row.get("performance")),
                "quality": _r(row.get("quality")),
                "oee": _r(row.get("oee")),
                "performance_flag": bool(row.get("performance_flag", False)),
                "kwh": None if e is None else e["kwh"],
                "kwh_per_good_part": None if e is None else e["kwh_per_good_part"],
            }
        )
    meters_out = [{"meter": m["meter"], "kwh": m["kwh"]} for m in energy["meters"]]
    return {
        "machines": machines_out,
        "lines": line_rates(plant, good_by, start, end, now),
        "meters": meters_out,
    }

"""Per-machine and per-line figures for a time range, read back from the telemetry store:
state durations, parts, OEE, energy and energy per good part.

OEE comes from ``andon.kpi.oee.oee_table`` (the full ISO 22400 time model: setup and
changeover inside planned busy time), so it equals what ``andon kpi oee`` reports."""

from __future__ import annotations

from typing import Any

import numpy as np

from andon.kpi.energy import counter_delta
from andon.kpi.oee import oee_table
from andon.kpi.timeline import Buckets
from andon.model.plant import Plant
from andon.model.types import MachineState, Micros
from andon.store.base import TelemetryStore

__all__ = ["plant_summary"]


def _r(x: float | None, nd: int = 6) -> float | None:
    return None if x is None else round(float(x), nd)


async def plant_summary(
    store: TelemetryStore, plant: Plant, start: Micros, end: Micros
) -> dict[str, Any]:
    tenant = plant.tenant
    states = await store.read_states(tenant, None, start, end)
    parts = await store.read_parts(tenant, None, start, end)
    hours = (end - start) / 3.6e9
    machines_out: list[dict[str, Any]] = []
    lines_out: list[dict[str, Any]] = []
    st_names = {n: i for i, n in enumerate(states.names)}
    pt_names = {n: i for i, n in enumerate(parts.names)}
    st_dur = (states.end - states.start).astype(np.float64) / 1e6
    ideal_map = {
        plant.machine_path(a, ln, m): dict(m.ideal_cycle_s) for a, ln, m in plant.machines()
    }
    table = oee_table(
        states, parts, ideal_map, Buckets.single(start, end), machines=list(ideal_map)
    )
    t_rows = {r["machine"]: r for r in table.rows()}
    # every energy register of the site in one read (not one store call per machine)
    energy_of: dict[str, str] = {}
    for a, ln, m in plant.machines():
        sig = next((s for s in m.signals if s.type == "energy"), None)
        if sig is not None:
            energy_of[plant.machine_path(a, ln, m)] = f"{plant.machine_path(a, ln, m)}/{sig.id}"
    for mt in plant.site.meters:
        sig = next((s for s in mt.signals if s.type == "energy"), None)
        if sig is not None:
            energy_of[f"{plant.site.id}/{mt.id}"] = f"{plant.site.id}/{mt.id}/{sig.id}"
    series: dict[str, np.ndarray] = {}
    if energy_of:
        batch = await store.read(tenant, list(energy_of.values()), start, end)
        order = np.argsort(batch.index, kind="stable")  # rows are (index, ts) ordered already
        idx = batch.index[order]
        bounds = np.searchsorted(idx, np.arange(len(batch.names) + 1))
        for i, name in enumerate(batch.names):
            series[name] = batch.value[order[bounds[i] : bounds[i + 1]]]
    for area, line in plant.lines():
        shipped = 0
        feeds = {mid for b in line.buffers for mid in b.from_}
        for m in line.machines:
            path = plant.machine_path(area, line, m)
            durations = {s.label: 0.0 for s in MachineState}
            si = st_names.get(path)
            if si is not None:
                sel = states.index == si
                sums = np.bincount(
                    states.state[sel], weights=st_dur[sel], minlength=len(MachineState)
                )
                durations = {s.label: float(sums[s]) for s in MachineState}
            good = scrap = 0
            pi = pt_names.get(path)
            if pi is not None:
                sel_idx = np.flatnonzero(parts.index == pi)
                good = int(parts.good[sel_idx].sum())
                scrap = int(parts.scrap[sel_idx].sum())
            row = t_rows.get(path, {})
            kwh = None
            if path in energy_of:
                values = series.get(energy_of[path], np.zeros(0))
                kwh = counter_delta(values) if len(values) else 0.0
            machines_out.append(
                {
                    "machine": path,
                    "states_s": {k: round(v, 3) for k, v in durations.items()},
                    "parts": {"good": good, "scrap": scrap},
                    "availability": _r(row.get("availability")),
                    "performance": _r(row.get("performance")),
                    "quality": _r(row.get("quality")),
                    "oee": _r(row.get("oee")),
                    "performance_flag": bool(row.get("performance_flag", False)),
                    "kwh": _r(kwh, 3),
                    "kwh_per_good_part": _r(kwh / good, 4) if kwh is not None and good else None,
                }
            )
            if m.id not in feeds:
                shipped += good
        lines_out.append(
            {
                "line": f"{plant.site.id}/{area.id}/{line.id}",
                "good_parts": shipped,
                "throughput_per_h": _r(shipped / hours if hours > 0 else 0.0, 3),
            }
        )
    meters_out = []
    for mt in plant.site.meters:
        key = f"{plant.site.id}/{mt.id}"
        if key not in energy_of:
            continue
        values = series.get(energy_of[key], np.zeros(0))
        meters_out.append({"meter": key, "kwh": _r(counter_delta(values, mt.rollover_kwh), 3)})
    return {"machines": machines_out, "lines": lines_out, "meters": meters_out}

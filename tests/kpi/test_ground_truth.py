"""KPIs from the stored telemetry of a 7-day demo run against the virtual factory's ground
truth: its state log, fault log and part counters."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from andon.demo.run import DemoRun, default_start
from andon.kpi import api
from andon.model.calendar import expand_calendar
from andon.model.loader import load_plant
from andon.model.types import MachineState, StateBatch, to_micros
from andon.store.duckdb_store import DuckDBStore

DEMO = Path(__file__).resolve().parents[2] / "examples" / "plants" / "demo.yaml"
HOURS = 7 * 24
LABEL = {s.label: int(s) for s in MachineState}


def _us(iso: str) -> int:
    return to_micros(datetime.fromisoformat(iso.replace("Z", "+00:00")))


def truth_states(log: list[dict[str, Any]], end: int) -> StateBatch:
    """The state timeline as the factory logged it, closed at ``end``."""
    by_machine: dict[str, list[tuple[int, str, str]]] = defaultdict(list)
    for g in log:
        if g["kind"] == "state":
            by_machine[g["machine"]].append((_us(g["t"]), g["state"], g["reason"]))
    names = sorted(by_machine)
    idx, st, en, ss, rr = [], [], [], [], []
    for i, m in enumerate(names):
        pts = by_machine[m]
        for k, (t, s, r) in enumerate(pts):
            t_next = pts[k + 1][0] if k + 1 < len(pts) else end
            if t_next > t:
                idx.append(i)
                st.append(t)
                en.append(t_next)
                ss.append(LABEL[s])
                rr.append(r)
    return StateBatch.build(names, idx, st, en, ss, rr)


@pytest.mark.slow
def test_kpis_from_the_store_match_the_ground_truth(tmp_path: Path) -> None:
    plant = load_plant(DEMO)
    start = default_start(plant)
    end = start + HOURS * 3600 * 1_000_000

    async def go() -> tuple[DemoRun, list[dict[str, Any]], list[dict[str, Any]], api.EnergyReport]:
        store = DuckDBStore.open(tmp_path / "telemetry.duckdb")
        try:
            run = DemoRun.create(plant, store, seed=11, start=start)
            for h in range(1, HOURS + 1):
                await run.advance(h * 3600.0)
            await run.finish()
            table = await api.oee(store, plant, start, end)
            rel = [r.as_dict() for r in await api.reliability_report(store, plant, start, end)]
            energy = await api.energy_report(store, plant, start, end)
            return run, table.rows(), rel, energy
        finally:
            await store.close()

    run, oee_rows, rel_rows, energy = asyncio.run(go())
    truth = run.factory.ground_truth
    gt_states = truth_states(truth, end)
    by_path = {rt.path: rt for rt in run.factory.machines}
    ids = {plant.machine_path(a, ln, m): m.id for a, ln, m in plant.machines()}
    oee_by = {r["machine"]: r for r in oee_rows}
    rel_by = {r["machine"]: r for r in rel_rows if r["reason"] == ""}
    checked = 0
    for mi, path in enumerate(gt_states.names):
        rt = by_path[path]
        sel = gt_states.index == mi
        # planned busy time is the calendar's (decision 0105): shifts less breaks and
        # maintenance; the factory's running time splits into inside and outside it
        cal = expand_calendar(plant.site.calendar, plant.site.timezone, ids[path], start, end)
        planned = [(p.start, p.end) for p in cal if p.status == "scheduled"]
        pbt = sum(b - a for a, b in planned) / 1e6
        run_sel = sel & (gt_states.state == MachineState.RUNNING)
        running_in_plan = sum(
            max(0, min(b, pe) - max(a, ps)) / 1e6
            for a, b in zip(gt_states.start[run_sel], gt_states.end[run_sel], strict=True)
            for ps, pe in planned
        )
        running = rt.durations[MachineState.RUNNING]
        q = rt.good / (rt.good + rt.scrap)
        got = oee_by[path]
        assert got["planned_busy_s"] == pytest.approx(pbt, abs=1e-3), path
        assert got["no_data_s"] == pytest.approx(0.0, abs=1.0), path
        assert got["availability"] == pytest.approx(running_in_plan / pbt, rel=0.005), path
        assert got["running_s"] + got["outside_plan_running_s"] == pytest.approx(
            running, rel=0.005
        ), path
        assert got["net_operating_s"] + got["outside_plan_net_s"] == pytest.approx(
            rt.ideal_s, rel=0.005
        ), path
        assert 0.0 < got["performance"] <= 1.0, path
        made = got["produced"] + got["outside_plan_produced"]
        assert made == pytest.approx(rt.good + rt.scrap, abs=2), path
        assert (got["good"] + got["outside_plan_good"]) / made == pytest.approx(q, rel=0.005)
        assert got["oee"] == pytest.approx(
            got["availability"] * got["performance"] * got["quality"], rel=1e-6
        ), path
        faults = [g for g in truth if g["kind"] == "fault" and g.get("machine") == path]
        repair = [min(_us(g["end"]), end) - _us(g["t"]) for g in faults]
        mtbf = running / len(faults)
        mttr = float(np.mean(repair)) / 1e6
        r = rel_by[path]
        assert r["failures"] == len(faults), path
        assert r["mtbf_s"] == pytest.approx(mtbf, rel=0.005), path
        assert r["mttr_s"] == pytest.approx(mttr, rel=0.005), path
        # energy while off shift is the power model's offline draw over the offline time
        e = energy.machine(path)
        assert e is not None, path
        offline_h = rt.durations[MachineState.OFFLINE] / 3600
        want = rt.sim.power.offline_kw * offline_h
        assert e.kwh_by_state["offline"] == pytest.approx(want, rel=0.005), path
        checked += 1
    assert checked == len(plant.machines())
    # the main meter (it rolls over at 100 000 kWh during the week) covers every machine plus
    # 35 kW of base load
    (meter,) = energy.meters
    machines_kwh = sum(x.kwh for x in energy.machines)
    assert meter.kwh == pytest.approx(machines_kwh + 35.0 * HOURS, rel=0.005)
    assert meter.kwh > 100_000 - 99_200  # more than the register had left before wrapping

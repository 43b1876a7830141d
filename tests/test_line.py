"""The line model honours its parameters. Statistical checks use exact confidence intervals
at 99.9 % (two-sided), so a correct model fails one of them about once in a thousand seeds;
the seeds are fixed, so the suite is deterministic."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import stats

from andon.demo.run import default_start
from andon.model.loader import load_plant
from andon.model.types import MachineState
from andon.twin.engine import Engine
from andon.twin.line import FactoryModel, MachineRuntime
from tests.plants import one_machine, two_machines

Z = stats.norm.ppf(0.9995)  # 99.9 % two-sided


@dataclass
class Recorder:
    states: list[tuple[str, float, MachineState, str]] = field(default_factory=list)
    parts: list[tuple[str, float, bool, float]] = field(default_factory=list)
    faults: list[tuple[str, float, str, float]] = field(default_factory=list)
    conditions: list[tuple[str, float, str]] = field(default_factory=list)

    def on_state(self, m: MachineRuntime, t: float, state: MachineState, reason: str) -> None:
        self.states.append((m.spec.id, t, state, reason))

    def on_part(
        self, m: MachineRuntime, t: float, product: str, good: bool, cycle_s: float
    ) -> None:
        self.parts.append((m.spec.id, t, good, cycle_s))

    def on_condition(self, m: MachineRuntime, t: float, event: str) -> None:
        self.conditions.append((m.spec.id, t, event))

    def on_fault(self, m: MachineRuntime, t: float, code: str, repair_s: float) -> None:
        self.faults.append((m.spec.id, t, code, repair_s))

    def durations(self, machine: str, end: float) -> dict[MachineState, float]:
        out = {s: 0.0 for s in MachineState}
        mine = [(t, s) for mid, t, s, _ in self.states if mid == machine]
        for (t, s), (t2, _) in zip(mine, [*mine[1:], (end, None)], strict=True):
            out[s] += t2 - t
        return out


def run(plant: Any, hours: float, seed: int = 1) -> tuple[FactoryModel, Recorder]:
    rec = Recorder()
    model = FactoryModel(plant, seed, 1_767_225_600_000_000, listeners=[rec])  # 2026-01-01
    model.run(hours * 3600.0)
    model.close()
    return model, rec


def test_engine_orders_ties_by_scheduling_order_and_skips_cancelled() -> None:
    eng = Engine()
    seen: list[str] = []
    eng.schedule(5.0, lambda: seen.append("b"))
    ev = eng.schedule(5.0, lambda: seen.append("cancelled"))
    eng.schedule(5.0, lambda: seen.append("c"))
    eng.schedule(1.0, lambda: seen.append("a"))
    ev.cancel()
    assert eng.peek() == 1.0
    eng.run(4.0)
    assert seen == ["a"] and eng.now == 4.0
    eng.run(10.0)
    assert seen == ["a", "b", "c"]
    with pytest.raises(ValueError, match="before now"):
        eng.schedule(3.0, lambda: None)


FAIL: dict[str, Any] = {"code": "F", "mtbf_h": 2.0, "mttr_min": 10.0, "ttr_cv": 0.5}


def test_cycle_time_mtbf_mttr_and_scrap_match_configuration() -> None:
    cv, speed_loss, p_scrap = 0.1, 0.05, 0.02
    plant = one_machine(
        cycle_s=60.0,
        sim={
            "cycle_cv": cv,
            "speed_loss": speed_loss,
            "failure_modes": [FAIL],
            "quality": {"scrap_base": p_scrap, "scrap_wear_gain": 0.0},
        },
    )
    hours = 2000.0
    model, rec = run(plant, hours)
    m = model.machines[0]
    d = rec.durations("m", hours * 3600.0)
    # state durations add up to calendar time, and the model's own totals agree
    assert math.isclose(sum(d.values()), hours * 3600.0, rel_tol=1e-12)
    assert all(math.isclose(d[s], m.durations[s], rel_tol=1e-9, abs_tol=1e-6) for s in MachineState)
    n = len(rec.parts)
    assert n == m.good + m.scrap
    # mean cycle time: observed running time per part vs ideal × (1 + speed loss)
    mean_ct = 60.0 * (1 + speed_loss)
    observed_ct = d[MachineState.RUNNING] / n
    assert abs(observed_ct - mean_ct) < Z * cv * mean_ct / math.sqrt(n) + 1.0 / n * 60
    # drawn cycle times have the configured coefficient of variation
    cts = np.array([p[3] for p in rec.parts])
    assert abs(cts.std() / cts.mean() - cv) < 0.01
    # MTBF in operating time: exact chi-square interval for exponential lifetimes
    k = len(rec.faults)
    assert k > 500
    lo = 2 * d[MachineState.RUNNING] / stats.chi2.ppf(0.9995, 2 * k) / 3600
    hi = 2 * d[MachineState.RUNNING] / stats.chi2.ppf(0.0005, 2 * k) / 3600
    assert lo < FAIL["mtbf_h"] < hi, (lo, hi)
    # MTTR: down time per failure, CLT interval with the configured spread
    mttr = d[MachineState.DOWN] / k / 60
    assert abs(mttr - FAIL["mttr_min"]) < Z * FAIL["ttr_cv"] * FAIL["mttr_min"] / math.sqrt(k)
    # scrap rate: binomial interval
    rate = m.scrap / n
    assert abs(rate - p_scrap) < Z * math.sqrt(p_scrap * (1 - p_scrap) / n)
    # a machine with an infinite supply and no buffer is never starved or blocked
    assert d[MachineState.STARVED] == 0 and d[MachineState.BLOCKED] == 0


def test_failures_count_operating_time_only() -> None:
    """With a shift of 8 h a day, failures happen only while running."""
    cal = {"shifts": [{"name": "day", "start": "08:00", "end": "16:00"}]}
    plant = one_machine(cycle_s=30.0, calendar=cal, sim={"failure_modes": [FAIL]})
    hours = 24 * 200.0
    _, rec = run(plant, hours, seed=3)
    d = rec.durations("m", hours * 3600.0)
    k = len(rec.faults)
    lo = 2 * d[MachineState.RUNNING] / stats.chi2.ppf(0.9995, 2 * k) / 3600
    hi = 2 * d[MachineState.RUNNING] / stats.chi2.ppf(0.0005, 2 * k) / 3600
    assert lo < FAIL["mtbf_h"] < hi
    # and offline time is the 16 h a day outside the shift (to within the last cycle)
    assert abs(d[MachineState.OFFLINE] / 3600 / 200 - 16.0) < 0.05
    # every failure starts while the machine was running
    states = [(t, s) for mid, t, s, _ in rec.states]
    times = np.array([t for t, _ in states])
    for _, t, _, _ in rec.faults:
        i = int(np.searchsorted(times, t, side="left")) - 1
        assert states[i][1] == MachineState.RUNNING


def test_tool_wear_drives_tool_changes_and_scrap() -> None:
    life = 100
    plant = one_machine(
        cycle_s=20.0,
        sim={
            "wear": {"kind": "tool", "life_parts": life, "change_min": 5},
            "quality": {"scrap_base": 0.0, "scrap_wear_gain": 0.5},
        },
    )
    model, rec = run(plant, 400.0, seed=5)
    m = model.machines[0]
    changes = [c for c in rec.conditions if c[2] == "tool_change"]
    n = m.good + m.scrap
    assert len(changes) == n // life or len(changes) == n // life - 1
    # planned stop 'tool_change' lasts change_min each time
    reasons = [(t, s, r) for _, t, s, r in rec.states]
    tc = [(t2 - t) for (t, _, r), (t2, _, _) in pairwise(reasons) if r == "tool_change"]
    assert all(math.isclose(x, 300.0) for x in tc)
    # scrap grows with wear: P(scrap) = 0.5 × wear² → mean over a tool life ≈ 0.5/3
    expected = sum(0.5 * (k / life) ** 2 for k in range(life)) / life
    rate = m.scrap / n
    assert abs(rate - expected) < Z * math.sqrt(expected * (1 - expected) / n)
    first_half = [p for i, p in enumerate(rec.parts) if i % life < life // 2]
    second_half = [p for i, p in enumerate(rec.parts) if i % life >= life // 2]
    assert sum(not p[2] for p in second_half) > 3 * sum(not p[2] for p in first_half)


def test_finite_buffer_blocks_and_starves() -> None:
    """A fast machine before a slow one fills the buffer and is blocked; the slow one is
    never starved once the buffer is full, and the line runs at the slow machine's rate."""
    model, rec = run(
        two_machines(
            3,
            {"cycle_cv": 0.0, "speed_loss": 0.0},
            {"cycle_cv": 0.0, "speed_loss": 0.0},
            c1=50.0,
            c2=60.0,
        ),
        hours=10.0,
    )
    m1, m2 = model.machines
    d1 = rec.durations("m1", 36000.0)
    d2 = rec.durations("m2", 36000.0)
    assert d1[MachineState.BLOCKED] > 0
    assert d2[MachineState.STARVED] == pytest.approx(50.0)  # only waiting for the first part
    assert m2.good + m2.scrap == pytest.approx((36000 - 50) / 60, abs=1)
    # conservation: made by m1 = taken by m2 + in the buffer + held by m1
    buf = next(iter(model.buffers.values()))
    in_process = 1 if m2.part is not None else 0
    held = 1 if m1.held is not None else 0
    assert m1.good == m2.good + m2.scrap + in_process + len(buf.items) + held
    assert len(buf.items) <= 3


def test_breaks_and_changeovers_are_planned_stops() -> None:
    cal = {
        "shifts": [{"name": "all", "start": "00:00", "end": "00:00"}],
        "breaks": [{"name": "lunch", "start": "12:00", "end": "12:30"}],
        "maintenance": [{"machines": ["m"], "day": "thu", "start": "08:00", "duration_min": 60}],
    }
    plant = one_machine(cycle_s=30.0, calendar=cal, sim={"cycle_cv": 0.0, "speed_loss": 0.0})
    _, rec = run(plant, 48.0)  # 2026-01-01 is a Thursday
    stops = [(t, r) for _, t, s, r in rec.states if s == MachineState.PLANNED_STOP]
    assert [r for _, r in stops] == ["planned_maintenance", "break", "break"]
    assert [t for t, _ in stops] == [8 * 3600.0, 12 * 3600.0, 36 * 3600.0]
    d = rec.durations("m", 48 * 3600.0)
    assert d[MachineState.PLANNED_STOP] == pytest.approx(2 * 3600.0)


def test_same_seed_same_run_other_seed_other_run() -> None:
    plant = two_machines(2, {"failure_modes": [FAIL]}, {"failure_modes": [FAIL]})
    _, a = run(plant, 100.0, seed=11)
    _, b = run(plant, 100.0, seed=11)
    _, c = run(plant, 100.0, seed=12)
    assert a.states == b.states and a.parts == b.parts and a.faults == b.faults
    assert a.states != c.states


def test_no_cycle_of_the_demo_plant_beats_its_ideal_cycle_time() -> None:
    """ISO 22400: the ideal cycle time is the minimum. Every drawn cycle (a rework pass too)
    of every demo machine over a plant day is at least its product's ideal, while the mean
    and spread stay what the plant file says (decision 0506)."""
    plant = load_plant(Path(__file__).resolve().parents[1] / "examples" / "plants" / "demo.yaml")
    seen: dict[str, list[tuple[float, float]]] = {}

    class Cycles(Recorder):
        def on_part(
            self, m: MachineRuntime, t: float, product: str, good: bool, cycle_s: float
        ) -> None:
            seen.setdefault(m.spec.id, []).append((m.spec.ideal_cycle_s[product], cycle_s))

    rec = Cycles()
    model = FactoryModel(plant, 7, default_start(plant), listeners=[rec])
    model.run(24 * 3600.0)
    model.close()
    assert len(seen) == 7
    for mid, pairs in seen.items():
        ideal, cycle = np.array(pairs).T
        assert len(cycle) > 100, mid
        short = cycle < ideal
        assert not short.any(), (mid, int(short.sum()), len(cycle), float((cycle / ideal).min()))

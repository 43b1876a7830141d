"""Property tests on random timelines: the time model and the waterfall always add up."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from andon.kpi.energy import Tariff, TouPeriod, cumulative_register, energy_by_state, tariff_cost
from andon.kpi.oee import LOSSES, oee_table
from andon.kpi.periods import shifts
from andon.kpi.reliability import reliability
from andon.kpi.timeline import Buckets, TimeClass, TimeModel
from andon.model.plant import Calendar
from andon.model.types import MachineState, PartBatch, StateBatch
from tests.kpi.strategies import random_buckets

S = 1_000_000
REASONS = {
    MachineState.RUNNING: [""],
    MachineState.STARVED: [""],
    MachineState.BLOCKED: [""],
    MachineState.DOWN: ["JAM", "SPINDLE", ""],
    MachineState.PLANNED_STOP: ["break", "planned_maintenance", "changeover", "tool_change"],
    MachineState.OFFLINE: ["not_scheduled"],
}


@st.composite
def plant_day(draw: st.DrawFn) -> tuple[StateBatch, PartBatch, Buckets, TimeModel]:
    n_machines = draw(st.integers(1, 3))
    idx, starts, ends, states, reasons = [], [], [], [], []
    p_idx, p_ts, p_prod, p_good, p_scrap = [], [], [], [], []
    t_end = 0
    for m in range(n_machines):
        t = draw(st.integers(0, 600)) * S
        for _ in range(draw(st.integers(1, 25))):
            d = draw(st.integers(1, 7200)) * S
            s = draw(st.sampled_from(list(MachineState)))
            idx.append(m)
            starts.append(t)
            ends.append(t + d)
            states.append(int(s))
            reasons.append(draw(st.sampled_from(REASONS[s])))
            if s == MachineState.RUNNING:
                for k in range(draw(st.integers(0, 4))):
                    p_idx.append(m)
                    p_ts.append(t + d * (k + 1) // 5)
                    p_prod.append(draw(st.sampled_from(["a", "b"])))
                    p_good.append(draw(st.integers(0, 3)))
                    p_scrap.append(draw(st.integers(0, 1)))
            t += d
        t_end = max(t_end, t)
    names = [f"m{i}" for i in range(n_machines)]
    b = random_buckets(draw, t_end, 4)
    model = TimeModel(
        micro_stop_s=draw(st.sampled_from([0.0, 60.0, 300.0])),
        startup_parts=draw(st.integers(0, 3)),
    )
    return (
        StateBatch.build(names, idx, starts, ends, states, reasons),
        PartBatch.build(names, p_idx, p_ts, p_prod, p_good, p_scrap),
        b,
        model,
    )


IDEAL = {f"m{i}": {"a": 30.0, "b": 45.0} for i in range(3)}


@settings(max_examples=150, deadline=None)
@given(plant_day(), st.booleans())
def test_time_model_and_waterfall_add_up(
    day: tuple[StateBatch, PartBatch, Buckets, TimeModel], by_product: bool
) -> None:
    states, parts, b, model = day
    t = oee_table(states, parts, IDEAL, b, model, by_product=by_product)
    c = t.columns
    classes = sum(
        c[k]
        for k in (
            "running_s",
            "breakdown_s",
            "minor_stop_s",
            "idle_s",
            "setup_s",
            "planned_down_s",
            "not_scheduled_s",
            "no_data_s",
        )
    )
    np.testing.assert_allclose(classes, c["calendar_s"], atol=1e-6)
    # every machine's rows add up to its timeline inside the buckets
    for m, name in enumerate(states.names):
        sel = states.index == m
        inside = np.minimum(states.end[sel], b.edges[-1]) - np.maximum(
            states.start[sel], b.edges[0]
        )
        want = float(np.clip(inside, 0, None).sum()) / 1e6
        got = sum(c["calendar_s"][i] for i, mm in enumerate(t.machine) if mm == name)
        assert abs(got - want) < 1e-6
    waterfall = sum(c[k] for k in LOSSES) + c["fully_productive_s"]
    np.testing.assert_allclose(waterfall, c["planned_busy_s"], atol=1e-6)
    a, p, q, o = t.availability, t.performance, t.quality, t.oee
    for x in (a, q):
        ok = np.isfinite(x)
        assert np.all((x[ok] >= 0) & (x[ok] <= 1 + 1e-12))
    assert np.all(p[np.isfinite(p)] >= 0)
    both = np.isfinite(a) & np.isfinite(p) & np.isfinite(q)
    np.testing.assert_allclose(o[both], (a * p * q)[both], rtol=1e-9, atol=1e-12)
    for row, perf in zip(t.rows(), p, strict=True):
        # performance above 1 is reported as it is and flagged, never capped
        assert row["performance_flag"] == bool(np.isfinite(perf) and perf > 1 + 1e-9)
        if row["performance"] is not None:
            assert abs(row["performance"] - perf) < 1e-8


@settings(max_examples=80, deadline=None)
@given(plant_day())
def test_reliability_counts_every_unplanned_stop(
    day: tuple[StateBatch, PartBatch, Buckets, TimeModel],
) -> None:
    states = day[0]
    rows = reliability(states)
    totals = [r for r in rows if r.reason == ""]
    down = states.state == MachineState.DOWN
    assert sum(r.down_s for r in totals) * 1e6 == float(
        (states.end[down] - states.start[down]).sum()
    )
    # per-reason rows add up to their machine's row, and planned stops are never failures
    for tot in totals:
        parts = [r for r in rows if r.machine == tot.machine and r.reason != ""]
        assert sum(r.failures for r in parts) == tot.failures
        assert all(r.reason not in {"break", "planned_maintenance"} for r in parts)
        assert tot.failures <= int(np.sum(down & (states.index == states.names.index(tot.machine))))


def test_time_classes_are_complete() -> None:
    assert [c.label for c in TimeClass] == [
        "running",
        "breakdown",
        "minor_stop",
        "idle",
        "setup",
        "planned_down",
        "not_scheduled",
        "no_data",
    ]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 23), st.sampled_from([0, 30]), st.integers(1, 16)),
        min_size=1,
        max_size=3,
    ),
    st.sampled_from(["UTC", "Europe/Berlin", "America/New_York", "Asia/Taipei"]),
    st.integers(0, 364),
)
def test_shift_buckets_always_cover_the_range(
    spec: list[tuple[int, int, int]], zone: str, day: int
) -> None:
    shifts_doc = [
        {
            "name": f"s{i}",
            "start": f"{h:02d}:{m:02d}",
            "end": f"{(h + d) % 24:02d}:{m:02d}",
        }
        for i, (h, m, d) in enumerate(spec)
    ]
    cal = Calendar.model_validate({"shifts": shifts_doc})
    a = 1_767_225_600 * S + day * 86_400 * S  # 2026-01-01 UTC + day
    b = shifts(a, a + 3 * 86_400 * S, zone, cal)
    assert b.edges[0] == a and b.edges[-1] == a + 3 * 86_400 * S
    assert bool(np.all(np.diff(b.edges) > 0))
    assert all(
        lb.split(" ", 1)[1] in {*(s["name"] for s in shifts_doc), "off-shift"} for lb in b.labels
    )


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.floats(0.0, 50.0), min_size=2, max_size=40),
    st.lists(st.sampled_from(list(MachineState)), min_size=1, max_size=8),
)
def test_energy_pieces_add_up_across_rollovers(
    steps: list[float], states: list[MachineState]
) -> None:
    # a register that wraps at 1 000 kWh; every 60 s a reading
    used = np.concatenate(([0.0], np.cumsum(steps[1:])))
    reading = np.mod(990.0 + used, 1000.0)
    ts = np.arange(len(reading), dtype=np.int64) * 60 * S
    cum = cumulative_register(reading, rollover=1000.0)
    np.testing.assert_allclose(cum, used, atol=1e-6)
    end = int(ts[-1])
    edges = np.linspace(0, end, len(states) + 1).astype(np.int64)
    sb = StateBatch.build(["m"], [0] * len(states), edges[:-1], edges[1:], [int(x) for x in states])
    by_state = energy_by_state(ts, cum, sb)
    assert sum(by_state.values()) == pytest.approx(float(used[-1]), abs=1e-6)
    tariff = Tariff(1.0, (TouPeriod("peak", "00:10", "00:25", 2.0),), timezone="UTC")
    cost = tariff_cost(ts, cum, 0, end, tariff)
    assert sum(v["kwh"] for v in cost.values()) == pytest.approx(float(used[-1]), abs=1e-6)

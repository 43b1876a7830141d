"""Property: whenever actual cycles are not faster than ideal, every bucket's A, P, Q and OEE
lie in [0, 1] (parts' ideal time is spread over the running time of their cycles, decision
0105), under a random shift calendar, and the buckets add up to the whole range."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from andon.kpi.oee import COUNT_COLUMNS, LOSSES, TIME_COLUMNS, oee_table
from andon.kpi.timeline import Buckets, Plan, PlanStatus, TimeModel
from andon.model.types import MachineState, PartBatch, StateBatch
from tests.kpi.strategies import cut_edges, random_buckets

S = 1_000_000
IDEAL = {"a": 30.0, "b": 45.0}
REASONS = {
    MachineState.RUNNING: [""],
    MachineState.STARVED: [""],
    MachineState.BLOCKED: [""],
    MachineState.DOWN: ["JAM", ""],
    MachineState.PLANNED_STOP: ["break", "changeover"],
    MachineState.OFFLINE: ["not_scheduled"],
}
Day = tuple[StateBatch, PartBatch, Buckets, Plan | None, TimeModel]


@st.composite
def consistent_day(draw: st.DrawFn) -> Day:
    """Random timelines of 1-3 machines (with gaps) whose parts never come faster than the
    ideal cycle: each part needs at least ideal × quantity of running since the last one."""
    n = draw(st.integers(1, 3))
    idx, starts, ends, states, reasons = [], [], [], [], []
    p_idx, p_ts, p_prod, p_good, p_scrap = [], [], [], [], []
    t_end = 0
    for m in range(n):
        t = draw(st.integers(0, 600)) * S
        owed = 0.0  # running seconds still needed before the next part may finish
        prod = draw(st.sampled_from(["a", "b"]))
        qty = draw(st.integers(1, 2))
        for _ in range(draw(st.integers(1, 20))):
            t += draw(st.sampled_from([0, 0, 0, draw(st.integers(1, 900))])) * S  # a gap
            d = draw(st.integers(1, 3600)) * S
            s = draw(st.sampled_from(list(MachineState)))
            idx.append(m)
            starts.append(t)
            ends.append(t + d)
            states.append(int(s))
            reasons.append(draw(st.sampled_from(REASONS[s])))
            if s == MachineState.RUNNING:
                run_s = d / S
                at = 0.0
                while True:
                    need = IDEAL[prod] * qty + owed
                    slack = draw(st.sampled_from([0.0, 0.0, 5.0, 200.0]))
                    if at + need + slack > run_s:
                        owed = max(0.0, need - (run_s - at))
                        break
                    at += need + slack
                    owed = 0.0
                    good = draw(st.integers(0, qty))
                    p_idx.append(m)
                    p_ts.append(t + int(np.ceil(at * S)))
                    p_prod.append(prod)
                    p_good.append(good)
                    p_scrap.append(qty - good)
                    prod = draw(st.sampled_from(["a", "b"]))
                    qty = draw(st.integers(1, 2))
            t += d
        t_end = max(t_end, t)
    names = [f"m{i}" for i in range(n)]
    b = random_buckets(draw, t_end, 6)
    plan = None
    if draw(st.booleans()):
        pe = cut_edges(draw, t_end, 6)
        status = [draw(st.sampled_from(list(PlanStatus))) for _ in range(len(pe) - 1)]
        k = len(pe) - 1
        plan = Plan(
            tuple(names),
            np.repeat(np.arange(n, dtype=np.int32), k),
            np.tile(pe[:-1], n).astype(np.int64),
            np.tile(pe[1:], n).astype(np.int64),
            np.tile(np.array(status, dtype=np.uint8), n),
        )
    model = TimeModel(
        micro_stop_s=draw(st.sampled_from([0.0, 300.0])),
        startup_parts=draw(st.integers(0, 3)),
        cycle_window_s=1e6,  # longer than any spell here: the whole cycle is always found
    )
    return (
        StateBatch.build(names, idx, starts, ends, states, reasons),
        PartBatch.build(names, p_idx, p_ts, p_prod, p_good, p_scrap),
        b,
        plan,
        model,
    )


@settings(max_examples=120, deadline=None)
@given(consistent_day(), st.booleans())
def test_every_bucket_stays_within_zero_and_one(day: Day, by_product: bool) -> None:
    states, parts, b, plan, model = day
    ideal = {n: IDEAL for n in states.names}
    t = oee_table(states, parts, ideal, b, model, by_product=by_product, plan=plan)
    per_machine = t.group(lambda m, bk, p: (m, bk, ""))
    for table in (t, per_machine):
        for x in (table.availability, table.performance, table.quality, table.oee):
            ok = np.isfinite(x)
            assert np.all(x[ok] >= -1e-12) and np.all(x[ok] <= 1 + 1e-9), x[ok]
    c = t.columns
    waterfall = sum(c[k] for k in LOSSES) + c["fully_productive_s"]
    np.testing.assert_allclose(waterfall, c["planned_busy_s"], atol=1e-6)
    # the buckets add up to the whole range, column by column
    whole = oee_table(
        states,
        parts,
        ideal,
        Buckets.single(int(b.edges[0]), int(b.edges[-1])),
        model,
        by_product=by_product,
        plan=plan,
    )
    summed = t.group(lambda m, bk, p: (m, "all", p))
    want = {(m, p): i for i, (m, p) in enumerate(zip(whole.machine, whole.product, strict=True))}
    assert set(want) == set(zip(summed.machine, summed.product, strict=True))
    for k in (*TIME_COLUMNS, *COUNT_COLUMNS):
        for i, key in enumerate(zip(summed.machine, summed.product, strict=True)):
            assert abs(summed.columns[k][i] - whole.columns[k][want[key]]) < 1e-6, k

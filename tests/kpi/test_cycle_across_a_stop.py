"""A part whose cycle is cut by a long stop: its ideal time is spread over the running time
of its whole cycle, before and after the stop (issue 18's long run: the coating chamber's
part resumed after a 63-minute vacuum leak and its 15-minute bucket showed 150 %)."""

from __future__ import annotations

import numpy as np

from andon.kpi.oee import oee_table
from andon.kpi.timeline import Buckets
from andon.model.types import MachineState, PartBatch, StateBatch

S = 1_000_000
RUN, DOWN = int(MachineState.RUNNING), int(MachineState.DOWN)
STARVED = int(MachineState.STARVED)


def test_the_work_before_a_long_stop_counts_for_the_part() -> None:
    # the part started at 0 s, ran 83 s, stopped 3800 s, ran its last 160 s, then starved
    states = StateBatch.build(
        ["m"],
        [0, 0, 0, 0],
        [0, 83 * S, 3883 * S, 4043 * S],
        [83 * S, 3883 * S, 4043 * S, 4500 * S],
        [RUN, DOWN, RUN, STARVED],
        ["", "VACUUM_LEAK", "", ""],
    )
    parts = PartBatch.build(["m"], [0, 0], [0, 4043 * S], ["p", "p"], [1, 1], [0, 0])
    edges = np.arange(0, 4500 * S + 1, 900 * S, dtype=np.int64)
    buckets = Buckets(edges, tuple(str(int(e)) for e in edges[:-1]))
    t = oee_table(states, parts, {"m": {"p": 240.0}}, buckets)
    perf = {r["bucket"]: r["performance"] for r in t.rows() if r["performance"] is not None}
    assert all(p <= 1.0 for p in perf.values()), perf
    # the part's 240 s of ideal time is all there, split 83 : 160 over its running time
    total = float(t.col("net_operating_s").sum())
    assert abs(total - 240.0) < 1e-6
    first = next(r for r in t.rows() if r["bucket"] == "0")
    assert abs(first["net_operating_s"] - 240.0 * 83 / 243) < 1e-6

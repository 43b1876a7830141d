"""Bottleneck detection: the acceptance case (an unreliable upstream machine hides behind its
downtime, so utilisation names the wrong machine) and the same code on stored timelines."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import numpy as np

from andon.model.types import MachineState, StateBatch
from andon.store.duckdb_store import DuckDBStore
from andon.twin.bottleneck import analyse, timeline_batch
from andon.twin.experiment import speedup_gains
from andon.twin.reference import serial_plant
from andon.twin.run import TimelineRecorder, default_t0, run_events


def unreliable_first() -> object:
    return serial_plant(
        [40.0, 60.0, 50.0],
        [5, 5],
        mtbf_h=[0.15, None, None],
        mttr_min=[8.0, None, None],
        failure_basis="operating",
    )


def test_active_period_names_the_machine_whose_speed_up_helps_most_and_utilisation_does_not() -> (
    None
):
    plant = unreliable_first()
    rec = TimelineRecorder()
    hours = 300.0
    run_events(plant, "L", hours, seed=21, recorder=rec)  # type: ignore[arg-type]
    t0 = default_t0(plant)  # type: ignore[arg-type]
    batch = timeline_batch(rec.states, t0, hours * 3600, ["M1", "M2", "M3"])
    report = analyse(batch, t0, t0 + round(hours * 3.6e9))
    gains = speedup_gains(plant, "L", 1.1, 1000.0, 12, seed=22)  # type: ignore[arg-type]
    ranked = sorted(gains, key=lambda m: gains[m].mean, reverse=True)
    best, second = gains[ranked[0]], gains[ranked[1]]
    # the simulation's answer is clear: the best gain beats the runner-up beyond both intervals
    assert best.low > second.high
    assert report.average_bottleneck == ranked[0] == "M1"
    assert report.momentary_bottleneck == ranked[0]
    assert report.turning_point == ranked[0]
    # utilisation's wrong answer, shown beside it
    assert report.utilisation_bottleneck == "M2" != ranked[0]
    shown = report.as_dict()["bottleneck"]
    assert shown == {
        "active_period_average": "M1",
        "active_period_momentary": "M1",
        "turning_point": "M1",
        "utilisation": "M2",
    }
    # shares are shares of the analysed time
    for m in report.machines:
        assert 0.0 <= report.sole[m] + report.shifting[m] <= 1.0 + 1e-9
    total_sole = sum(report.sole.values())
    assert 0.0 < total_sole < 1.0


def test_momentary_bottleneck_and_shifting_on_a_hand_made_timeline() -> None:
    r, b, s = int(MachineState.RUNNING), int(MachineState.BLOCKED), int(MachineState.STARVED)
    # A active [0,7), B active [4,10): A (the longer period) is the bottleneck on [0,7),
    # then B; their periods overlap on [4,7), which is shifting for both.
    batch = StateBatch.build(["A", "B"], [0, 0, 1, 1], [0, 7, 0, 4], [7, 10, 4, 10], [r, b, s, r])
    rep = analyse(batch, 0, 10)
    assert rep.active == {"A": 0.7, "B": 0.6}
    assert math.isclose(rep.shifting["A"], 0.3) and math.isclose(rep.shifting["B"], 0.3)
    assert math.isclose(rep.sole["A"], 0.4) and math.isclose(rep.sole["B"], 0.3)
    assert math.isclose(rep.shifting_total, 0.3)


def test_the_same_code_reads_state_timelines_from_the_store(tmp_path: Path) -> None:
    plant = unreliable_first()
    rec = TimelineRecorder()
    hours = 50.0
    run_events(plant, "L", hours, seed=23, recorder=rec)  # type: ignore[arg-type]
    t0 = default_t0(plant)  # type: ignore[arg-type]
    paths = ["S/A/L/M1", "S/A/L/M2", "S/A/L/M3"]
    sim = timeline_batch(rec.states, t0, hours * 3600, ["M1", "M2", "M3"])
    stored = StateBatch.build(paths, sim.index, sim.start, sim.end, sim.state)
    end = t0 + round(hours * 3.6e9)

    async def roundtrip() -> StateBatch:
        store = DuckDBStore.open(tmp_path / "t.duckdb")
        try:
            await store.append_states("t", stored)
            return await store.read_states("t", paths, t0, end)
        finally:
            await store.close()

    back = asyncio.run(roundtrip())
    a = analyse(sim, t0, end)
    b = analyse(back, t0, end, paths)
    assert [a.active[m] for m in a.machines] == [b.active[p] for p in paths]
    assert [a.sole[m] for m in a.machines] == [b.sole[p] for p in paths]


def test_sole_and_shifting_shares_add_up_to_the_time_with_a_bottleneck() -> None:
    # Random three-machine timelines: every instant with an active machine is either one
    # machine's sole bottleneck time or shifting time, never both, so the line page's stacked
    # bars (sole per machine plus shifting) never pass 100 % (they stacked to ~155 % when each
    # machine's bar was sole + shifting, counting every overlap twice).
    rng = np.random.default_rng(5)
    for _ in range(200):
        idx, start, end, code = [], [], [], []
        for i in range(3):
            t = 0
            while t < 1000:
                d = int(rng.integers(5, 120))
                idx.append(i)
                start.append(t)
                end.append(min(1000, t + d))
                code.append(int(rng.choice([0, 0, 1, 2, 3])))
                t += d
        batch = StateBatch.build(["A", "B", "C"], idx, start, end, code)
        a, z = int(rng.integers(0, 300)), int(rng.integers(600, 1000))
        rep = analyse(batch, a, z)
        covered = np.zeros(z - a, dtype=bool)
        for s0, e0, c in zip(start, end, code, strict=True):
            if MachineState(c) in (MachineState.RUNNING, MachineState.DOWN):
                covered[max(0, s0 - a) : max(0, min(z, e0) - a)] = True
        total = sum(rep.sole.values()) + rep.shifting_total
        assert math.isclose(total, covered.mean(), abs_tol=1e-9), (total, covered.mean())
        assert rep.shifting_total <= 0.5 * sum(rep.shifting.values()) + 1e-9

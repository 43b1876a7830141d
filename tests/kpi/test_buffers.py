"""Buffer levels derived from the part counts and states of the machines on either side
(``andon.kpi.buffers``): a hand case, and the virtual factory's true levels over a working
day of the demo plant, sampled every five minutes."""

from __future__ import annotations

from collections.abc import Sequence
from importlib.resources import files

import numpy as np
import pytest

from andon.demo.run import default_start
from andon.kpi.api import with_open_states
from andon.kpi.buffers import buffer_levels, line_buffers
from andon.model.loader import parse_plant
from andon.model.types import MachineState, PartBatch, StateBatch
from andon.sim.factory import VirtualFactory
from andon.twin.calibrate import fit_line

PLANT = parse_plant((files("andon.sim") / "plants" / "demo.yaml").read_text(encoding="utf-8"))
S = 1_000_000
R, ST, BL, DN = (
    int(x)
    for x in (MachineState.RUNNING, MachineState.STARVED, MachineState.BLOCKED, MachineState.DOWN)
)


def _names(bs: Sequence[StateBatch] | Sequence[PartBatch]) -> tuple[list[str], list[int]]:
    """The batches' names merged (sorted) and each row's index into them, in batch order."""
    names = sorted({n for b in bs for n in b.names})
    pos = {n: i for i, n in enumerate(names)}
    return names, [pos[b.names[i]] for b in bs for i in b.index.tolist()]


def _states(bs: Sequence[StateBatch]) -> StateBatch:
    return StateBatch.build(
        *_names(bs),
        np.concatenate([b.start for b in bs]),
        np.concatenate([b.end for b in bs]),
        np.concatenate([b.state for b in bs]),
        [r for b in bs for r in b.reason],
    )


def _parts(bs: Sequence[PartBatch]) -> PartBatch:
    return PartBatch.build(
        *_names(bs),
        np.concatenate([b.ts for b in bs]),
        [p for b in bs for p in b.product],
        np.concatenate([b.good for b in bs]),
        np.concatenate([b.scrap for b in bs]),
    )


L2 = f"{PLANT.site.id}/joining/L2"
RB, FSW = f"{L2}/RB-01", f"{L2}/FSW-01"


def test_counted_from_the_last_moment_the_consumer_starved() -> None:
    # FSW-01 starves at 100 s (B3 empty), RB-01 then puts 3 good parts, FSW-01 takes two
    # (finishing one, working on the second at 200 s)
    states = StateBatch.build(
        [RB, FSW],
        [0, 1, 1, 1],
        [0, 0, 100 * S, 130 * S],
        [200 * S, 100 * S, 130 * S, 200 * S],
        [R, R, ST, R],
    )
    parts = PartBatch.build(
        [RB, FSW],
        [0, 0, 0, 1, 1],
        [120 * S, 150 * S, 180 * S, 90 * S, 170 * S],
        ["p"] * 5,
        [1, 1, 1, 1, 1],
        [0, 0, 0, 0, 0],
    )
    (b3,) = buffer_levels(PLANT, L2, states, parts, 199 * S)
    assert (b3.level, b3.source, b3.anchor) == (3 - 2, "empty", 100 * S)
    assert b3.buffer == f"{L2}/B3" and b3.capacity == 5


def test_counted_from_the_last_moment_the_producer_was_blocked_and_clipped() -> None:
    # RB-01 blocked at 50 s (B3 full: 5) holding a part; FSW-01 finishes 2 parts and is down
    # with a third inside; RB-01 put its held part at 60 s and is running again
    states = StateBatch.build(
        [RB, FSW],
        [0, 0, 0, 1, 1],
        [0, 50 * S, 60 * S, 0, 150 * S],
        [50 * S, 60 * S, 300 * S, 150 * S, 300 * S],
        [R, BL, R, R, DN],
    )
    parts = PartBatch.build(
        [RB, FSW], [0, 1, 1], [50 * S, 60 * S, 140 * S], ["p"] * 3, [1, 1, 0], [0, 0, 1]
    )
    (b3,) = buffer_levels(PLANT, L2, states, parts, 299 * S)
    # 5 at 50 s, FSW-01 working on a part then too; +1 held part put; FSW-01 took 2 (one
    # finished at 60 s, the next finished as scrap at 140 s) and a third, inside it while down
    assert (b3.level, b3.source) == (5 + 1 - 2 - (1 - 1), "full")
    # with no empty or full moment, only a known start of the history gives a level
    calm = StateBatch.build([RB, FSW], [0, 1], [0, 0], [300 * S, 300 * S], [R, R])
    assert buffer_levels(PLANT, L2, calm, parts, 299 * S) == []
    (b3,) = buffer_levels(PLANT, L2, calm, parts, 299 * S, history_start=0)
    # initial 0, +1 good from RB-01 (the one at 50 s), -2 FSW-01, -1 in work: clipped at 0
    assert (b3.level, b3.source) == (0, "initial")


def test_a_line_path_that_is_not_a_line_is_named() -> None:
    with pytest.raises(ValueError, match="line: 'x/y/z' is not a line"):
        line_buffers(PLANT, "x/y/z")


def test_levels_follow_the_virtual_factorys_true_levels_through_a_day() -> None:
    """Every five minutes of a 14-hour day (two shifts, breaks, failures, changeovers) the
    derived level of each demo buffer is within one part of the truth, and exact at least
    nine times in ten. The residual: a machine whose cycle runs into a break or maintenance
    window is taken to still hold its part."""
    t0 = default_start(PLANT)
    vf = VirtualFactory(PLANT, 7, t0, window_s=60.0)
    states: list[StateBatch] = []
    parts: list[PartBatch] = []
    errors: dict[str, list[int]] = {}
    for k in range(1, 14 * 12 + 1):
        t = k * 300.0
        flushes = vf.advance(t)
        states += [f.states for f in flushes]
        parts += [f.parts for f in flushes]
        at = t0 + int(t * 1e6)
        live = with_open_states(_states(states), flushes[-1].open_states, t0, at)
        pt = _parts(parts)
        for a, ln in PLANT.lines():
            for b in buffer_levels(PLANT, f"{PLANT.site.id}/{a.id}/{ln.id}", live, pt, at):
                true = len(vf.model.buffers[b.buffer].items)
                assert 0 <= true <= b.capacity
                errors.setdefault(b.buffer, []).append(b.level - true)
    assert sorted(errors) == sorted(vf.model.buffers)
    for name, e in errors.items():
        d = np.abs(np.array(e))
        assert len(d) == 14 * 12, name  # a level at every sample: empty/full moments abound
        assert d.max() <= 1, (name, e)
        assert (d == 0).mean() >= 0.9, (name, (d == 0).mean())


def test_twin_calibration_starts_each_buffer_at_its_level_at_the_end_of_the_history() -> None:
    t0 = default_start(PLANT)
    vf = VirtualFactory(PLANT, 11, t0, window_s=600.0)
    flushes = vf.advance(3 * 3600.0)
    truth = {name: len(b.items) for name, b in vf.model.buffers.items()}
    flushes.append(vf.finish())  # closes the intervals going on at the end
    end = t0 + 3 * 3_600_000_000
    states, parts = _states([f.states for f in flushes]), _parts([f.parts for f in flushes])
    for a, ln in PLANT.lines():
        if not ln.buffers:
            continue
        cal = fit_line(PLANT, ln.id, states, parts, t0, end)
        (twin_line,) = [x for _, x in cal.plant.lines()]
        for b in twin_line.buffers:
            path = f"{PLANT.site.id}/{a.id}/{ln.id}/{b.id}"
            rep = cal.report["buffers"][b.id]
            assert b.initial == rep["initial"] and rep["initial_source"] in ("empty", "full")
            assert abs(b.initial - truth[path]) <= 1, (path, b.initial, truth[path])

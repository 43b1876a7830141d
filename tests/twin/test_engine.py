"""Engine features: the fast path agrees with the general model and with SimPy; failure
basis; cycle- and repair-time distributions; the repair crew; parallel machines;
determinism."""

from __future__ import annotations

import importlib.util
import itertools
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest
import yaml

from andon.model.loader import parse_plant
from andon.model.plant import Plant
from andon.model.types import MachineState
from andon.twin.fast import draw_cycles, draw_many, run_serial, serial_line
from andon.twin.line import FactoryModel, MachineRuntime, draw_cycle, draw_duration
from andon.twin.reference import REFERENCE_CYCLE_MIN, reference_plant, serial_plant
from andon.twin.run import TimelineRecorder, default_t0, estimate, replicate, run_events
from tests.plants import two_machines


def _load_simpy_line() -> Callable[..., tuple[int, int]]:
    """The SimPy peer lives with the benchmark (SimPy is a dev dependency only)."""
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "twin_vs_simpy.py"
    spec = importlib.util.spec_from_file_location("_twin_vs_simpy", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return cast("Callable[..., tuple[int, int]]", module.simpy_line)


simpy_line = _load_simpy_line()


def agree(a: list[float], b: list[float], level: float = 0.95) -> None:
    ea, eb = estimate(a, level), estimate(b, level)
    assert abs(ea.mean - eb.mean) <= math.hypot(ea.half_width, eb.half_width), (ea, eb)


def test_fast_path_event_model_and_simpy_agree_on_the_reference_line() -> None:
    plant = reference_plant()
    minutes = 20_000.0
    fast = replicate(plant, "L", minutes / 60, 10, seed=31, engine="fast")
    events = replicate(plant, "L", minutes / 60, 5, seed=31, engine="events")
    assert fast.runs[0].engine == "fast" and events.runs[0].engine == "events"
    sp = [
        simpy_line(REFERENCE_CYCLE_MIN, 5, 100.0, 5.0, minutes, 40 + r)[0] / minutes * 60
        for r in range(5)
    ]
    # eleven comparisons: Bonferroni, each at 99.5 %
    level = 0.995
    tf = [r.throughput_per_h for r in fast.runs]
    agree(tf, [r.throughput_per_h for r in events.runs], level)
    agree(tf, sp, level)
    # time shares agree too; calendar-time failures while blocked or starved count as down
    for m in ("M1", "M3", "M5"):
        for share in ("running", "down", "blocked"):
            a = [getattr(r, share)[m] for r in fast.runs]
            agree(a, [getattr(r, share)[m] for r in events.runs], level)


def test_failure_basis_is_an_explicit_setting_that_changes_throughput() -> None:
    kw: dict[str, Any] = {"mtbf_h": [100 / 60] * 3, "mttr_min": [5.0] * 3}
    cal = serial_plant([60.0, 66.0, 54.0], [5, 5], failure_basis="calendar", **kw)
    op = serial_plant([60.0, 66.0, 54.0], [5, 5], failure_basis="operating", **kw)
    a = replicate(cal, "L", 2000.0, 10, seed=32)
    b = replicate(op, "L", 2000.0, 10, seed=32)
    # operating-time failures only accrue while a cycle runs: fewer stops, more output
    assert b.throughput().low > a.throughput().high
    # and in calendar time a machine fails while waiting, which operating time never does
    for plant, expect in ((cal, True), (op, False)):
        rec = TimelineRecorder()
        run_events(plant, "L", 200.0, 33, recorder=rec)
        pts = rec.states["M3"]
        idle_fail = any(
            s0 in (MachineState.STARVED, MachineState.BLOCKED) and s1 == MachineState.DOWN
            for (_, s0), (_, s1) in itertools.pairwise(pts)
        )
        assert idle_fail is expect


@pytest.mark.parametrize(
    ("dist", "cv", "empirical"),
    [
        ("deterministic", 0.4, ()),
        ("exponential", 1.0, ()),
        ("lognormal", 0.4, ()),
        ("gamma", 0.4, ()),
        ("empirical", 0.0, (0.5, 1.0, 1.5, 3.0)),
    ],
)
def test_duration_distributions_have_their_mean_and_spread(
    dist: Any, cv: float, empirical: tuple[float, ...]
) -> None:
    n = 40_000
    rng = np.random.default_rng(34)
    one = np.array([draw_duration(rng, dist, 10.0, cv, empirical) for _ in range(n)])
    many = draw_many(np.random.default_rng(35), dist, np.full(n, 10.0), cv, empirical)
    if empirical:
        e = np.asarray(empirical)
        cv = float(e.std() / e.mean())
        assert set(np.round(one, 9)) == set(np.round(e / e.mean() * 10.0, 9))
    want_cv = 0.0 if dist == "deterministic" else (1.0 if dist == "exponential" else cv)
    for x in (one, many):
        assert x.mean() == pytest.approx(10.0, abs=4 * 10.0 * want_cv / math.sqrt(n) + 1e-9)
        assert x.std() / x.mean() == pytest.approx(want_cv, abs=0.02)


@pytest.mark.parametrize("dist", ["lognormal", "gamma"])
def test_cycles_never_beat_the_ideal_and_keep_the_configured_mean_and_spread(dist: Any) -> None:
    """Decision 0506: ideal + excess, in the event engine and the fast path alike."""
    n, ideal, speed_loss, cv = 400_000, 40.0, 0.05, 0.1
    rng = np.random.default_rng(39)
    one = np.array([draw_cycle(rng, dist, ideal, speed_loss, cv) for _ in range(n)])
    many = draw_cycles(np.random.default_rng(40), dist, np.full(n, ideal), speed_loss, cv)
    mean = ideal * (1 + speed_loss)
    for x in (one, many):
        assert x.min() >= ideal
        assert x.mean() == pytest.approx(mean, abs=4 * cv * mean / math.sqrt(n))
        assert x.std() / x.mean() == pytest.approx(cv, abs=0.01)
    # the same stream gives the same cycles whichever engine draws them
    rng = np.random.default_rng(41)
    a = [draw_cycle(rng, dist, ideal, speed_loss, cv) for _ in range(50)]
    b = draw_cycles(np.random.default_rng(41), dist, np.full(50, ideal), speed_loss, cv)
    assert a == pytest.approx(b.tolist(), rel=1e-12)


def test_the_fast_path_s_cycles_have_the_ideal_as_floor() -> None:
    sim: dict[str, Any] = {
        "cycle_dist": "gamma",
        "cycle_cv": 0.3,
        "speed_loss": 0.05,
        "quality": {"scrap_base": 0.0, "scrap_wear_gain": 0.0},
    }
    line, why = serial_line(two_machines(3, sim, sim), "l")
    assert line is not None, why
    specs = [(s.ideal_cycle_s, s.speed_loss) for s in line.machines]
    assert specs == [((50.0,), 0.05), ((60.0,), 0.05)]
    res = run_serial(line, 100.0, seed=44)
    # the last machine is never blocked and never fails: load to departure is its cycle
    cycle = res.depart[-1] - res.load[-1]
    assert len(cycle) > 5000
    assert cycle.min() >= 60.0 - 1e-6
    assert cycle.mean() == pytest.approx(63.0, rel=4 * 0.3 / math.sqrt(len(cycle)))


@pytest.mark.parametrize(
    ("dist", "speed_loss", "cv"),
    [("lognormal", 0.0, 0.1), ("gamma", 0.05, 0.0), ("exponential", 0.05, 1.0)],
)
def test_without_a_speed_loss_or_a_spread_cycles_vary_around_their_mean(
    dist: Any, speed_loss: float, cv: float
) -> None:
    """No floor: these cycles are drawn exactly as before decision 0506 (bit for bit)."""
    mean = 40.0 * (1.0 + speed_loss)
    rng_a, rng_b = np.random.default_rng(42), np.random.default_rng(42)
    a = [draw_cycle(rng_a, dist, 40.0, speed_loss, cv) for _ in range(200)]
    b = [draw_duration(rng_b, dist, mean, cv) for _ in range(200)]
    assert a == b
    many = draw_cycles(np.random.default_rng(43), dist, np.full(200, 40.0), speed_loss, cv)
    old = draw_many(np.random.default_rng(43), dist, np.full(200, mean), cv)
    assert np.array_equal(many, old)


def test_cycle_distribution_reaches_the_line_model() -> None:
    plant = serial_plant([30.0], [], cycle_dist="gamma", cycle_cv=0.5)
    seen: list[float] = []

    class Cycles(TimelineRecorder):
        def on_part(
            self, m: MachineRuntime, t: float, product: str, good: bool, cycle_s: float
        ) -> None:
            seen.append(cycle_s)

    run_events(plant, "L", 200.0, 36, recorder=Cycles())
    x = np.array(seen)
    assert x.mean() == pytest.approx(30.0, rel=0.03)
    assert x.std() / x.mean() == pytest.approx(0.5, abs=0.03)


def test_a_repair_crew_of_one_repairs_one_machine_at_a_time() -> None:
    kw: dict[str, Any] = {
        "mtbf_h": [0.5] * 3,
        "mttr_min": [10.0] * 3,
        "ttr_dist": "deterministic",
        "failure_basis": "calendar",
    }
    ends: dict[str, list[float]] = {}
    tps = {}
    for crew in (None, 1):
        plant = serial_plant([60.0, 60.0, 60.0], [3, 3], repair_crew=crew, **kw)
        rec = TimelineRecorder()
        tps[crew] = run_events(plant, "L", 300.0, 37, recorder=rec).throughput_per_h
        done = sorted(
            t1
            for pts in rec.states.values()
            for (_, s0), (t1, _) in itertools.pairwise(pts)
            if s0 == MachineState.DOWN
        )
        ends[str(crew)] = list(np.diff(done))
    assert min(ends["1"]) >= 600.0 - 1e-6  # one repairer: completions at least a repair apart
    assert min(ends["None"]) < 600.0  # unlimited: repairs overlap
    assert tps[1] < tps[None]
    assert serial_line(serial_plant([60.0, 60.0], [3], repair_crew=1), "L")[0] is None


def parallel_plant() -> Plant:
    machine = {
        "type": "generic",
        "sim": {"cycle_cv": 0.0, "quality": {"scrap_base": 0.0, "scrap_wear_gain": 0.0}},
    }
    doc = {
        "tenant": "t",
        "site": {
            "id": "S",
            "calendar": {"shifts": [{"name": "all", "start": "00:00", "end": "00:00"}]},
            "areas": [
                {
                    "id": "A",
                    "lines": [
                        {
                            "id": "L",
                            "products": [{"id": "p"}],
                            "buffers": [
                                {"id": "B1", "capacity": 4, "from": ["M1"], "to": ["M2a", "M2b"]},
                                {"id": "B2", "capacity": 4, "from": ["M2a", "M2b"], "to": ["M3"]},
                            ],
                            "machines": [
                                {**machine, "id": "M1", "ideal_cycle_s": {"p": 40.0}},
                                {**machine, "id": "M2a", "ideal_cycle_s": {"p": 100.0}},
                                {**machine, "id": "M2b", "ideal_cycle_s": {"p": 100.0}},
                                {**machine, "id": "M3", "ideal_cycle_s": {"p": 45.0}},
                            ],
                        }
                    ],
                }
            ],
        },
    }
    return parse_plant(yaml.safe_dump(doc), "<test>")


def test_parallel_machines_split_and_merge_through_shared_buffers() -> None:
    plant = parallel_plant()
    line, why = serial_line(plant, "L")
    assert line is None and "chain" in why
    rep = replicate(plant, "L", 100.0, 1, seed=38, warmup_h=1.0)
    assert rep.runs[0].engine == "events"
    # two 100 s machines in parallel pace the line at one part per 50 s (speed loss 3 %)
    assert rep.runs[0].throughput_per_h == pytest.approx(3600 / 103.0 * 2, rel=0.01)


def test_runs_are_deterministic_and_scenarios_share_random_numbers() -> None:
    plant = reference_plant()
    a = replicate(plant, "L", 500.0, 3, seed=39)
    b = replicate(plant, "L", 500.0, 3, seed=39)
    assert [r.parts for r in a.runs] == [r.parts for r in b.runs]
    line, _ = serial_line(plant, "L")
    assert line is not None
    x = run_serial(line, 500.0, 39, 0)
    assert x.parts == a.runs[0].parts
    ev1 = run_events(plant, "L", 50.0, 39)
    ev2 = run_events(plant, "L", 50.0, 39)
    assert ev1.parts == ev2.parts and ev1.running == ev2.running


def test_operating_basis_line_model_is_unchanged_for_the_virtual_factory() -> None:
    # the defaults keep decision 0002: failures only while running, lognormal everything
    plant = serial_plant(
        [60.0],
        [],
        cycle_dist="lognormal",
        cycle_cv=0.1,
        mtbf_h=[1.0],
        mttr_min=[5.0],
        failure_basis="operating",
    )
    model = FactoryModel(plant, 1, default_t0(plant))
    model.run(3600.0 * 50)
    model.close()
    m = model.machines[0]
    assert not m.calendar_failures and m.crew is None
    assert m.durations[MachineState.DOWN] > 0


def test_fast_path_and_event_model_agree_across_features() -> None:
    # gamma cycles, two failure modes with lognormal and gamma repairs in operating time,
    # a product mix without changeovers: both solvers, same statistics
    base = serial_plant(
        [50.0, 55.0, 45.0], [3, 2], cycle_dist="gamma", cycle_cv=0.6, failure_basis="operating"
    )
    doc = base.model_dump(by_alias=True, mode="json")
    line = doc["site"]["areas"][0]["lines"][0]
    line["products"] = [{"id": "p", "lot_size": 7}, {"id": "q", "lot_size": 3}]
    for m, k in zip(line["machines"], (1.0, 1.2, 0.8), strict=True):
        m["ideal_cycle_s"]["q"] = m["ideal_cycle_s"]["p"] * 1.3
        m["sim"]["failure_modes"] = [
            {"code": "A", "mtbf_h": 1.0 * k, "mttr_min": 4.0, "ttr_cv": 0.8},
            {"code": "B", "mtbf_h": 5.0 * k, "mttr_min": 15.0, "ttr_dist": "gamma", "ttr_cv": 0.5},
        ]
    plant = Plant.model_validate(doc)
    fast = replicate(plant, "L", 1000.0, 10, seed=61, engine="fast")
    events = replicate(plant, "L", 150.0, 10, seed=61, engine="events")
    # seven comparisons: Bonferroni, each at 99.5 % for a family level of about 96.5 %
    level = 0.995
    tp = [r.throughput_per_h for r in events.runs]
    agree([r.throughput_per_h for r in fast.runs], tp, level)
    for m in ("M1", "M2", "M3"):
        agree([r.down[m] for r in fast.runs], [r.down[m] for r in events.runs], level)
        agree([r.blocked[m] for r in fast.runs], [r.blocked[m] for r in events.runs], level)


def test_rework_sends_a_share_of_bad_parts_round_the_machine_again() -> None:
    doc = serial_plant([60.0], [], cycle_dist="deterministic").model_dump(
        by_alias=True, mode="json"
    )
    m = doc["site"]["areas"][0]["lines"][0]["machines"][0]
    m["sim"]["quality"] = {"scrap_base": 0.2, "scrap_wear_gain": 0.0, "rework": 0.5}
    plant = Plant.model_validate(doc)
    assert serial_line(plant, "L")[0] is None  # bad parts: the event model
    model = FactoryModel(plant, 71, default_t0(plant))
    model.run(200 * 3600.0)
    rt = model.machines[0]
    cycles = 200 * 60  # constant 60 s cycles, never idle
    assert abs(rt.good + rt.scrap + rt.reworked - cycles) <= 1
    for count, p in ((rt.good, 0.8), (rt.scrap, 0.1), (rt.reworked, 0.1)):
        sd = math.sqrt(cycles * p * (1 - p))
        assert abs(count - cycles * p) < 4 * sd


def flow_plant(
    machines: dict[str, float], buffers: list[tuple[str, list[str], list[str]]]
) -> Plant:
    sim = {
        "cycle_cv": 0.0,
        "speed_loss": 0.0,
        "quality": {"scrap_base": 0.0, "scrap_wear_gain": 0.0},
    }
    doc = {
        "tenant": "t",
        "site": {
            "id": "S",
            "calendar": {"shifts": [{"name": "all", "start": "00:00", "end": "00:00"}]},
            "areas": [
                {
                    "id": "A",
                    "lines": [
                        {
                            "id": "L",
                            "products": [{"id": "p"}],
                            "buffers": [
                                {"id": b, "capacity": 3, "from": f, "to": t} for b, f, t in buffers
                            ],
                            "machines": [
                                {"id": m, "type": "generic", "ideal_cycle_s": {"p": c}, "sim": sim}
                                for m, c in machines.items()
                            ],
                        }
                    ],
                }
            ],
        },
    }
    return Plant.model_validate(doc)


def test_assembly_takes_one_part_from_each_input_buffer() -> None:
    plant = flow_plant(
        {"M1": 30.0, "M2": 45.0, "M3": 20.0},
        [("B1", ["M1"], ["M3"]), ("B2", ["M2"], ["M3"])],
    )
    rec = TimelineRecorder()
    run_events(plant, "L", 10.0, 81, recorder=rec)
    made = {m: len(v) for m, v in rec.parts.items()}
    # the slower feeder paces the assembly; the faster one is blocked
    assert made["M3"] == pytest.approx(10 * 3600 / 45, abs=2)
    assert made["M1"] <= made["M3"] + 3 + 1  # a buffer and a held part ahead, no more
    assert any(s == MachineState.BLOCKED for _, s in rec.states["M1"])


def test_split_fills_the_first_output_buffer_with_space() -> None:
    plant = flow_plant(
        {"M1": 20.0, "M2": 50.0, "M3": 50.0},
        [("B1", ["M1"], ["M2"]), ("B2", ["M1"], ["M3"])],
    )
    rep = run_events(plant, "L", 10.0, 82)
    # both branches run flat out: two parts per 50 s leave the line
    assert rep.throughput_per_h == pytest.approx(2 * 3600 / 50, rel=0.01)
    assert rep.running["M2"] == pytest.approx(1.0, abs=0.01)
    assert rep.running["M3"] == pytest.approx(1.0, abs=0.01)


def test_replications_in_worker_processes_are_the_same_runs() -> None:
    plant = parallel_plant()
    one = replicate(plant, "L", 20.0, 3, seed=91)
    two = replicate(plant, "L", 20.0, 3, seed=91, workers=2)
    assert [r.parts for r in one.runs] == [r.parts for r in two.runs]
    assert [r.running for r in one.runs] == [r.running for r in two.runs]

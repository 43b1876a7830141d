"""The twin against exact results, within the 95 % confidence interval over replications,
on both engines (the compiled serial fast path and the general event model).

Queues are built from the line model itself: an arrival machine with exponential cycle
times feeds a buffer too large ever to fill, so it is a Poisson source."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from andon.model.plant import Plant
from andon.twin.fast import run_serial, serial_line
from andon.twin.reference import serial_plant
from andon.twin.run import TimelineRecorder, estimate, run_events

ENGINES = ["fast", "events"]
HUGE = 1_000_000


def sojourns(
    plant: Plant, engine: str, hours: float, seed: int, rep: int
) -> tuple[np.ndarray, np.ndarray, float]:
    """Arrival (first machine's departures) and departure times of the last machine."""
    horizon = hours * 3600.0
    if engine == "fast":
        line, why = serial_line(plant, "L")
        assert line is not None, why
        res = run_serial(line, hours, seed, rep)
        return res.depart[0], res.depart[-1], horizon
    rec = TimelineRecorder()
    run_events(plant, "L", hours, seed, rep, recorder=rec)
    ids = sorted(rec.parts)
    arr = np.array([t for t, _ in rec.parts[ids[0]]])
    dep = np.array([t for t, _ in rec.parts[ids[-1]]])
    return arr, dep, horizon


def queue_figures(arr: np.ndarray, dep: np.ndarray, horizon: float) -> tuple[float, float, float]:
    """Throughput (per s), time-average number in system L, mean sojourn W."""
    arr = arr[arr < horizon]
    n = len(dep[dep < horizon])
    ends = np.full(len(arr), horizon)
    k = min(len(arr), len(dep))
    ends[:k] = np.minimum(dep[:k], horizon)
    in_system = float(np.sum(ends - arr)) / horizon
    done = dep[:k] < horizon
    w = float(np.mean(dep[:k][done] - arr[:k][done]))
    return n / horizon, in_system, w


def replicate_figures(
    make: Callable[[], Plant], engine: str, hours: float, reps: int, seed: int
) -> list[tuple[float, float, float]]:
    plant = make()
    return [queue_figures(*sojourns(plant, engine, hours, seed, r)) for r in range(reps)]


def check(figures: list[tuple[float, float, float]], exact: tuple[float, float, float]) -> None:
    for j, name in enumerate(("throughput", "L", "W")):
        est = estimate([f[j] for f in figures])
        assert est.contains(exact[j]), f"{name}: exact {exact[j]:.6g} not in {est}"
        assert est.half_width < 0.05 * exact[j], f"{name}: interval too wide to mean much"


RUNS = {"fast": (2000.0, 20), "events": (150.0, 12)}


@pytest.mark.parametrize("engine", ENGINES)
def test_mm1_throughput_l_and_w(engine: str) -> None:
    lam, mu = 1 / 60.0, 1 / 42.0
    rho = lam / mu
    exact = (lam, rho / (1 - rho), 1 / (mu - lam))
    hours, reps = RUNS[engine]
    figs = replicate_figures(
        lambda: serial_plant([60.0, 42.0], [HUGE]), engine, hours, reps, seed=11
    )
    check(figs, exact)


@pytest.mark.parametrize("engine", ENGINES)
def test_tandem_with_infinite_buffer_matches_jackson(engine: str) -> None:
    lam, mu1, mu2 = 1 / 60.0, 1 / 40.0, 1 / 45.0
    r1, r2 = lam / mu1, lam / mu2
    big_l = r1 / (1 - r1) + r2 / (1 - r2)
    hours, reps = RUNS[engine]
    figs = replicate_figures(
        lambda: serial_plant([60.0, 40.0, 45.0], [HUGE, HUGE]), engine, hours, reps, seed=12
    )
    check(figs, (lam, big_l, big_l / lam))


@pytest.mark.parametrize("engine", ENGINES)
def test_mm1_with_operation_dependent_breakdowns_matches_pollaczek_khinchine(
    engine: str,
) -> None:
    lam, es, f, er = 1 / 60.0, 30.0, 1 / 600.0, 60.0
    er2 = 2 * er * er  # exponential repair
    ec = es * (1 + f * er)  # completion time, preempt-resume
    var_c = es * es * (1 + f * er) ** 2 + es * f * er2
    ec2 = var_c + ec * ec
    rho = lam * ec
    w = lam * ec2 / (2 * (1 - rho)) + ec
    hours, reps = RUNS[engine]

    def make() -> Plant:
        return serial_plant(
            [60.0, es],
            [HUGE],
            mtbf_h=[None, 1 / f / 3600.0],
            mttr_min=[None, er / 60.0],
            failure_basis="operating",
        )

    check(replicate_figures(make, engine, hours, reps, seed=13), (lam, lam * w, w))


def two_machine_ctmc(
    c: tuple[float, float], b: int, mtbf: tuple[float, float], mttr: tuple[float, float]
) -> float:
    """Exact throughput (parts/s) of two unreliable machines with exponential cycle times,
    calendar-time exponential failures and repairs, and a buffer of ``b`` between them,
    blocking after service; a failed machine loads nothing, a finished part leaves a failed
    machine when there is space. State: (buffer, m1 empty/processing/holding, m2
    empty/processing, m1 up, m2 up)."""
    mu = (1 / c[0], 1 / c[1])
    fail = (1 / mtbf[0], 1 / mtbf[1])
    rep = (1 / mttr[0], 1 / mttr[1])

    def settle(s: tuple[int, int, int, int, int]) -> tuple[int, int, int, int, int]:
        k, s1, s2, u1, u2 = s
        while True:
            before = (k, s1, s2)
            if s2 == 0 and u2 and k > 0:
                k, s2 = k - 1, 1
            if s1 == 2 and k < b:
                k, s1 = k + 1, 0
            if s1 == 0 and u1:
                s1 = 1
            if (k, s1, s2) == before:
                return (k, s1, s2, u1, u2)

    def moves(s: tuple[int, int, int, int, int]) -> list[tuple[float, tuple[int, ...]]]:
        k, s1, s2, u1, u2 = s
        out: list[tuple[float, tuple[int, ...]]] = []
        if s1 == 1 and u1:
            out.append((mu[0], settle((k, 2, s2, u1, u2))))
        if s2 == 1 and u2:
            out.append((mu[1], settle((k, s1, 0, u1, u2))))
        out.append((fail[0], (k, s1, s2, 0, u2)) if u1 else (rep[0], settle((k, s1, s2, 1, u2))))
        out.append((fail[1], (k, s1, s2, u1, 0)) if u2 else (rep[1], settle((k, s1, s2, u1, 1))))
        return out

    start = settle((0, 0, 0, 1, 1))
    index: dict[tuple[int, ...], int] = {start: 0}
    todo = [start]
    edges: list[tuple[int, int, float]] = []
    while todo:
        s = todo.pop()
        for rate, nxt in moves(s):
            if nxt not in index:
                index[nxt] = len(index)
                todo.append(nxt)  # type: ignore[arg-type]
            edges.append((index[s], index[nxt], rate))
    n = len(index)
    q = np.zeros((n, n))
    for i, j, rate in edges:
        if i != j:
            q[i, j] += rate
            q[i, i] -= rate
    a = np.vstack([q.T, np.ones(n)])
    rhs = np.zeros(n + 1)
    rhs[-1] = 1.0
    pi = np.linalg.lstsq(a, rhs, rcond=None)[0]
    assert np.allclose(pi @ q, 0.0, atol=1e-12)
    return float(sum(pi[i] * mu[1] for s, i in index.items() if s[2] == 1 and s[4] == 1))


@pytest.mark.parametrize("engine", ENGINES)
def test_two_unreliable_machines_with_finite_buffer_match_markov_chain(engine: str) -> None:
    c, b, mtbf_h, mttr_min = (55.0, 60.0), 3, (1.0, 1.5), (8.0, 10.0)
    exact = two_machine_ctmc(
        c, b, (mtbf_h[0] * 3600, mtbf_h[1] * 3600), (mttr_min[0] * 60, mttr_min[1] * 60)
    )
    plant = serial_plant(list(c), [b], mtbf_h=list(mtbf_h), mttr_min=list(mttr_min))
    hours, reps = {"fast": (3000.0, 20), "events": (300.0, 12)}[engine]
    tps = [queue_figures(*sojourns(plant, engine, hours, 14, r))[0] for r in range(reps)]
    est = estimate(tps)
    assert est.contains(exact), f"exact {exact:.6g} not in {est}"
    assert est.half_width < 0.02 * exact
    # the buffer matters: without blocking and starving the line would run at the slower
    # machine's available rate
    avail2 = mtbf_h[1] * 60 / (mtbf_h[1] * 60 + mttr_min[1])
    assert exact < avail2 / c[1] * 0.97

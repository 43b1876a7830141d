"""Running a line of a plant: replications on the fast path or the event engine.

``replicate`` runs ``reps`` independent replications of one line and returns each
replication's figures plus confidence intervals. Replication ``r`` of seed ``s`` uses the
same random streams for the same machine position in every scenario of the same line, so
scenario differences are measured with common random numbers (see ``experiment``).

``engine="auto"`` takes the compiled fast path (:mod:`andon.twin.fast`) when the line is a
plain serial line and the general line model (:mod:`andon.twin.line`) otherwise.
"""

from __future__ import annotations

import math
import multiprocessing
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime
from datetime import time as dtime
from typing import Literal
from zoneinfo import ZoneInfo

import numpy as np
from scipy import stats

from andon.model.plant import Plant
from andon.model.types import MachineState, Micros, to_micros
from andon.twin.fast import run_serial, serial_line
from andon.twin.line import FactoryModel, MachineRuntime

__all__ = [
    "Estimate",
    "Replication",
    "Replications",
    "TimelineRecorder",
    "default_t0",
    "estimate",
    "predict_parts",
    "rep_seed",
    "replicate",
    "run_events",
]

EngineKind = Literal["auto", "fast", "events"]


@dataclass(frozen=True, slots=True)
class Estimate:
    """A mean over replications with its two-sided confidence interval (Student t)."""

    mean: float
    half_width: float
    n: int
    level: float = 0.95

    @property
    def low(self) -> float:
        return self.mean - self.half_width

    @property
    def high(self) -> float:
        return self.mean + self.half_width

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high

    def as_dict(self) -> dict[str, float]:
        return {"mean": self.mean, "half_width": self.half_width, "n": self.n}


def estimate(values: list[float] | np.ndarray, level: float = 0.95) -> Estimate:
    """Mean and t-interval of independent observations.

    >>> e = estimate([1.0, 2.0, 3.0])
    >>> e.mean, round(e.half_width, 3)
    (2.0, 2.484)
    """
    x = np.asarray(values, dtype=np.float64)
    n = len(x)
    if n == 0:
        raise ValueError("no observations")
    if n == 1:
        return Estimate(float(x[0]), math.inf, 1, level)
    t = float(stats.t.ppf(0.5 + level / 2, n - 1))
    return Estimate(float(x.mean()), t * float(x.std(ddof=1)) / math.sqrt(n), n, level)


@dataclass(frozen=True, slots=True)
class Replication:
    """One replication of a line: good parts out per hour after warm-up, operations
    completed by all machines, and each machine's share of time running / down / blocked."""

    throughput_per_h: float
    parts: int
    ops: int
    wall_s: float
    engine: str
    running: dict[str, float]
    down: dict[str, float]
    blocked: dict[str, float]


@dataclass(frozen=True, slots=True)
class Replications:
    line: str
    hours: float
    warmup_h: float
    seed: int
    runs: list[Replication] = field(default_factory=list)

    def throughput(self, level: float = 0.95) -> Estimate:
        return estimate([r.throughput_per_h for r in self.runs], level)

    @property
    def ops_per_s(self) -> float:
        return sum(r.ops for r in self.runs) / max(1e-12, sum(r.wall_s for r in self.runs))

    def as_dict(self) -> dict[str, object]:
        tp = self.throughput()
        return {
            "line": self.line,
            "hours": self.hours,
            "warmup_h": self.warmup_h,
            "seed": self.seed,
            "reps": len(self.runs),
            "engine": self.runs[0].engine if self.runs else None,
            "throughput_per_h": tp.as_dict(),
            "replications": [round(r.throughput_per_h, 6) for r in self.runs],
            "running_share": {
                m: float(np.mean([r.running[m] for r in self.runs])) for m in self.runs[0].running
            }
            if self.runs
            else {},
        }


def rep_seed(seed: int, rep: int) -> int:
    """The integer seed the event engine gets for replication ``rep``."""
    return int(np.random.SeedSequence(seed, spawn_key=(rep,)).generate_state(1, np.uint64)[0])


def default_t0(plant: Plant) -> Micros:
    """Monday 2026-01-05 00:00 in the site's time zone: engine time 0 of twin runs."""
    zone = ZoneInfo(plant.site.timezone)
    return to_micros(datetime.combine(date(2026, 1, 5), dtime(0, 0), tzinfo=zone))


class TimelineRecorder:
    """A line-model listener keeping state change points and part completions, by machine
    (used by the bottleneck analysis and the validation tests)."""

    def __init__(self) -> None:
        self.states: dict[str, list[tuple[float, int]]] = {}
        self.parts: dict[str, list[tuple[float, bool]]] = {}

    def on_state(self, m: MachineRuntime, t: float, state: MachineState, reason: str) -> None:
        self.states.setdefault(m.spec.id, []).append((t, int(state)))

    def on_part(
        self, m: MachineRuntime, t: float, product: str, good: bool, cycle_s: float
    ) -> None:
        self.parts.setdefault(m.spec.id, []).append((t, good))

    def on_condition(self, m: MachineRuntime, t: float, event: str) -> None:
        return None

    def on_fault(self, m: MachineRuntime, t: float, code: str, repair_s: float) -> None:
        return None


def run_events(
    plant: Plant,
    line_id: str,
    hours: float,
    seed: int,
    rep: int = 0,
    warmup_h: float = 0.0,
    recorder: TimelineRecorder | None = None,
    t0: Micros | None = None,
) -> Replication:
    """One replication of one line on the general line model."""
    rec = recorder if recorder is not None else TimelineRecorder()
    wall = time.perf_counter()
    t0 = default_t0(plant) if t0 is None else t0
    model = FactoryModel(plant, rep_seed(seed, rep), t0, listeners=[rec], lines=[line_id])
    if not model.machines:
        raise KeyError(f"no line {line_id!r}")
    horizon = hours * 3600.0
    warmup = warmup_h * 3600.0
    model.run(horizon)
    model.close()
    wall = time.perf_counter() - wall
    sinks = [m for m in model.machines if m.outbuf is None]
    parts = sum(
        1 for m in sinks for t, good in rec.parts.get(m.spec.id, []) if good and t >= warmup
    )
    ops = sum(len(v) for v in rec.parts.values())
    span = horizon - warmup

    def share(m: MachineRuntime, s: MachineState) -> float:
        return m.durations[s] / horizon

    return Replication(
        throughput_per_h=parts / span * 3600.0,
        parts=parts,
        ops=ops,
        wall_s=wall,
        engine="events",
        running={m.spec.id: share(m, MachineState.RUNNING) for m in model.machines},
        down={m.spec.id: share(m, MachineState.DOWN) for m in model.machines},
        blocked={m.spec.id: share(m, MachineState.BLOCKED) for m in model.machines},
    )


def replicate(
    plant: Plant,
    line_id: str,
    hours: float,
    reps: int,
    seed: int = 1,
    warmup_h: float = 0.0,
    engine: EngineKind = "auto",
    progress: Callable[[int], None] | None = None,
    t0: Micros | None = None,
    workers: int = 1,
) -> Replications:
    """``reps`` replications of ``hours`` of line ``line_id`` (the first ``warmup_h`` hours
    are not counted); ``t0`` is the UTC start, which places the shift calendar.

    ``workers > 1`` runs event-model replications in that many processes; every
    replication has its own seed, so the results are the same as with one worker."""
    if reps < 1:
        raise ValueError("reps must be at least 1")
    serial, why = serial_line(plant, line_id)
    if engine == "fast" and serial is None:
        raise ValueError(f"line {line_id!r} does not fit the fast path: {why}")
    use_fast = serial is not None and engine != "events"
    out = Replications(line_id, hours, warmup_h, seed)
    if not use_fast and workers > 1 and reps > 1:
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=min(workers, reps), mp_context=ctx) as pool:
            futures = [
                pool.submit(run_events, plant, line_id, hours, seed, r, warmup_h, None, t0)
                for r in range(reps)
            ]
            for r, fut in enumerate(futures):
                out.runs.append(fut.result())
                if progress is not None:
                    progress(r + 1)
        return out
    for r in range(reps):
        if use_fast:
            assert serial is not None
            wall = time.perf_counter()
            res = run_serial(serial, hours, seed, r, warmup_h)
            wall = time.perf_counter() - wall
            horizon = hours * 3600.0
            ids = [m.id for m in serial.machines]
            out.runs.append(
                Replication(
                    res.throughput_per_h,
                    res.parts,
                    res.ops,
                    wall,
                    "fast",
                    {m: float(res.busy[i]) / horizon for i, m in enumerate(ids)},
                    {m: float(res.down[i]) / horizon for i, m in enumerate(ids)},
                    {m: float(res.blocked[i]) / horizon for i, m in enumerate(ids)},
                )
            )
        else:
            out.runs.append(run_events(plant, line_id, hours, seed, r, warmup_h, t0=t0))
        if progress is not None:
            progress(r + 1)
    return out


def predict_parts(
    plant: Plant,
    line_id: str,
    start: Micros,
    hours: float,
    reps: int,
    seed: int = 1,
    warmup_h: float = 168.0,
    progress: Callable[[int], None] | None = None,
) -> Estimate:
    """Good parts line ``line_id`` is expected to make in ``[start, start + hours)``.

    The twin starts empty ``warmup_h`` before ``start`` (a week by default, so that the shift
    calendar lines up) and only the window is counted: a line that has run for a while has
    worn tools and full buffers, which an empty start does not."""
    t0 = start - round(warmup_h * 3.6e9)
    reps_ = replicate(
        plant, line_id, hours + warmup_h, reps, seed, warmup_h, progress=progress, t0=t0
    )
    return estimate([r.parts for r in reps_.runs])

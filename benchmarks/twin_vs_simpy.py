"""The twin against SimPy on the reference line of issue 5, in one run.

    .venv/bin/python benchmarks/twin_vs_simpy.py [--reps 10] [--simpy-reps 5] [--minutes 200000]

The line: 5 machines in series, exponential cycle times with means 1.0, 1.1, 0.9, 1.2 and
1.0 min, buffers of 5 between them (blocking after service), time to failure exponential with
mean 100 min and repair exponential with mean 5 min, both in calendar time, infinite supply
and demand. Both models share the semantics of ``andon.twin.fast``: a failed machine loads
no part; a failure during a cycle extends it (preempt-resume); a finished part leaves a
failed, blocked machine as soon as space opens.

Prints one JSON object per figure: throughput (parts/min, mean over replications, with its
95 % half-width) for andon and SimPy and whether they agree, completed operations per second
for andon's fast path, andon's general event engine and SimPy, and the speed-up.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from typing import Any

import numpy as np
import simpy

from andon.twin.reference import REFERENCE_CYCLE_MIN, reference_plant
from andon.twin.run import estimate, replicate

MTBF_MIN = 100.0
MTTR_MIN = 5.0
BUFFER = 5

__all__ = ["simpy_line"]


def machine() -> str:
    return f"{os.cpu_count()} cpu, {platform.machine()}, {platform.system()}"


def emit(figure: str, value: float, unit: str, peer: str | None, peer_value: float | None) -> None:
    print(
        json.dumps(
            {
                "figure": figure,
                "value": round(value, 4),
                "unit": unit,
                "peer": peer,
                "peer_value": None if peer_value is None else round(peer_value, 4),
                "machine": machine(),
            }
        ),
        flush=True,
    )


def simpy_line(
    cycle_means: tuple[float, ...],
    buffer: int,
    mtbf: float,
    mttr: float,
    horizon: float,
    seed: int,
) -> tuple[int, int]:
    """The reference line in SimPy; returns (parts out of the last machine, operations)."""
    env = simpy.Environment()
    rng = np.random.default_rng(seed)
    n = len(cycle_means)
    bufs = [simpy.Store(env, capacity=buffer) for _ in range(n - 1)]
    out = [0]
    done = [0] * n

    class Machine:
        def __init__(self, i: int) -> None:
            self.i = i
            self.down = False
            self.repaired = env.event()
            self.phase = "load"
            self.proc = env.process(self.run())
            env.process(self.breakdowns())

        def wait_up(self) -> Any:
            while self.down:
                yield self.repaired

        def run(self) -> Any:
            i = self.i
            while True:
                self.phase = "load"
                if i == 0:
                    yield from self.wait_up()
                else:
                    while True:
                        yield from self.wait_up()
                        get = bufs[i - 1].get()
                        try:
                            yield get
                            break
                        except simpy.Interrupt:
                            get.cancel()  # failed while starved: load after the repair
                self.phase = "process"
                left = float(rng.exponential(cycle_means[i]))
                while left > 0:
                    start = env.now
                    try:
                        yield env.timeout(left)
                        left = 0.0
                    except simpy.Interrupt:
                        left -= env.now - start
                        yield from self.wait_up()
                done[i] += 1
                self.phase = "put"  # blocked after service: failures do not hold the part
                if i < n - 1:
                    yield bufs[i].put(1)
                else:
                    out[0] += 1

        def breakdowns(self) -> Any:
            while True:
                yield env.timeout(float(rng.exponential(mtbf)))
                self.down = True
                self.repaired = env.event()
                if self.phase != "put":
                    self.proc.interrupt()
                yield env.timeout(float(rng.exponential(mttr)))
                self.down = False
                self.repaired.succeed()

    for i in range(n):
        Machine(i)
    env.run(until=horizon)
    return out[0], sum(done)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--simpy-reps", type=int, default=5)
    ap.add_argument("--events-reps", type=int, default=4)
    ap.add_argument("--minutes", type=float, default=200_000.0)
    ap.add_argument("--seed", type=int, default=2026)
    args = ap.parse_args()
    minutes = args.minutes
    hours = minutes / 60.0
    plant = reference_plant(BUFFER)

    replicate(plant, "L", 10.0, 1, seed=0, engine="fast")  # compile (cached on disk)
    fast = replicate(plant, "L", hours, args.reps, seed=args.seed, engine="fast")
    events = replicate(plant, "L", hours, args.events_reps, seed=args.seed, engine="events")

    sp_tp: list[float] = []
    sp_ops = 0
    sp_wall = 0.0
    for r in range(args.simpy_reps):
        t = time.perf_counter()
        parts, ops = simpy_line(REFERENCE_CYCLE_MIN, BUFFER, MTBF_MIN, MTTR_MIN, minutes, 1000 + r)
        sp_wall += time.perf_counter() - t
        sp_ops += ops
        sp_tp.append(parts / minutes)

    a = estimate([r.throughput_per_h / 60.0 for r in fast.runs])
    s = estimate(sp_tp)
    e = estimate([r.throughput_per_h / 60.0 for r in events.runs])
    emit(
        "reference line throughput, andon fast path (mean of reps)",
        a.mean,
        "parts/min",
        "simpy",
        s.mean,
    )
    emit(
        "reference line throughput 95% half-width", a.half_width, "parts/min", "simpy", s.half_width
    )
    gap = abs(a.mean - s.mean)
    allowed = math.hypot(a.half_width, s.half_width)
    emit(
        "reference line throughput |andon - simpy| / combined 95% half-width",
        gap / allowed,
        "ratio (<= 1 agrees)",
        None,
        None,
    )
    emit("reference line throughput, andon event engine", e.mean, "parts/min", "simpy", s.mean)
    emit(
        "reference line throughput 95% half-width, andon event engine",
        e.half_width,
        "parts/min",
        "simpy",
        s.half_width,
    )
    sp_rate = sp_ops / sp_wall
    emit(
        "reference line completed operations per second, fast path",
        fast.ops_per_s,
        "ops/s",
        "simpy",
        sp_rate,
    )
    emit(
        "reference line completed operations per second, event engine",
        events.ops_per_s,
        "ops/s",
        "simpy",
        sp_rate,
    )
    emit("reference line speed-up over simpy, fast path", fast.ops_per_s / sp_rate, "x", None, None)


if __name__ == "__main__":
    main()

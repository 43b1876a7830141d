"""Experiments with the twin: scenarios, paired comparison with common random numbers,
warm-up detection (MSER-5) and buffer allocation.

A *scenario* is a list of changes to a line (a buffer's capacity, a machine's speed, its
MTBF or MTTR), written in YAML::

    name: bigger buffer before the grinder
    line: L1
    changes:
      - {buffer: B1, capacity: 10}
      - {machine: SG-01, speed: 1.1}          # 10 % faster: cycle times / 1.1
      - {machine: MC-01, mtbf_factor: 2.0}    # failures half as often
      - {machine: MC-01, mttr_factor: 0.5}

Comparisons run base and scenario with the same seeds, so replication ``r`` of both sees the
same random streams for every unchanged machine (common random numbers), and the interval
is taken over the paired differences, which is much narrower than comparing two
independent intervals. The difference is priced with a contribution per good part, e.g.
from the KPI engine's :class:`~andon.kpi.cost.LossPrices` via :func:`per_part_value`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from andon.model.calendar import SCHEDULED, expand_calendar
from andon.model.loader import safe_load
from andon.model.plant import Plant
from andon.model.types import F64
from andon.twin.fast import run_serial, serial_line
from andon.twin.run import EngineKind, Estimate, default_t0, estimate, replicate

__all__ = [
    "Change",
    "Comparison",
    "Scenario",
    "apply_scenario",
    "compare",
    "load_scenario",
    "mser5",
    "optimise_buffers",
    "per_part_value",
    "scheduled_hours_per_month",
    "speedup_gains",
    "warmup_hours",
]


class Change(BaseModel):
    """One change to a line."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    buffer: str | None = None
    capacity: int | None = Field(default=None, ge=1)
    machine: str | None = None
    speed: float | None = Field(default=None, gt=0)
    mtbf_factor: float | None = Field(default=None, gt=0)
    mttr_factor: float | None = Field(default=None, gt=0)


class Scenario(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "scenario"
    line: str | None = None
    changes: tuple[Change, ...] = ()


def load_scenario(path: str | Path) -> Scenario:
    text = Path(path).read_text(encoding="utf-8")
    return Scenario.model_validate(safe_load(text, str(path)) or {})


def apply_scenario(plant: Plant, line_id: str, scenario: Scenario | Sequence[Change]) -> Plant:
    """A copy of the plant with the changes made to line ``line_id``.

    >>> from andon.twin.reference import reference_plant
    >>> p = apply_scenario(reference_plant(), "L", [Change(buffer="B2", capacity=9)])
    >>> [b.capacity for b in p.site.areas[0].lines[0].buffers]
    [5, 9, 5, 5]
    """
    changes = scenario.changes if isinstance(scenario, Scenario) else tuple(scenario)
    doc = plant.model_dump(by_alias=True, mode="json")
    lines = [ln for a in doc["site"]["areas"] for ln in a["lines"] if ln["id"] == line_id]
    if not lines:
        raise KeyError(f"no line {line_id!r}")
    line = lines[0]
    for ch in changes:
        if ch.buffer is not None:
            bufs = [b for b in line["buffers"] if b["id"] == ch.buffer]
            if not bufs:
                raise KeyError(f"no buffer {ch.buffer!r} on line {line_id!r}")
            if ch.capacity is not None:
                bufs[0]["capacity"] = ch.capacity
        if ch.machine is not None:
            ms = [m for m in line["machines"] if m["id"] == ch.machine]
            if not ms:
                raise KeyError(f"no machine {ch.machine!r} on line {line_id!r}")
            m = ms[0]
            if ch.speed is not None:
                m["ideal_cycle_s"] = {k: v / ch.speed for k, v in m["ideal_cycle_s"].items()}
            for fm in m["sim"]["failure_modes"]:
                if ch.mtbf_factor is not None:
                    fm["mtbf_h"] *= ch.mtbf_factor
                if ch.mttr_factor is not None:
                    fm["mttr_min"] *= ch.mttr_factor
    return Plant.model_validate(doc)


def per_part_value(per_hour: float, cycle_s: float) -> float:
    """Contribution of one good part from an hourly contribution of the line's pacing
    machine (the KPI engine's ``LossPrices.per_hour``) and its ideal cycle time."""
    return per_hour * cycle_s / 3600.0


def scheduled_hours_per_month(plant: Plant, machine: str = "") -> float:
    """Scheduled hours in an average month (4 weeks of the calendar × 30.44 / 28)."""
    t0 = default_t0(plant)
    periods = expand_calendar(
        plant.site.calendar, plant.site.timezone, machine, t0, t0 + 28 * 86_400_000_000
    )
    sched = sum(p.end - p.start for p in periods if p.status == SCHEDULED) / 3.6e9
    return sched * 30.44 / 28.0


@dataclass(frozen=True, slots=True)
class Comparison:
    """Scenario minus base, paired over replications."""

    base: Estimate
    scenario: Estimate
    difference: Estimate
    """Throughput difference, parts per hour."""
    relative: Estimate
    """Difference relative to the base mean, %."""
    value_per_month: Estimate | None
    """Difference in money per month (needs a per-part value)."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "base_per_h": self.base.as_dict(),
            "scenario_per_h": self.scenario.as_dict(),
            "difference_per_h": self.difference.as_dict(),
            "difference_pct": self.relative.as_dict(),
            "value_per_month": self.value_per_month.as_dict() if self.value_per_month else None,
        }


def compare(
    base: Plant,
    scenario: Plant,
    line_id: str,
    hours: float,
    reps: int,
    seed: int = 1,
    warmup_h: float = 0.0,
    value_per_part: float | None = None,
    engine: EngineKind = "auto",
    progress: Callable[[int], None] | None = None,
    workers: int = 1,
) -> Comparison:
    """Run both with common random numbers; the interval is over paired differences."""
    a = replicate(base, line_id, hours, reps, seed, warmup_h, engine, progress, workers=workers)
    b = replicate(scenario, line_id, hours, reps, seed, warmup_h, engine, progress, workers=workers)
    ta = np.array([r.throughput_per_h for r in a.runs])
    tb = np.array([r.throughput_per_h for r in b.runs])
    diff = tb - ta
    rel = diff / ta.mean() * 100.0
    value = None
    if value_per_part is not None:
        value = estimate(diff * scheduled_hours_per_month(base) * value_per_part)
    return Comparison(estimate(ta), estimate(tb), estimate(diff), estimate(rel), value)


def speedup_gains(
    plant: Plant,
    line_id: str,
    factor: float,
    hours: float,
    reps: int,
    seed: int = 1,
    engine: EngineKind = "auto",
) -> dict[str, Estimate]:
    """Throughput gain (parts/h, paired) from making each machine ``factor`` faster."""
    line = next(ln for _, ln in plant.lines() if ln.id == line_id)
    out = {}
    for m in line.machines:
        faster = apply_scenario(plant, line_id, [Change(machine=m.id, speed=factor)])
        out[m.id] = compare(plant, faster, line_id, hours, reps, seed, engine=engine).difference
    return out


def mser5(series: Sequence[float] | F64) -> int:
    """MSER-5 truncation point: the number of leading observations to delete.

    The series is averaged in batches of 5; the truncation ``d`` (in batches) minimises
    the squared standard error of the mean of what remains, searched over the first half.

    >>> mser5([10.0] * 5 + [0.0] * 95)
    5
    """
    x = np.asarray(series, dtype=np.float64)
    nb = len(x) // 5
    if nb < 4:
        return 0
    b = x[: nb * 5].reshape(nb, 5).mean(axis=1)
    best, best_d = np.inf, 0
    for d in range(nb // 2):
        rest = b[d:]
        stat = float(np.sum((rest - rest.mean()) ** 2)) / (len(rest) ** 2)
        if stat < best:
            best, best_d = stat, d
    return best_d * 5


def warmup_hours(
    plant: Plant,
    line_id: str,
    hours: float,
    reps: int = 5,
    seed: int = 1,
    bin_h: float = 1.0,
) -> float:
    """Warm-up by MSER-5 on the output per ``bin_h`` averaged over pilot replications
    (serial lines; other lines start full enough that the result is 0 by convention)."""
    line, _ = serial_line(plant, line_id)
    if line is None:
        return 0.0
    bins = int(hours / bin_h)
    counts = np.zeros(bins)
    for r in range(reps):
        res = run_serial(line, hours, seed, r)
        dep = res.depart[-1]
        dep = dep[dep < bins * bin_h * 3600.0]
        counts += np.bincount((dep // (bin_h * 3600.0)).astype(np.int64), minlength=bins)
    return mser5(counts / reps) * bin_h


def optimise_buffers(
    plant: Plant,
    line_id: str,
    total: int,
    hours: float,
    reps: int,
    seed: int = 1,
    engine: EngineKind = "auto",
) -> tuple[dict[str, int], Estimate]:
    """Allocate ``total`` buffer places over the line's buffers (each at least 1) to
    maximise throughput: start even, then move one place at a time between buffers while
    that helps (local search with common random numbers). Returns the allocation and its
    throughput."""
    line = next(ln for _, ln in plant.lines() if ln.id == line_id)
    ids = [b.id for b in line.buffers]
    if total < len(ids):
        raise ValueError("every buffer needs at least one place")
    alloc = [total // len(ids)] * len(ids)
    for i in range(total - sum(alloc)):
        alloc[i] += 1
    cache: dict[tuple[int, ...], float] = {}

    def score(a: list[int]) -> float:
        key = tuple(a)
        if key not in cache:
            p = apply_scenario(
                plant, line_id, [Change(buffer=b, capacity=c) for b, c in zip(ids, a, strict=True)]
            )
            cache[key] = replicate(p, line_id, hours, reps, seed, engine=engine).throughput().mean
        return cache[key]

    best = score(alloc)
    improved = True
    while improved:
        improved = False
        for i, j in itertools.permutations(range(len(ids)), 2):
            if alloc[i] <= 1:
                continue
            cand = list(alloc)
            cand[i] -= 1
            cand[j] += 1
            s = score(cand)
            if s > best + 1e-12:
                alloc, best, improved = cand, s, True
    final = apply_scenario(
        plant, line_id, [Change(buffer=b, capacity=c) for b, c in zip(ids, alloc, strict=True)]
    )
    est = replicate(final, line_id, hours, reps, seed, engine=engine).throughput()
    return dict(zip(ids, alloc, strict=True)), est

"""The fast path: serial lines simulated by the departure-time recursion, compiled by Numba.

For a serial line (machines in a chain, each buffer between two neighbours, infinite supply
in front and infinite demand behind) with blocking after service, the times of part ``n``
at machine ``i`` follow a recursion instead of an event list (machines and buffers are
numbered from 0, ``b_i`` is the capacity of the buffer after machine ``i``)::

    L_i(n) = up_i(max(D_{i-1}(n), D_i(n-1)))          load: part and machine are both free
    C_i(n) = L_i(n) + p_i(n) + repairs during the cycle  completion
    D_i(n) = max(C_i(n), L_{i+1}(n - b_i))              departure: space downstream

``up_i(t)`` is ``t`` or, when machine ``i`` is failed at ``t``, the end of that repair (a
failed machine loads nothing). With failures counted in **calendar time** the machine's
up/down periods alternate independently of what it does (a failure while starved or blocked
delays the next load; a failure during a cycle extends it); in **operating time** the
failure clock runs only during cycles. This is exactly the semantics of the general line
model in :mod:`andon.twin.line` for such lines, which the tests check against each other
and against exact results; see decision 0501 for why both exist.

All random numbers are drawn up front with NumPy, per machine and stream from
``SeedSequence(seed, spawn_key=(replication, machine, stream))``, so a replication is the
same whatever else changes in the line (common random numbers) and whatever the kernel does.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import njit

from andon.model.calendar import SCHEDULED, expand_calendar
from andon.model.plant import Distribution, Line, Plant
from andon.model.types import F64
from andon.twin.line import cycle_law

__all__ = [
    "MachineSpec",
    "SerialLine",
    "SerialResult",
    "draw_cycles",
    "draw_many",
    "run_serial",
    "serial_line",
]

_CYCLE, _UP, _MODE, _REPAIR = 0, 1, 2, 3


@dataclass(frozen=True, slots=True)
class MachineSpec:
    """One machine of a serial line, times in seconds.

    ``ideal_cycle_s`` holds the ideal cycle time per product in plan order (the mean is
    ``ideal × (1 + speed_loss)``, drawn as in the event engine: :func:`draw_cycles`);
    ``mtbf_s`` and the repair parameters have one entry per failure mode.
    """

    id: str
    ideal_cycle_s: tuple[float, ...]
    cycle_dist: Distribution = "lognormal"
    cycle_cv: float = 0.0
    speed_loss: float = 0.0
    cycle_empirical: tuple[float, ...] = ()
    mtbf_s: tuple[float, ...] = ()
    mttr_s: tuple[float, ...] = ()
    ttr_dist: tuple[Distribution, ...] = ()
    ttr_cv: tuple[float, ...] = ()
    ttr_empirical: tuple[tuple[float, ...], ...] = ()
    calendar_failures: bool = False

    @property
    def cycle_means(self) -> tuple[float, ...]:
        """Mean cycle time per product in plan order."""
        return tuple(c * (1.0 + self.speed_loss) for c in self.ideal_cycle_s)


@dataclass(frozen=True, slots=True)
class SerialLine:
    """A serial line: ``buffers[i]`` is the capacity between machine ``i`` and ``i + 1``;
    ``plan`` is the lot plan as ``(product index, lot size)``."""

    machines: tuple[MachineSpec, ...]
    buffers: tuple[int, ...]
    plan: tuple[tuple[int, int], ...] = ((0, 1),)

    def __post_init__(self) -> None:
        if len(self.buffers) != len(self.machines) - 1:
            raise ValueError("a serial line of n machines has n - 1 buffers")
        if any(b < 1 for b in self.buffers):
            raise ValueError("buffer capacities must be at least 1")


@dataclass(frozen=True, slots=True)
class SerialResult:
    """One replication: parts out of the last machine in ``[warmup, horizon)``, completed
    operations of every machine by the horizon, per-machine busy (processing), down and
    blocked seconds of the parts loaded before the horizon, and each part's load and
    departure time at each machine (``[machine, part]``, parts loaded before the horizon)."""

    parts: int
    ops: int
    seconds: float
    busy: F64
    down: F64
    blocked: F64
    load: F64
    depart: F64

    @property
    def throughput_per_h(self) -> float:
        return self.parts / self.seconds * 3600.0


def serial_line(plant: Plant, line_id: str) -> tuple[SerialLine | None, str]:
    """The fast-path form of a plant line, or ``None`` and the reason it does not fit."""
    found = [ln for _, ln in plant.lines() if ln.id == line_id]
    if not found:
        raise KeyError(f"no line {line_id!r}")
    line = found[0]
    why = _unsupported(plant, line)
    if why:
        return None, why
    order = _chain(line)
    if order is None:
        return None, "machines are not a single chain of one-to-one buffers"
    caps = {(b.from_[0], b.to[0]): b.capacity for b in line.buffers}
    products = [p.id for p in line.products]
    specs = []
    for m in order:
        s = m.sim
        specs.append(
            MachineSpec(
                id=m.id,
                ideal_cycle_s=tuple(m.ideal_cycle_s[p] for p in products),
                cycle_dist=s.cycle_dist,
                cycle_cv=s.cycle_cv,
                speed_loss=s.speed_loss,
                cycle_empirical=s.cycle_empirical,
                mtbf_s=tuple(f.mtbf_h * 3600.0 for f in s.failure_modes),
                mttr_s=tuple(f.mttr_min * 60.0 for f in s.failure_modes),
                ttr_dist=tuple(f.ttr_dist for f in s.failure_modes),
                ttr_cv=tuple(f.ttr_cv for f in s.failure_modes),
                ttr_empirical=tuple(f.ttr_empirical for f in s.failure_modes),
                calendar_failures=s.failure_basis == "calendar",
            )
        )
    buffers = tuple(caps[(a.id, b.id)] for a, b in itertools.pairwise(order))
    plan = tuple((i, p.lot_size) for i, p in enumerate(line.products))
    return SerialLine(tuple(specs), buffers, plan), ""


def _unsupported(plant: Plant, line: Line) -> str:
    if line.repair_crew is not None:
        return "a limited repair crew"
    for m in line.machines:
        s = m.sim
        if s.wear is not None:
            return f"{m.id}: tool wear"
        if s.degrading:
            return f"{m.id}: a degrading failure mode"
        if s.quality.scrap_base > 0 or s.quality.scrap_wear_gain > 0:
            return f"{m.id}: scrap"
        if s.changeover_min > 0 and len(line.products) > 1:
            return f"{m.id}: changeovers"
    if any(b.initial for b in line.buffers):
        return "initial buffer contents"
    cal = plant.site.calendar
    if cal.maintenance or cal.breaks:
        return "breaks or maintenance windows"
    week = 7 * 86_400_000_000
    for m in line.machines:
        periods = expand_calendar(cal, plant.site.timezone, m.id, 0, week)
        if any(p.status != SCHEDULED for p in periods):
            return "a shift calendar with off-shift time"
    return ""


def _chain(line: Line) -> list[Any] | None:
    if any(len(b.from_) != 1 or len(b.to) != 1 for b in line.buffers):
        return None
    nxt = {b.from_[0]: b.to[0] for b in line.buffers}
    prev = {b.to[0]: b.from_[0] for b in line.buffers}
    if len(nxt) != len(line.buffers) or len(prev) != len(line.buffers):
        return None
    heads = [m for m in line.machines if m.id not in prev]
    if len(heads) != 1:
        return None
    by_id = {m.id: m for m in line.machines}
    order = [heads[0]]
    while order[-1].id in nxt:
        order.append(by_id[nxt[order[-1].id]])
        if len(order) > len(line.machines):
            return None
    return order if len(order) == len(line.machines) else None


# --- random numbers -------------------------------------------------------------------------


def draw_many(
    rng: np.random.Generator,
    dist: Distribution,
    mean: F64,
    cv: float,
    empirical: tuple[float, ...] = (),
) -> F64:
    """Vectorised :func:`andon.twin.line.draw_duration`: one draw per entry of ``mean``.

    >>> draw_many(np.random.default_rng(0), "deterministic", np.array([1.0, 2.0]), 0.5)
    array([1., 2.])
    """
    n = len(mean)
    if dist == "deterministic" or (dist in ("lognormal", "gamma") and cv <= 0):
        return mean.astype(np.float64, copy=True)
    if dist == "exponential":
        return rng.standard_exponential(n) * mean
    if dist == "lognormal":
        s2 = math.log1p(cv * cv)
        return rng.lognormal(-s2 / 2, math.sqrt(s2), n) * mean
    if dist == "gamma":
        shape = 1.0 / (cv * cv)
        return rng.standard_gamma(shape, n) / shape * mean
    if not empirical:
        raise ValueError("an empirical distribution needs observed values")
    values = np.asarray(empirical, dtype=np.float64)
    picked = values[rng.integers(len(values), size=n)] / values.mean() * mean
    return np.asarray(picked, dtype=np.float64)


def draw_cycles(
    rng: np.random.Generator,
    dist: Distribution,
    ideal: F64,
    speed_loss: float,
    cv: float,
    empirical: tuple[float, ...] = (),
) -> F64:
    """Vectorised :func:`andon.twin.line.draw_cycle`: one cycle per entry of ``ideal``, by
    the same :func:`andon.twin.line.cycle_law` (no lognormal or gamma cycle with a speed
    loss beats its ideal).

    >>> x = draw_cycles(np.random.default_rng(0), "gamma", np.full(1000, 40.0), 0.02, 0.08)
    >>> bool(x.min() >= 40.0)
    True
    """
    floor, scale, cv_x = cycle_law(dist, speed_loss, cv)
    return ideal * floor + draw_many(rng, dist, ideal * scale, cv_x, empirical)


def _streams(seed: int, rep: int, machine: int, n: int) -> list[np.random.Generator]:
    ss = np.random.SeedSequence(seed, spawn_key=(rep, machine))
    return [np.random.Generator(np.random.PCG64(s)) for s in ss.spawn(n)]


def _plan_ideals(spec: MachineSpec, plan: tuple[tuple[int, int], ...], n: int) -> F64:
    pattern = np.concatenate([np.full(size, spec.ideal_cycle_s[i]) for i, size in plan])
    reps = -(-n // len(pattern))
    return np.tile(pattern, reps)[:n]


def _draws(
    line: SerialLine, seed: int, rep: int, n_parts: int, n_fail: int
) -> tuple[F64, F64, F64]:
    m = len(line.machines)
    cyc = np.empty((m, n_parts))
    up = np.full((m, n_fail), np.inf)
    rep_t = np.zeros((m, n_fail))
    for i, spec in enumerate(line.machines):
        g = _streams(seed, rep, i, _REPAIR + len(spec.mtbf_s))
        ideals = _plan_ideals(spec, line.plan, n_parts)
        cyc[i] = draw_cycles(
            g[_CYCLE],
            spec.cycle_dist,
            ideals,
            spec.speed_loss,
            spec.cycle_cv,
            spec.cycle_empirical,
        )
        if not spec.mtbf_s:
            continue
        rates = np.array([1.0 / x for x in spec.mtbf_s])
        up[i] = g[_UP].standard_exponential(n_fail) / rates.sum()
        mode = g[_MODE].choice(len(rates), size=n_fail, p=rates / rates.sum())
        for k in range(len(rates)):
            # one stream per mode, drawn in full: more draws never change earlier ones
            emp = spec.ttr_empirical[k] if k < len(spec.ttr_empirical) else ()
            full = draw_many(
                g[_REPAIR + k],
                spec.ttr_dist[k],
                np.full(n_fail, spec.mttr_s[k]),
                spec.ttr_cv[k],
                emp,
            )
            rep_t[i] = np.where(mode == k, full, rep_t[i])
    return cyc, up, rep_t


# --- the kernel ----------------------------------------------------------------------------


@njit(cache=True, nogil=True)
def _kernel(  # pragma: no cover - compiled; covered through run_serial
    cyc: Any,
    up: Any,
    rep_t: Any,
    cal: Any,
    caps: Any,
    horizon: float,
    warmup: float,
    load: Any,
    depart: Any,
    busy: Any,
    down: Any,
    blocked: Any,
    done: Any,
) -> tuple[int, int, int]:
    """Run the recursion; returns (parts out in [warmup, horizon), status, parts loaded).

    status 0: the first machine loaded a part after the horizon (complete); 1: out of
    cycle draws; 2: out of failure draws."""
    m, n_parts = cyc.shape
    n_fail = up.shape[1]
    k = np.zeros(m, np.int64)  # failure index per machine
    fail_at = np.empty(m)  # calendar: next failure time; operating: op time left
    rep_end = np.zeros(m)
    for i in range(m):
        fail_at[i] = up[i, 0]
        rep_end[i] = up[i, 0] + rep_t[i, 0]
    prev_d = np.zeros(m)
    prev_c = np.zeros(m)
    out = 0
    for n in range(n_parts):
        arrive = 0.0
        for i in range(m):
            t = arrive if arrive > prev_d[i] else prev_d[i]
            if i == 0 and t >= horizon:
                return out, 0, n
            p = cyc[i, n]
            if cal[i]:
                # walk the down periods since the last completion: the machine was down
                # whatever it did (a failure while blocked counts as down, not blocked);
                # wait out a repair in progress
                while t >= fail_at[i]:
                    down[i] += rep_end[i] - fail_at[i]
                    lo = fail_at[i] if fail_at[i] > prev_c[i] else prev_c[i]
                    hi = rep_end[i] if rep_end[i] < prev_d[i] else prev_d[i]
                    if hi > lo:
                        blocked[i] -= hi - lo
                    if t < rep_end[i]:
                        t = rep_end[i]
                    k[i] += 1
                    if k[i] >= n_fail:
                        return out, 2, n
                    fail_at[i] = rep_end[i] + up[i, k[i]]
                    rep_end[i] = fail_at[i] + rep_t[i, k[i]]
                load[i, n] = t
                while t + p > fail_at[i]:
                    p -= fail_at[i] - t
                    down[i] += rep_end[i] - fail_at[i]
                    t = rep_end[i]
                    k[i] += 1
                    if k[i] >= n_fail:
                        return out, 2, n
                    fail_at[i] = rep_end[i] + up[i, k[i]]
                    rep_end[i] = fail_at[i] + rep_t[i, k[i]]
                c = t + p
            else:
                load[i, n] = t
                while p > fail_at[i]:  # fail_at = operating time left to the next failure
                    p -= fail_at[i]
                    t += fail_at[i] + rep_t[i, k[i]]
                    down[i] += rep_t[i, k[i]]
                    k[i] += 1
                    if k[i] >= n_fail:
                        return out, 2, n
                    fail_at[i] = up[i, k[i]]
                fail_at[i] -= p
                c = t + p
            busy[i] += cyc[i, n]
            d = c
            if i < m - 1 and n >= caps[i]:
                free = load[i + 1, n - caps[i]]
                if free > d:
                    blocked[i] += free - d
                    d = free
            if c <= horizon:
                done[i] += 1
            prev_d[i] = d
            prev_c[i] = c
            depart[i, n] = d
            arrive = d
        if warmup <= arrive < horizon:
            out += 1
    return out, 1, n_parts


def run_serial(
    line: SerialLine, hours: float, seed: int, rep: int = 0, warmup_h: float = 0.0
) -> SerialResult:
    """One replication of ``hours`` of a serial line; deterministic for ``(seed, rep)``."""
    horizon = hours * 3600.0
    warmup = warmup_h * 3600.0
    if not 0 <= warmup < horizon:
        raise ValueError("need 0 <= warmup < horizon")
    m = len(line.machines)
    fastest = min(min(s.cycle_means) for s in line.machines)
    n_parts = int(horizon / fastest * 1.3) + 64
    rate = max((sum(1 / x for x in s.mtbf_s) for s in line.machines if s.mtbf_s), default=0.0)
    lam = horizon * rate
    n_fail = int(lam + 6 * math.sqrt(lam) + 16)
    cal = np.array([s.calendar_failures for s in line.machines], dtype=np.bool_)
    caps = np.array([*line.buffers, 1], dtype=np.int64)
    while True:
        cyc, up, rep_t = _draws(line, seed, rep, n_parts, n_fail)
        load = np.empty((m, n_parts))
        depart = np.empty((m, n_parts))
        busy, down, blocked = np.zeros(m), np.zeros(m), np.zeros(m)
        done = np.zeros(m, dtype=np.int64)
        parts, status, loaded = _kernel(
            cyc, up, rep_t, cal, caps, horizon, warmup, load, depart, busy, down, blocked, done
        )
        if status == 0:
            break
        if status == 1:
            n_parts *= 2
        else:
            n_fail *= 2
    return SerialResult(
        int(parts),
        int(done.sum()),
        horizon - warmup,
        busy,
        down,
        blocked,
        load[:, :loaded],
        depart[:, :loaded],
    )

"""Failures that announce themselves: a hidden health index per degrading failure mode.

A failure mode with a ``degradation`` block (``andon.model.plant.Degradation``) does not
fail after an exponential time. Its health ``h`` starts at 1 with each *life* (a new
machine, after its repair, after preventive maintenance) and falls in **wear time**
``u``: operating seconds (only while a cycle runs, decision 0002) times the regime factor
of the product being made (``regimes``; heavier work wears faster). The failure happens
when ``h`` reaches ``threshold``. Each life draws, from the machine's own seeded stream:

* its onset ``u0`` (lognormal, mean ``onset_h``, ``onset_cv``): no damage before it;
* its rate: the wear time from onset to the threshold ``L`` is lognormal with mean
  ``life_h`` and ``unit_cv`` (units, and lives of one unit, differ, as in C-MAPSS);
* its path ``D(u) = 1 - h(u)`` from onset:

  - ``gamma``: a gamma process, independent increments ``Gamma(shape = a·Δu, scale = b)``
    with ``a = 1 / (path_cv² · L)`` and ``b = (1 - threshold) · path_cv²``, so the mean
    damage reaches ``1 - threshold`` at ``L`` and its coefficient of variation there is
    ``path_cv``; drawn on a grid of ``Δu = L / 400`` and linear between grid points, so
    ``h`` never rises within a life and the crossing time is exact;
  - ``exponential``: ``D(u) = (1 - threshold)·(e^{s·(u-u0)/L} - 1)/(e^s - 1)``, with
    ``s = sharpness``: slow at first, then faster (a crack or spall that grows).

``DegradationProcess`` is the runtime of one mode on one machine: the line model sets its
rate when a cycle starts and stops, asks how many operating seconds are left before the
threshold, and starts a new life after the repair or a preventive maintenance. With
``record`` on it keeps the breakpoints of its wear clock, so the virtual factory can read
the health at any sample time and the times the health crossed the warning levels.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import dataclass, field

import numpy as np

from andon.model.plant import Degradation
from andon.model.types import F64

__all__ = ["DegradationPath", "DegradationProcess", "draw_path"]

_STEPS = 400
"""Grid steps of a gamma path over its expected wear life."""


def _lognormal_mean1(rng: np.random.Generator, cv: float) -> float:
    if cv <= 0:
        return 1.0
    s2 = math.log1p(cv * cv)
    return float(rng.lognormal(-s2 / 2.0, math.sqrt(s2)))


@dataclass(frozen=True, slots=True, eq=False)
class DegradationPath:
    """One life's damage path: ``damage`` (0 … 1 - threshold, non-decreasing) at wear
    times ``u`` (s), linear in between; 0 before ``u[0]`` (the onset), the threshold's
    damage from ``fail_u`` on."""

    u: F64
    damage: F64
    fail_u: float

    def health(self, u: F64 | float) -> F64:
        """Health at wear time(s) ``u``."""
        return np.asarray(1.0 - np.interp(u, self.u, self.damage), dtype=np.float64)

    def u_at_damage(self, d: float) -> float:
        """The first wear time at which the damage reaches ``d``."""
        k = int(np.searchsorted(self.damage, d, side="left"))
        if k <= 0:
            return float(self.u[0])
        if k >= len(self.u):
            return self.fail_u
        d0, d1 = float(self.damage[k - 1]), float(self.damage[k])
        u0, u1 = float(self.u[k - 1]), float(self.u[k])
        return u1 if d1 <= d0 else u0 + (d - d0) / (d1 - d0) * (u1 - u0)


def draw_path(spec: Degradation, rng: np.random.Generator) -> DegradationPath:
    """A new life's path (see the module docstring for the law)."""
    dstar = 1.0 - spec.threshold
    u0 = spec.onset_h * 3600.0 * _lognormal_mean1(rng, spec.onset_cv) if spec.onset_h else 0.0
    life = spec.life_h * 3600.0 * _lognormal_mean1(rng, spec.unit_cv)
    if spec.kind == "exponential":
        x = np.linspace(0.0, 1.0, _STEPS + 1)
        s = spec.sharpness
        damage = dstar * np.expm1(s * x) / math.expm1(s)
        damage[-1] = dstar
        return DegradationPath(u0 + x * life, damage, u0 + life)
    du = life / _STEPS
    a = 1.0 / (spec.path_cv**2 * life)
    b = dstar * spec.path_cv**2
    chunks: list[F64] = []
    total = 0.0
    while total < dstar:
        inc = rng.gamma(a * du, b, _STEPS)
        chunks.append(inc)
        total += float(inc.sum())
    cum = np.concatenate(([0.0], np.cumsum(np.concatenate(chunks))))
    k = int(np.searchsorted(cum, dstar, side="left"))  # first grid point at the threshold
    d0, d1 = float(cum[k - 1]), float(cum[k])
    fail = u0 + (k - 1) * du + (dstar - d0) / (d1 - d0) * du
    u = u0 + np.arange(k + 1, dtype=np.float64) * du
    u[k] = fail
    damage = cum[: k + 1].copy()
    damage[k] = dstar
    return DegradationPath(u, damage, fail)


@dataclass(eq=False)
class DegradationProcess:
    """One degrading failure mode of one machine, in the line model's engine seconds."""

    spec: Degradation
    rng: np.random.Generator
    path: DegradationPath = field(init=False)
    u: float = 0.0
    """Wear time of the current life at ``t``."""
    t: float = 0.0
    rate: float = 0.0
    """Wear seconds per second now (the regime factor while a cycle runs, else 0)."""
    lives: int = 0
    record: bool = False
    history: list[tuple[float, float, float, DegradationPath]] = field(default_factory=list)
    """With ``record``: ``(t, u, rate, path)`` from which the wear clock runs linearly."""
    history_t: list[float] = field(default_factory=list)
    """The times of ``history`` (for bisection)."""
    crossings: list[tuple[float, float]] = field(default_factory=list)
    """With ``record``: ``(t, level)`` each time the health fell through a warning level."""
    life_crossings: list[tuple[float, float]] = field(default_factory=list)
    """The current life's crossings (kept whether recording or not; a few per life)."""
    _warn_u: list[tuple[float, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.new_life(0.0)

    def new_life(self, now: float) -> None:
        """A new (or restored) unit: health 1, a freshly drawn onset, rate and path."""
        self.path = draw_path(self.spec, self.rng)
        self.u, self.t = 0.0, now
        self.lives += 1
        self.life_crossings = []
        self._warn_u = sorted(
            ((self.path.u_at_damage(1.0 - w), w) for w in self.spec.warnings), reverse=True
        )
        self._mark(now)

    def set_rate(self, now: float, rate: float) -> None:
        """Advance the wear clock to ``now`` and run it at ``rate`` from now on."""
        if rate == self.rate and now >= self.t:
            self._advance(now)
            return
        self._advance(now)
        self.rate = rate
        self._mark(now)

    def _advance(self, now: float) -> None:
        u1 = self.u + self.rate * (now - self.t)
        while self._warn_u and self._warn_u[-1][0] <= u1:
            wu, level = self._warn_u.pop()
            at = self.t + (wu - self.u) / self.rate if self.rate > 0 else now
            self.life_crossings.append((at, level))
            if self.record:
                self.crossings.append((at, level))
        self.u, self.t = u1, now

    def _mark(self, now: float) -> None:
        if not self.record:
            return
        if self.history and self.history_t[-1] == now:
            self.history[-1] = (now, self.u, self.rate, self.path)
        else:
            self.history.append((now, self.u, self.rate, self.path))
            self.history_t.append(now)

    def start_recording(self) -> None:
        self.record = True
        self.history = [(self.t, self.u, self.rate, self.path)]
        self.history_t = [self.t]

    def seconds_left(self) -> float:
        """Seconds at the current rate until the health reaches the threshold."""
        left = max(0.0, self.path.fail_u - self.u)
        return left / self.rate if self.rate > 0 else math.inf

    def wear_left(self) -> float:
        """Wear seconds left until the threshold (0 when it is reached)."""
        return max(0.0, self.path.fail_u - self.u)

    def health_at(self, times: F64) -> tuple[F64, F64]:
        """Health and wear rate at engine times (sorted, not before the oldest recorded
        breakpoint), from the recorded history."""
        if not len(times):
            return np.empty(0), np.empty(0)
        lo = max(0, bisect_right(self.history_t, float(times[0])) - 1)
        hi = bisect_right(self.history_t, float(times[-1]))
        hist = self.history[lo:hi]
        ts = np.asarray(self.history_t[lo:hi], dtype=np.float64)
        k = np.clip(np.searchsorted(ts, times, side="right") - 1, 0, len(hist) - 1)
        u0 = np.fromiter((h[1] for h in hist), dtype=np.float64, count=len(hist))
        r0 = np.fromiter((h[2] for h in hist), dtype=np.float64, count=len(hist))
        rate = r0[k]
        u = u0[k] + rate * (times - ts[k])
        paths: list[DegradationPath] = []
        of_entry = np.empty(len(hist), dtype=np.int64)
        for j, h in enumerate(hist):
            if not paths or paths[-1] is not h[3]:  # a life's entries are consecutive
                paths.append(h[3])
            of_entry[j] = len(paths) - 1
        if len(paths) == 1:
            return paths[0].health(u), rate
        which = of_entry[k]
        health = np.empty(len(times))
        for i, path in enumerate(paths):
            sel = which == i
            health[sel] = path.health(u[sel])
        return health, rate

    def prune(self, before: float) -> None:
        """Forget breakpoints before ``before`` except the one in force then."""
        k = bisect_right(self.history_t, before) - 1
        if k > 0:
            del self.history[:k], self.history_t[:k]

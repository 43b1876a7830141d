"""The arithmetic of idle energy, on plain lists (no platform needed; tests/test_energy.py).

Energy comes from a cumulative series ``(ts, kWh since the first sample)`` built from an
energy register (a drop is a reset: the increment is the new reading) or from a power
signal (each sample's kW held until the next sample). The energy of any interval is the
difference of the series linearly interpolated at its ends (clamped to the data), so the
pieces of a range add up to the range.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass

from andon.sdk import State

__all__ = [
    "IDLE",
    "US_PER_H",
    "MachineEnergy",
    "analyse",
    "cumulative_from_power",
    "cumulative_from_register",
    "energy_between",
    "idle_stretches",
]

IDLE = ("starved", "blocked")
"""Waiting for material or for room downstream: the machine is on and does nothing."""
US_PER_H = 3_600_000_000


def _clean(ts: Sequence[int], values: Sequence[float | None]) -> tuple[list[int], list[float]]:
    out_t: list[int] = []
    out_v: list[float] = []
    for t, v in zip(ts, values, strict=True):
        if v is not None and math.isfinite(v) and (not out_t or t > out_t[-1]):
            out_t.append(t)
            out_v.append(v)
    return out_t, out_v


def cumulative_from_register(
    ts: Sequence[int], values: Sequence[float | None]
) -> tuple[list[int], list[float]]:
    """``(ts, kWh since the first reading)`` of an energy register; NaN and missing readings
    are skipped, a drop is a reset.

    >>> cumulative_from_register([0, 1, 2, 3], [100.0, 101.5, 0.5, 1.0])[1]
    [0.0, 1.5, 2.0, 2.5]
    """
    t, v = _clean(ts, values)
    cum = [0.0] * len(v)
    for i in range(1, len(v)):
        step = v[i] - v[i - 1]
        cum[i] = cum[i - 1] + (step if step >= 0 else v[i])
    return t, cum


def cumulative_from_power(
    ts: Sequence[int], kw: Sequence[float | None]
) -> tuple[list[int], list[float]]:
    """``(ts, kWh since the first sample)`` of a power signal in kW, each sample held until
    the next.

    >>> cumulative_from_power([0, US_PER_H, 2 * US_PER_H], [2.0, 4.0, 0.0])[1]
    [0.0, 2.0, 6.0]
    """
    t, v = _clean(ts, kw)
    cum = [0.0] * len(v)
    for i in range(1, len(v)):
        cum[i] = cum[i - 1] + v[i - 1] * (t[i] - t[i - 1]) / US_PER_H
    return t, cum


def _at(ts: list[int], cum: list[float], t: int) -> float:
    if t <= ts[0]:
        return cum[0]
    if t >= ts[-1]:
        return cum[-1]
    i = bisect.bisect_right(ts, t)
    t0, t1 = ts[i - 1], ts[i]
    return cum[i - 1] + (cum[i] - cum[i - 1]) * (t - t0) / (t1 - t0)


def energy_between(ts: list[int], cum: list[float], start: int, end: int) -> float:
    """kWh in ``[start, end)`` (0 without data).

    >>> energy_between([0, 10], [0.0, 5.0], 2, 6)
    2.0
    """
    if not ts or end <= start:
        return 0.0
    return _at(ts, cum, end) - _at(ts, cum, start)


def idle_stretches(states: Sequence[State], min_us: int) -> list[tuple[int, int]]:
    """Per machine, the maximal runs of back-to-back starved or blocked intervals lasting at
    least ``min_us``, as ``(start, end)``; ``states`` are one machine's, ordered by start.

    >>> S = [State("m", 0, 5, "starved", ""), State("m", 5, 12, "blocked", ""),
    ...      State("m", 12, 20, "running", ""), State("m", 20, 24, "starved", "")]
    >>> idle_stretches(S, 10), idle_stretches(S, 3)
    ([(0, 12)], [(0, 12), (20, 24)])
    """
    runs: list[tuple[int, int]] = []
    for s in states:
        if s.state not in IDLE:
            continue
        if runs and runs[-1][1] == s.start_us:
            runs[-1] = (runs[-1][0], s.end_us)
        else:
            runs.append((s.start_us, s.end_us))
    return [(a, b) for a, b in runs if b - a >= min_us]


@dataclass(frozen=True, slots=True)
class MachineEnergy:
    """One machine over one window: all its idle energy, and the part of it that standby
    would avoid in the long waits."""

    idle_kwh: float
    idle_h: float
    saving_kwh: float
    standby_kw: float
    standby_basis: str
    """``measured`` (the machine's own offline periods) or ``assumed`` (``standby_share``)."""
    stretches: list[tuple[int, int, float]]
    """The long waits: (start, end, kWh), longest first."""
    first_us: int
    last_us: int
    """When the first wait began and the last one ended (the finding's window)."""


def analyse(
    states: Sequence[State],
    ts: list[int],
    cum: list[float],
    *,
    min_idle_us: int,
    standby_share: float,
) -> MachineEnergy:
    """Idle energy and avoidable energy of one machine (``states`` ordered by start,
    ``(ts, cum)`` its cumulative energy over the same window)."""
    idle = [s for s in states if s.state in IDLE]
    idle_kwh = sum(energy_between(ts, cum, s.start_us, s.end_us) for s in idle)
    idle_h = sum(s.end_us - s.start_us for s in idle) / US_PER_H
    off = [s for s in states if s.state == "offline" and s.end_us - s.start_us >= min_idle_us]
    off_h = sum(s.end_us - s.start_us for s in off) / US_PER_H
    long = [(a, b, energy_between(ts, cum, a, b)) for a, b in idle_stretches(states, min_idle_us)]
    if off_h > 0:
        standby_kw = sum(energy_between(ts, cum, s.start_us, s.end_us) for s in off) / off_h
        basis = "measured"
    else:
        long_h = sum(b - a for a, b, _ in long) / US_PER_H
        mean_kw = sum(e for _, _, e in long) / long_h if long_h > 0 else 0.0
        standby_kw = standby_share * mean_kw
        basis = "assumed"
    saving = sum(max(0.0, e - standby_kw * (b - a) / US_PER_H) for a, b, e in long)
    long.sort(key=lambda x: x[0] - x[1])
    first = min((s.start_us for s in idle), default=0)
    last = max((s.end_us for s in idle), default=0)
    return MachineEnergy(idle_kwh, idle_h, saving, standby_kw, basis, long, first, last)

"""Bottleneck detection from machine-state timelines — simulated or real, the same code.

Input is a :class:`~andon.model.types.StateBatch` (what the store's ``read_states`` returns,
and what :func:`timeline_batch` makes of a simulated run) plus the machines in flow order.

* **Active-period method** (Roser, Nakano & Tanaka 2001/2002): a machine is *active* unless
  it waits (starved or blocked) or is not scheduled; consecutive active states form an
  active period. At every instant the machine in the longest active period is the momentary
  bottleneck. Where the active periods of two successive bottlenecks overlap, the bottleneck
  is *shifting* (both machines count); elsewhere it is *sole*. The *average* bottleneck is
  the machine with the largest share of active time.
* **Turning point** (Li, Chang & Ni 2009): with ``d_i = blocked_i - starved_i``, upstream of
  the bottleneck machines are mostly blocked (``d > 0``) and downstream mostly starved
  (``d < 0``); the bottleneck is where the sign turns (ties: least blocked + starved).
* **Utilisation** (share of time running), shown for comparison: it is the common rule of
  thumb and is wrong when an unreliable machine hides behind its own downtime.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from andon.model.types import I64, MachineState, Micros, StateBatch

__all__ = ["BottleneckReport", "analyse", "timeline_batch"]

_ACTIVE = np.array(
    [
        s in (MachineState.RUNNING, MachineState.DOWN, MachineState.PLANNED_STOP)
        for s in MachineState
    ]
)


@dataclass(frozen=True, slots=True)
class BottleneckReport:
    """Bottleneck figures per machine (in flow order) over ``[start, end)``."""

    machines: tuple[str, ...]
    start: Micros
    end: Micros
    active: dict[str, float]
    """Share of the analysed time each machine is active (average active-period method)."""
    sole: dict[str, float]
    """Share of time each machine is the sole momentary bottleneck."""
    shifting: dict[str, float]
    """Share of time each machine is a shifting bottleneck."""
    shifting_total: float
    """Share of time the bottleneck is shifting (each overlap once). ``sum(sole) +
    shifting_total`` is the share of time with a bottleneck, so never above 1; the
    per-machine ``shifting`` shares count each overlap for both machines and do not add up."""
    utilisation: dict[str, float]
    blocked: dict[str, float]
    starved: dict[str, float]
    down: dict[str, float]

    @property
    def average_bottleneck(self) -> str:
        return max(self.machines, key=lambda m: self.active[m])

    @property
    def momentary_bottleneck(self) -> str:
        """The machine that is (sole or shifting) bottleneck the largest share of time."""
        return max(self.machines, key=lambda m: self.sole[m] + self.shifting[m])

    @property
    def utilisation_bottleneck(self) -> str:
        return max(self.machines, key=lambda m: self.utilisation[m])

    @property
    def turning_point(self) -> str:
        d = [self.blocked[m] - self.starved[m] for m in self.machines]
        n = len(d)
        cands = [j for j in range(n) if (j == 0 or d[j - 1] > 0) and (j == n - 1 or d[j + 1] < 0)]
        if not cands:
            cands = list(range(n))
        best = min(
            cands, key=lambda j: self.blocked[self.machines[j]] + self.starved[self.machines[j]]
        )
        return self.machines[best]

    def as_dict(self) -> dict[str, object]:
        return {
            "machines": list(self.machines),
            "bottleneck": {
                "active_period_average": self.average_bottleneck,
                "active_period_momentary": self.momentary_bottleneck,
                "turning_point": self.turning_point,
                "utilisation": self.utilisation_bottleneck,
            },
            "per_machine": {
                m: {
                    "active": round(self.active[m], 4),
                    "sole": round(self.sole[m], 4),
                    "shifting": round(self.shifting[m], 4),
                    "utilisation": round(self.utilisation[m], 4),
                    "blocked": round(self.blocked[m], 4),
                    "starved": round(self.starved[m], 4),
                    "down": round(self.down[m], 4),
                }
                for m in self.machines
            },
        }


def timeline_batch(
    states: dict[str, list[tuple[float, int]]], t0: Micros, end_s: float, order: Sequence[str]
) -> StateBatch:
    """A simulated run's state change points ``(engine s, state)`` per machine as the
    ``StateBatch`` the store would hold (intervals ``[start, end)`` in µs)."""
    idx: list[int] = []
    start: list[int] = []
    stop: list[int] = []
    code: list[int] = []
    for i, m in enumerate(order):
        pts = states.get(m, [])
        for (t, s), t2 in zip(pts, [p[0] for p in pts[1:]] + [end_s], strict=True):
            a, b = t0 + round(t * 1e6), t0 + round(min(t2, end_s) * 1e6)
            if b > a:
                idx.append(i)
                start.append(a)
                stop.append(b)
                code.append(s)
    return StateBatch.build(list(order), idx, start, stop, code)


def _periods(batch: StateBatch, i: int, start: Micros, end: Micros) -> tuple[I64, I64]:
    """Active periods of machine ``i``: merged runs of active intervals, clipped."""
    sel = batch.index == i
    a = np.clip(batch.start[sel], start, end)
    b = np.clip(batch.end[sel], start, end)
    act = _ACTIVE[batch.state[sel]]
    keep = (b > a) & act
    a, b = a[keep], b[keep]
    if len(a) == 0:
        return a, b
    order = np.argsort(a, kind="stable")
    a, b = a[order], b[order]
    new = np.ones(len(a), dtype=bool)
    new[1:] = a[1:] > b[:-1]  # touching intervals belong to one period
    group = np.cumsum(new) - 1
    ps = a[new]
    pe = np.maximum.reduceat(b, np.flatnonzero(new))
    del group
    return ps.astype(np.int64), pe.astype(np.int64)


def _share(batch: StateBatch, i: int, state: MachineState, start: Micros, end: Micros) -> float:
    sel = (batch.index == i) & (batch.state == int(state))
    a = np.clip(batch.start[sel], start, end)
    b = np.clip(batch.end[sel], start, end)
    return float(np.sum(b - a)) / (end - start)


def analyse(
    batch: StateBatch, start: Micros, end: Micros, machines: Sequence[str] | None = None
) -> BottleneckReport:
    """Bottleneck figures of the machines (flow order; default: the batch's names)."""
    if end <= start:
        raise ValueError("empty time range")
    order = tuple(machines) if machines is not None else batch.names
    pos = {n: i for i, n in enumerate(batch.names)}
    span = end - start
    periods = [
        _periods(batch, pos[m], start, end) if m in pos else (np.zeros(0, np.int64),) * 2
        for m in order
    ]
    cuts = np.unique(
        np.concatenate([np.array([start, end], np.int64)] + [x for p in periods for x in p])
    )
    left, right = cuts[:-1], cuts[1:]
    n, k = len(order), len(left)
    dur = np.full((n, k), -1, dtype=np.int64)
    pid = np.full((n, k), -1, dtype=np.int64)
    for j, (ps, pe) in enumerate(periods):
        if len(ps) == 0:
            continue
        at = np.searchsorted(ps, left, side="right") - 1
        ok = (at >= 0) & (left < pe[np.maximum(at, 0)])
        dur[j, ok] = (pe - ps)[at[ok]]
        pid[j, ok] = at[ok]
    best = np.argmax(dur, axis=0)
    has = dur[best, np.arange(k)] >= 0
    width = (right - left).astype(np.float64)
    shifting = np.zeros(n)
    # bottleneck periods: runs of the same (machine, active period)
    key_m = np.where(has, best, -1)
    key_p = np.where(has, pid[best, np.arange(k)], -1)
    runs: list[list[float]] = []  # [machine, period, first instant, last instant, seconds]
    lefts, rights = left.tolist(), right.tolist()
    for x, (m_, p_, w_) in enumerate(
        zip(key_m.tolist(), key_p.tolist(), width.tolist(), strict=True)
    ):
        if m_ < 0:
            continue
        if runs and runs[-1][0] == m_ and runs[-1][1] == p_:
            runs[-1][3] = rights[x]
            runs[-1][4] += w_
        else:
            runs.append([m_, p_, lefts[x], rights[x], w_])
    shifted = np.zeros(k, dtype=bool)  # cut segments inside a shifting overlap
    for r in range(len(runs) - 1):
        m_, p_ = int(runs[r][0]), int(runs[r][1])
        mq, pq = int(runs[r + 1][0]), int(runs[r + 1][1])
        if mq == m_:
            continue
        a = max(periods[m_][0][p_], periods[mq][0][pq])
        b = min(periods[m_][1][p_], periods[mq][1][pq])
        if b <= a:
            continue
        shifting[m_] += b - a  # each overlap counts once for both machines
        shifting[mq] += b - a
        # a and b are period bounds, so cuts: the overlap is whole segments
        shifted[np.searchsorted(left, a) : np.searchsorted(left, b)] = True
    # sole: the instants a machine is the momentary bottleneck outside every shifting overlap
    alone = has & ~shifted
    sole = np.bincount(best[alone], weights=width[alone], minlength=n).astype(np.float64)
    ids = list(order)

    def per(state: MachineState) -> dict[str, float]:
        return {m: _share(batch, pos[m], state, start, end) if m in pos else 0.0 for m in ids}

    active = {m: float(np.sum(periods[j][1] - periods[j][0])) / span for j, m in enumerate(ids)}
    return BottleneckReport(
        machines=tuple(ids),
        start=start,
        end=end,
        active=active,
        sole={m: float(sole[j]) / span for j, m in enumerate(ids)},
        shifting={m: float(shifting[j]) / span for j, m in enumerate(ids)},
        shifting_total=float(np.sum(width[shifted])) / span,
        utilisation=per(MachineState.RUNNING),
        blocked=per(MachineState.BLOCKED),
        starved=per(MachineState.STARVED),
        down=per(MachineState.DOWN),
    )

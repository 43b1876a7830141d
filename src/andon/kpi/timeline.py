"""The ISO 22400 time model over a state timeline, vectorised.

Every state interval is put into exactly one *time class* (``TimeClass``), so the classes of
a machine always add up to its calendar time:

==================  ==========================================================  ============
class               what                                                        in PBT?
==================  ==========================================================  ============
``running``         actual production time (APT)                                 yes
``breakdown``       ``down`` for at least the micro-stop threshold               yes
``minor_stop``      ``down``, ``starved`` or ``blocked`` shorter than it         yes
``idle``            ``starved`` / ``blocked`` for at least the threshold         yes
``setup``           ``planned_stop`` whose reason is not planned downtime        yes
                    (changeover, tool change, wheel change, dressing, …)
``planned_down``    ``planned_stop`` for ``break`` / ``planned_maintenance``     no
``not_scheduled``   ``offline``                                                  no
``no_data``         nothing reported, or ``offline``, in planned busy time       yes
==================  ==========================================================  ============

That table is the *state-only* model (``classify``), used when no shift calendar is given.
With the calendar (``Plan``, ISO 22400-2: planned busy time = planned operating time −
planned downtime), ``apply_plan`` lets the calendar decide what is planned: time inside a
calendar break or maintenance window is ``planned_down`` and time outside every shift is
``not_scheduled``, whatever the machine did; inside the shifts the state decides, except that
a ``planned_stop`` for a break taken outside the calendar's breaks is ``setup`` (a planned
stop inside planned busy time) and ``offline`` or unreported time is ``no_data``. Running
outside planned time is kept apart (``Piece.outside``), never in planned busy time. See
``docs/decisions/0100-kpi-time-model.md`` and ``0105-planned-busy-time-from-the-calendar.md``.

Intervals are classified on the stored intervals *before* they are cut into time buckets or
calendar periods, so a five-minute stop that straddles midnight or a break is still one
five-minute stop.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np
import numpy.typing as npt

from andon.model.calendar import BREAK, MAINTENANCE, NOT_SCHEDULED, expand_calendar
from andon.model.plant import Calendar
from andon.model.types import I32, I64, U8, MachineState, Micros, StateBatch

__all__ = [
    "PLANNED_DOWNTIME_REASONS",
    "Buckets",
    "Pieces",
    "Plan",
    "PlanStatus",
    "PlannedPieces",
    "TimeClass",
    "TimeModel",
    "apply_plan",
    "classify",
    "codes_of",
    "merge_touching",
    "split",
]

PLANNED_DOWNTIME_REASONS: frozenset[str] = frozenset({"break", "planned_maintenance"})
"""Planned-stop reasons that are planned downtime (outside planned busy time)."""


class TimeClass(IntEnum):
    """Time classes of the ISO 22400 time model, one per state interval."""

    RUNNING = 0
    BREAKDOWN = 1
    MINOR_STOP = 2
    IDLE = 3
    SETUP = 4
    PLANNED_DOWN = 5
    NOT_SCHEDULED = 6
    NO_DATA = 7

    @property
    def label(self) -> str:
        """The lower-case name used in tables and JSON."""
        return self.name.lower()


N_CLASSES = len(TimeClass)


@dataclass(frozen=True, slots=True)
class TimeModel:
    """Parameters of the time model and the loss waterfall.

    ``micro_stop_s``: unplanned stops (and starved/blocked spells) shorter than this are minor
    stops. ``planned_downtime``: planned-stop reasons outside planned busy time.
    ``startup_parts``: scrap among the first this many parts after a setup or after the
    machine comes back from planned downtime or off shift counts as start-up rejects.
    ``cycle_window_s``: a part's work (its ideal time, spread over the running time of its
    cycle) is looked for at most this long before it finishes.
    """

    micro_stop_s: float = 300.0
    planned_downtime: frozenset[str] = field(default=PLANNED_DOWNTIME_REASONS)
    startup_parts: int = 3
    cycle_window_s: float = 3600.0

    def __post_init__(self) -> None:
        if not self.micro_stop_s >= 0:
            raise ValueError(f"micro_stop_s must not be negative, got {self.micro_stop_s}")
        if self.startup_parts < 0:
            raise ValueError(f"startup_parts must not be negative, got {self.startup_parts}")
        if not self.cycle_window_s > 0:
            raise ValueError(f"cycle_window_s must be positive, got {self.cycle_window_s}")


def codes_of(values: Sequence[str]) -> tuple[tuple[str, ...], I32]:
    """Dictionary-encode a column of strings: ``(distinct values, codes)``.

    >>> codes_of(["a", "b", "a"])
    (('a', 'b'), array([0, 1, 0], dtype=int32))
    """
    lookup: dict[str, int] = {}
    for v in dict.fromkeys(values):
        lookup[v] = len(lookup)
    codes = np.fromiter(map(lookup.__getitem__, values), dtype=np.int32, count=len(values))
    return tuple(lookup), codes


def merge_touching(states: StateBatch) -> StateBatch:
    """Join intervals of one machine that touch and share state and reason.

    Stores may cut one stop into several rows (a window boundary, a re-sent interval); a
    micro-stop is judged on the whole stop. Rows are sorted by (machine, start) first.
    """
    n = len(states)
    if n == 0:
        return states
    order = np.lexsort((states.start, states.index))
    idx = states.index[order]
    st = states.start[order]
    en = states.end[order]
    ss = states.state[order]
    rnames, rcodes = codes_of(states.reason)
    rc = rcodes[order]
    cont = np.zeros(n, dtype=bool)
    cont[1:] = (
        (idx[1:] == idx[:-1]) & (st[1:] == en[:-1]) & (ss[1:] == ss[:-1]) & (rc[1:] == rc[:-1])
    )
    if not cont.any() and bool(np.all(order == np.arange(n))):
        return states
    head = np.flatnonzero(~cont)
    group = np.cumsum(~cont) - 1
    ends = np.zeros(len(head), dtype=np.int64)
    np.maximum.at(ends, group, en)
    return StateBatch(
        states.names,
        idx[head],
        st[head],
        ends,
        ss[head],
        tuple(rnames[int(c)] for c in rc[head]),
    )


def classify(states: StateBatch, model: TimeModel) -> U8:
    """The ``TimeClass`` of every interval of ``states`` (uint8 codes)."""
    rnames, rcodes = codes_of(states.reason)
    planned_down = np.array([r in model.planned_downtime for r in rnames], dtype=bool)
    dur_s = (states.end - states.start).astype(np.float64) / 1e6
    short = dur_s < model.micro_stop_s
    s = states.state
    out = np.full(len(states), TimeClass.RUNNING, dtype=np.uint8)
    down = s == MachineState.DOWN
    wait = (s == MachineState.STARVED) | (s == MachineState.BLOCKED)
    out[down] = TimeClass.BREAKDOWN
    out[wait] = TimeClass.IDLE
    out[(down | wait) & short] = TimeClass.MINOR_STOP
    ps = s == MachineState.PLANNED_STOP
    if len(rnames):
        pd = planned_down[rcodes]
        out[ps & pd] = TimeClass.PLANNED_DOWN
        out[ps & ~pd] = TimeClass.SETUP
    out[s == MachineState.OFFLINE] = TimeClass.NOT_SCHEDULED
    return out


@dataclass(frozen=True, slots=True)
class Buckets:
    """Contiguous time buckets ``[edges[i], edges[i+1])`` with a label each."""

    edges: I64
    labels: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(self.edges) != len(self.labels) + 1:
            raise ValueError("Buckets: need one more edge than labels")
        if len(self.edges) > 1 and bool(np.any(np.diff(self.edges) <= 0)):
            raise ValueError("Buckets: edges must increase")

    @classmethod
    def single(cls, start: int, end: int, label: str = "all") -> Buckets:
        """One bucket for the whole range."""
        return cls(np.array([start, end], dtype=np.int64), (label,))

    def __len__(self) -> int:
        return len(self.labels)

    def of(self, ts: I64) -> I32:
        """Bucket of each time stamp; -1 outside the buckets."""
        k = np.searchsorted(self.edges, ts, side="right") - 1
        k[(ts < self.edges[0]) | (ts >= self.edges[-1])] = -1
        return k.astype(np.int32)


@dataclass(frozen=True, slots=True)
class Pieces:
    """Intervals cut at bucket edges: ``row`` points at the source interval."""

    row: I64
    bucket: I32
    start: I64
    end: I64


def cut_at(start: I64, end: I64, edges: I64) -> tuple[I64, I64, I64, I64]:
    """Cut intervals ``[start, end)`` at increasing ``edges``; parts outside are dropped.

    Returns ``(row, k, start, end)`` of each piece: its source interval and the index of the
    span ``[edges[k], edges[k+1])`` it lies in.

    >>> [a.tolist() for a in cut_at(np.array([5]), np.array([25]), np.array([0, 10, 20, 30]))]
    [[0, 0, 0], [0, 1, 2], [5, 10, 20], [10, 20, 25]]
    """
    s = np.maximum(start, edges[0])
    t = np.minimum(end, edges[-1])
    keep = np.flatnonzero(t > s)
    s, t = s[keep], t[keep]
    b0 = np.searchsorted(edges, s, side="right") - 1
    b1 = np.searchsorted(edges, t, side="left") - 1
    count = b1 - b0 + 1
    rep = np.repeat(np.arange(len(s)), count)
    offs = np.arange(len(rep)) - np.repeat(np.cumsum(count) - count, count)
    k = (b0[rep] + offs).astype(np.int64)
    ps = np.maximum(s[rep], edges[k])
    pe = np.minimum(t[rep], edges[k + 1])
    return keep[rep].astype(np.int64), k, ps, pe


def split(start: I64, end: I64, buckets: Buckets) -> Pieces:
    """Cut intervals ``[start, end)`` at the bucket edges; parts outside are dropped.

    >>> b = Buckets(np.array([0, 10, 20]), ("x", "y"))
    >>> p = split(np.array([5, 15]), np.array([15, 30]), b)
    >>> p.row.tolist(), p.bucket.tolist(), p.start.tolist(), p.end.tolist()
    ([0, 0, 1], [0, 1, 1], [5, 10, 15], [10, 15, 20])
    """
    row, k, ps, pe = cut_at(start, end, buckets.edges)
    return Pieces(row, k.astype(np.int32), ps, pe)


class PlanStatus(IntEnum):
    """What the shift calendar plans for a period (``andon.model.calendar`` statuses)."""

    SCHEDULED = 0
    PLANNED_DOWN = 1
    """A break or a planned-maintenance window inside or outside a shift."""
    NOT_SCHEDULED = 2


_PLAN_STATUS = {
    BREAK: PlanStatus.PLANNED_DOWN,
    MAINTENANCE: PlanStatus.PLANNED_DOWN,
    NOT_SCHEDULED: PlanStatus.NOT_SCHEDULED,
}


@dataclass(frozen=True, slots=True)
class Plan:
    """Each machine's shift calendar over a range: periods ``[start, end)`` with a
    ``PlanStatus`` (uint8), covering the range without gaps for every machine."""

    names: tuple[str, ...]
    index: I32
    start: I64
    end: I64
    status: U8

    def __len__(self) -> int:
        return len(self.index)

    @classmethod
    def from_calendar(
        cls,
        calendar: Calendar,
        timezone: str,
        machines: Mapping[str, str],
        start: Micros,
        end: Micros,
    ) -> Plan:
        """The calendar expanded over ``[start, end)`` for ``machines`` (name → the machine's
        id, which the calendar's maintenance windows name).

        >>> cal = Calendar.model_validate({"shifts": [{"name": "d", "start": "06:00",
        ...     "end": "14:00"}], "breaks": [{"name": "tea", "start": "10:00", "end": "10:15"}]})
        >>> p = Plan.from_calendar(cal, "UTC", {"s/a/l/m": "m"}, 0, 86_400_000_000)
        >>> [(int(a) // 60_000_000, int(s)) for a, s in zip(p.start, p.status)]
        [(0, 2), (360, 0), (600, 1), (615, 0), (840, 2)]
        """
        if end <= start:
            raise ValueError("Plan.from_calendar: the range is empty: end must be after start")
        cache: dict[frozenset[int], tuple[list[int], list[int], list[int]]] = {}
        idx: list[int] = []
        st: list[int] = []
        en: list[int] = []
        ss: list[int] = []
        for pos, mid in enumerate(machines.values()):
            key = frozenset(i for i, m in enumerate(calendar.maintenance) if mid in m.machines)
            rows = cache.get(key)
            if rows is None:
                periods = expand_calendar(calendar, timezone, mid, start, end)
                rows = (
                    [p.start for p in periods],
                    [p.end for p in periods],
                    [int(_PLAN_STATUS.get(p.status, PlanStatus.SCHEDULED)) for p in periods],
                )
                cache[key] = rows
            idx += [pos] * len(rows[0])
            st += rows[0]
            en += rows[1]
            ss += rows[2]
        return cls(
            tuple(machines),
            np.asarray(idx, dtype=np.int32),
            np.asarray(st, dtype=np.int64),
            np.asarray(en, dtype=np.int64),
            np.asarray(ss, dtype=np.uint8),
        )


@dataclass(frozen=True, slots=True)
class PlannedPieces:
    """A timeline cut at the calendar's period edges, gaps filled, one class per piece.

    ``machine`` is the machine's position, ``row`` the source interval (-1 for time nothing
    was reported), ``cls`` the ``TimeClass`` under the calendar, ``state_cls`` the class
    the state alone gives (``NO_DATA`` for a gap) and ``outside`` marks running outside
    planned time (in a calendar break or maintenance window, or off shift).
    """

    machine: I64
    row: I64
    start: I64
    end: I64
    cls: U8
    state_cls: U8
    outside: npt.NDArray[np.bool_]

    def __len__(self) -> int:
        return len(self.machine)


def apply_plan(
    machine: I64, start: I64, end: I64, state_cls: U8, plan: Plan, plan_machine: I64
) -> PlannedPieces:
    """Classify a timeline under the calendar (see the module's docstring).

    ``machine`` gives each interval's machine position, ``plan_machine`` each plan row's
    (rows of a machine contiguous in ``[start, end)`` of the plan). Time of a machine with
    calendar periods that no interval covers is filled (``row`` -1): ``no_data`` in planned
    busy time, ``planned_down`` or ``not_scheduled`` outside it. Parts of intervals outside
    the machine's plan, and machines without one, keep the state-only class. The result is
    sorted by machine, then start.
    """
    unknown = np.uint8(255)
    pv = np.flatnonzero(plan_machine >= 0)
    if len(machine) == 0 and len(pv) == 0:
        z = np.zeros(0, dtype=np.int64)
        zc = np.zeros(0, dtype=np.uint8)
        return PlannedPieces(z, z, z, z, zc, zc, np.zeros(0, dtype=bool))
    lo = min(int(x.min()) for x in (start, plan.start[pv]) if len(x))
    hi = max(int(x.max()) for x in (end, plan.end[pv]) if len(x))
    n_m = int(max(machine.max(initial=-1), plan_machine.max(initial=-1))) + 1
    span = hi - lo + 1
    if n_m * span >= 2**62:
        raise ValueError("apply_plan: the time range is too long to index")

    def key(m: I64, t: I64) -> I64:
        return m.astype(np.int64) * span + (t - lo)

    # the plan, by machine and start; each machine's first and last period
    o = np.lexsort((plan.start[pv], plan_machine[pv]))
    pm, pa, pb, pst = plan_machine[pv][o], plan.start[pv][o], plan.end[pv][o], plan.status[pv][o]
    first = np.r_[True, pm[1:] != pm[:-1]] if len(pm) else np.zeros(0, dtype=bool)
    last = np.r_[pm[1:] != pm[:-1], True] if len(pm) else np.zeros(0, dtype=bool)
    has_plan = np.zeros(n_m, dtype=bool)
    has_plan[pm] = True
    plan_lo = np.zeros(n_m, dtype=np.int64)
    plan_hi = np.zeros(n_m, dtype=np.int64)
    plan_lo[pm[first]] = pa[first]
    plan_hi[pm[last]] = pb[last]

    # the timeline by machine and start; what no interval covers inside each machine's plan
    so = np.lexsort((start, machine))
    m, a, b, c = machine[so].astype(np.int64), start[so], end[so], state_cls[so]
    reach = np.maximum.accumulate(key(m, b)) if len(m) else np.zeros(0, dtype=np.int64)
    before = np.r_[-1, reach[:-1]] if len(m) else reach
    g0 = np.maximum(before, key(m, plan_lo[m]))
    g1 = np.minimum(key(m, a), key(m, plan_hi[m]))
    inner = has_plan[m] & (g1 > g0)
    tail = np.r_[m[1:] != m[:-1], True] if len(m) else np.zeros(0, dtype=bool)
    mt = m[tail]
    t0 = np.maximum(reach[tail], key(mt, plan_lo[mt]))
    t1 = key(mt, plan_hi[mt])
    trailing = has_plan[mt] & (t1 > t0)
    silent = np.flatnonzero(has_plan & ~np.isin(np.arange(n_m), m))
    gap_a = np.concatenate((g0[inner], t0[trailing], key(silent, plan_lo[silent])))
    gap_b = np.concatenate((g1[inner], t1[trailing], key(silent, plan_hi[silent])))
    all_a = np.concatenate((key(m, a), gap_a))
    all_b = np.concatenate((key(m, b), gap_b))
    all_row = np.concatenate((so.astype(np.int64), np.full(len(gap_a), -1, dtype=np.int64)))
    all_c = np.concatenate((c, np.full(len(gap_a), TimeClass.NO_DATA, dtype=np.uint8)))

    # cut at every machine's period edges; between machines' plans the status is unknown
    e_key = np.concatenate((key(pm, pa), key(pm[last], pb[last])))
    e_status = np.concatenate((pst, np.full(int(last.sum()), unknown, dtype=np.uint8)))
    eo = np.argsort(e_key, kind="stable")
    edges = np.concatenate(([-2], e_key[eo], [n_m * span + 1]))
    status = np.concatenate(([unknown], e_status[eo]))
    k_row, k, qa, qb = cut_at(all_a, all_b, edges)
    order = np.argsort(qa, kind="stable")
    k_row, k, qa, qb = k_row[order], k[order], qa[order], qb[order]
    pm_out = qa // span
    sc = all_c[k_row]
    st = status[k]
    cls = sc.copy()
    sched = st == PlanStatus.SCHEDULED
    cls[sched & (sc == TimeClass.PLANNED_DOWN)] = TimeClass.SETUP
    cls[sched & (sc == TimeClass.NOT_SCHEDULED)] = TimeClass.NO_DATA
    cls[st == PlanStatus.PLANNED_DOWN] = TimeClass.PLANNED_DOWN
    cls[st == PlanStatus.NOT_SCHEDULED] = TimeClass.NOT_SCHEDULED
    outside = (sc == TimeClass.RUNNING) & (
        (st == PlanStatus.PLANNED_DOWN) | (st == PlanStatus.NOT_SCHEDULED)
    )
    return PlannedPieces(
        pm_out,
        all_row[k_row],
        qa - pm_out * span + lo,
        qb - pm_out * span + lo,
        cls,
        sc,
        outside,
    )

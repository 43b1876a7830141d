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
==================  ==========================================================  ============

See ``docs/decisions/0100-kpi-time-model.md`` for why setup stays inside planned busy time.
Intervals are classified on the stored intervals *before* they are cut into time buckets,
so a five-minute stop that straddles midnight is still one five-minute stop.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np

from andon.model.types import I32, I64, U8, MachineState, StateBatch

__all__ = [
    "PLANNED_DOWNTIME_REASONS",
    "Buckets",
    "Pieces",
    "TimeClass",
    "TimeModel",
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
    """

    micro_stop_s: float = 300.0
    planned_downtime: frozenset[str] = field(default=PLANNED_DOWNTIME_REASONS)
    startup_parts: int = 3

    def __post_init__(self) -> None:
        if self.micro_stop_s < 0:
            raise ValueError("micro_stop_s must not be negative")
        if self.startup_parts < 0:
            raise ValueError("startup_parts must not be negative")


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


def split(start: I64, end: I64, buckets: Buckets) -> Pieces:
    """Cut intervals ``[start, end)`` at the bucket edges; parts outside are dropped.

    >>> b = Buckets(np.array([0, 10, 20]), ("x", "y"))
    >>> p = split(np.array([5, 15]), np.array([15, 30]), b)
    >>> p.row.tolist(), p.bucket.tolist(), p.start.tolist(), p.end.tolist()
    ([0, 0, 1], [0, 1, 1], [5, 10, 15], [10, 15, 20])
    """
    e = buckets.edges
    s = np.maximum(start, e[0])
    t = np.minimum(end, e[-1])
    keep = np.flatnonzero(t > s)
    s, t = s[keep], t[keep]
    b0 = np.searchsorted(e, s, side="right") - 1
    b1 = np.searchsorted(e, t, side="left") - 1
    count = b1 - b0 + 1
    rep = np.repeat(np.arange(len(s)), count)
    offs = np.arange(len(rep)) - np.repeat(np.cumsum(count) - count, count)
    bucket = (b0[rep] + offs).astype(np.int32)
    ps = np.maximum(s[rep], e[bucket])
    pe = np.minimum(t[rep], e[bucket + 1])
    return Pieces(keep[rep].astype(np.int64), bucket, ps, pe)

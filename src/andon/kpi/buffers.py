"""Buffer levels derived from the part counts and states of the machines on either side.

A buffer between producers ``U`` and consumers ``D`` changes by one when a producer puts a
finished good part in and when a consumer takes a part out to start work on it. Neither is
reported directly, but both follow from what machines report:

* a producer *puts* each good part it finishes, except the one it holds while ``blocked``
  (the buffer was full when it finished);
* a consumer *takes* each part it finishes (good or scrap), plus the one it is working on
  while ``running`` or ``down`` (a failure interrupts a cycle; the part stays inside).

So from a moment ``a`` at which the level is known, the level at ``t`` is::

    level(a) + G(a, t] - (H(t) - H(a)) - F(a, t] - (W(t) - W(a))

with ``G`` the producers' good parts, ``F`` the consumers' parts, ``H`` the number of blocked
producers and ``W`` the number of consumers holding a part. Known moments come from the
states themselves: when a consumer fed only by this buffer turns ``starved`` the buffer is
empty, when a producer feeding only this buffer turns ``blocked`` it is full. The latest such
moment is the anchor, so counting errors (a lost part event) do not accumulate beyond it; with
no such moment in the history given, the model's ``initial`` level at the start of the history
is the anchor. The result is clipped to ``[0, capacity]``. A plant that measures a buffer
(a ``buffer_level`` signal named in the model) should show the measurement instead: see
``level_from_signal``.

The virtual factory keeps the true levels; tests/kpi/test_buffers.py compares the two.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from andon.model.plant import Buffer, Plant
from andon.model.types import MachineState, Micros, PartBatch, StateBatch

__all__ = ["BufferLevel", "Source", "buffer_levels", "line_buffers"]

Source = Literal["empty", "full", "initial", "signal"]
"""What the level is counted from: a consumer starving (``empty``), a producer blocked
(``full``), the model's initial level at the start of the history, or a measurement."""

_HOLDING = (int(MachineState.RUNNING), int(MachineState.DOWN))
_EMPTY_HANDED = (int(MachineState.STARVED), int(MachineState.BLOCKED))
_NO_PART_STOPS = frozenset({"tool_change", "wheel_change", "dressing"})
"""Planned stops that begin between parts (the consumable is changed with the machine empty)."""
_PART_STOPS = frozenset({"changeover"})
"""Planned stops that begin with the next part taken (set-up for it)."""


@dataclass(frozen=True, slots=True)
class BufferLevel:
    buffer: str
    """``site/area/line/buffer``."""
    level: int
    capacity: int
    at: Micros
    source: Source
    anchor: Micros
    """The moment the count starts from (the measurement's time for ``signal``)."""


def line_buffers(plant: Plant, line: str) -> list[tuple[str, Buffer, list[str], list[str]]]:
    """``(buffer path, buffer, producer paths, consumer paths)`` of a line path."""
    for a, ln in plant.lines():
        path = f"{plant.site.id}/{a.id}/{ln.id}"
        if path == line:
            return [
                (
                    f"{path}/{b.id}",
                    b,
                    [f"{path}/{m}" for m in b.from_],
                    [f"{path}/{m}" for m in b.to],
                )
                for b in ln.buffers
            ]
    raise ValueError(f"line: {line!r} is not a line of this plant")


class _Timeline:
    """One machine's states, sorted, with ``state_at(t)`` (the interval ``start <= t < end``)."""

    def __init__(self, states: StateBatch, name: str) -> None:
        i = states.names.index(name) if name in states.names else -1
        sel = np.flatnonzero(states.index == i) if i >= 0 else np.zeros(0, np.int64)
        order = np.argsort(states.start[sel], kind="stable")
        self.start = states.start[sel][order]
        self.end = states.end[sel][order]
        self.state = states.state[sel][order]
        self.reason = [states.reason[int(k)] for k in sel[order]]

    def state_at(self, t: Micros) -> int | None:
        """The state at ``t``; at the very end of the history, the last state (the data of
        a moment ends with the intervals it closed)."""
        k = int(np.searchsorted(self.start, t, side="right")) - 1
        if k < 0 or t > int(self.end[k]) or (t == int(self.end[k]) and k < len(self.end) - 1):
            return None
        return int(self.state[k])

    def holds_part(self, t: Micros) -> bool:
        """Whether the machine has a part inside at ``t`` (taken, not yet finished)."""
        k = int(np.searchsorted(self.start, t, side="right")) - 1
        while k >= 0 and t < int(self.end[k]) + 1:
            st = int(self.state[k])
            if st in _HOLDING:
                return True
            if st in _EMPTY_HANDED:
                return False
            if self.reason[k] in _NO_PART_STOPS:
                return False
            if self.reason[k] in _PART_STOPS:
                return True
            # a break, maintenance or time off shift keeps what was inside when it began
            t = int(self.start[k]) - 1
            k -= 1
        return False

    def last_start_of(self, state: MachineState, until: Micros) -> Micros | None:
        """The start of the latest interval in ``state`` that began at or before ``until``."""
        sel = np.flatnonzero((self.state == int(state)) & (self.start <= until))
        return None if not len(sel) else int(self.start[sel[-1]])


def _count(parts: PartBatch, names: list[str], a: Micros, t: Micros, good_only: bool) -> int:
    idx = [i for i, n in enumerate(parts.names) if n in names]
    sel = np.isin(parts.index, idx) & (parts.ts > a) & (parts.ts <= t)
    n = int(parts.good[sel].sum())
    return n if good_only else n + int(parts.scrap[sel].sum())


def buffer_levels(
    plant: Plant,
    line: str,
    states: StateBatch,
    parts: PartBatch,
    at: Micros,
    *,
    history_start: Micros | None = None,
) -> list[BufferLevel]:
    """The level of every buffer of ``line`` at ``at``, from ``states`` (closed and open
    intervals up to ``at``) and ``parts`` of the line's machines. ``history_start``: where the
    data given begins, if the plant (and its buffers' ``initial`` levels) started there; else
    a buffer with no empty/full moment in the data gets no level."""
    out = []
    feeds: dict[str, int] = {}
    fed: dict[str, int] = {}
    bufs = line_buffers(plant, line)
    for _, _, ups, downs in bufs:
        for u in ups:
            feeds[u] = feeds.get(u, 0) + 1
        for d in downs:
            fed[d] = fed.get(d, 0) + 1
    tl = {m: _Timeline(states, m) for _, _, ups, downs in bufs for m in (*ups, *downs)}
    for path, b, ups, downs in bufs:

        def held(t: Micros, ups: list[str] = ups, downs: list[str] = downs) -> tuple[int, int]:
            h = sum(tl[u].state_at(t) == int(MachineState.BLOCKED) for u in ups)
            w = sum(tl[d].holds_part(t) for d in downs)
            return h, w

        anchors: list[tuple[Micros, int, Source]] = []
        for d in downs:
            if fed[d] == 1:
                s = tl[d].last_start_of(MachineState.STARVED, at)
                if s is not None:
                    anchors.append((s, 0, "empty"))
        for u in ups:
            if feeds[u] == 1:
                s = tl[u].last_start_of(MachineState.BLOCKED, at)
                if s is not None:
                    anchors.append((s, b.capacity, "full"))
        if not anchors and history_start is not None:
            anchors.append((history_start, b.initial, "initial"))
        if not anchors:
            continue
        a, base, source = max(anchors, key=lambda x: (x[0], x[2] != "initial"))
        h_a, w_a = held(a) if source != "initial" else (0, 0)
        h_t, w_t = held(at)
        g = _count(parts, ups, a, at, good_only=True)
        f = _count(parts, downs, a, at, good_only=False)
        level = base + g - (h_t - h_a) - f - (w_t - w_a)
        out.append(BufferLevel(path, min(max(level, 0), b.capacity), b.capacity, at, source, a))
    return out

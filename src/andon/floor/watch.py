"""The floor kept current from the live bus: one store snapshot at connect, then events.

A live feed (``/sites/{id}/live``, ``/sites/{id}/kiosk/feed``) no longer reads the store
every tick to learn what changed. :class:`FloorWatch` starts from one
:func:`~andon.floor.alerts.floor_snapshot` and folds in what the live bus brings
(``andon.bus``): a machine's state intervals (``StateChanged``) and the samples of its
signals (``ValuesChanged``, for when it was last heard). Its statuses follow the rules of
``floor_snapshot`` exactly (:func:`~andon.floor.alerts.machine_status`): the time-derived
ones (``offline`` when silent, ``not_scheduled`` outside the shift calendar) are worked out
at each tick from the clock and the calendar, without the store.

**One case asks the store.** The ingest publishes an open state only when its ``(state,
start)`` changes, not each time an edge re-confirms it, so silence on the bus is not proof of
silence at the edge. When a scheduled machine would turn ``offline`` on the bus's word alone,
the watch asks for a store snapshot (:meth:`FloorWatch.to_confirm`, :meth:`confirm`) once;
after that, only news from the bus (the machine heard again) or the store's own answer that
it was heard later asks again. A site whose machines send samples never asks.

:class:`AlertMarks` is the alert half: which alerts a feed has sent in which state, so an
``AlertChanged`` from the bus turns into the alert's row only when something a client shows
changed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from andon.bus import Payload, StateChanged, ValuesChanged
from andon.floor.alerts import (
    NOT_SCHEDULED,
    OFFLINE,
    FloorSnapshot,
    Interval,
    MachineStatus,
    machine_plans,
    machine_status,
)
from andon.model.plant import Plant
from andon.model.types import Micros

__all__ = ["AlertMarks", "FloorWatch"]


class FloorWatch:
    """The status of ``machines`` (paths of ``plant``), from ``snapshot`` and the bus events
    folded in since (:meth:`fold`). :meth:`changed` answers the statuses that differ from
    those it answered before (all on its first call)."""

    def __init__(
        self,
        plant: Plant,
        machines: Iterable[str],
        snapshot: FloorSnapshot,
        stale_after_s: float,
    ) -> None:
        self.plant = plant
        self.machines = list(machines)
        self._mine = frozenset(self.machines)
        self.stale_us = int(stale_after_s * 1_000_000)
        self.newest: dict[str, Interval] = {}
        """Per machine, its newest interval: (state, start, end: the start while open,
        reason)."""
        self._open: dict[str, bool] = {}
        self._piece: dict[str, Micros] = {}
        """Per machine, the start of the newest piece the bus brought (``newest`` may join
        it to the pieces before it)."""
        self.last_seen: dict[str, Micros] = {}
        self._checked: dict[str, Micros] = {}
        """Per machine, when the store last answered for it (see :meth:`to_confirm`)."""
        self._sent: dict[str, tuple[str, Micros | None]] = {}
        self._quiet: set[str] = set()
        """Machines last answered ``offline`` or ``not_scheduled``."""
        self.confirm(snapshot)

    # -- what comes in

    def confirm(self, snap: FloorSnapshot) -> None:
        """Merge a store snapshot: its newest intervals and last-heard times where they are
        newer than the watch's."""
        for m in self.machines:
            got = snap.newest.get(m)
            if got is not None:
                cur = self.newest.get(m)
                if cur is None or got[1] > cur[1] or (got[1] == cur[1] and got[2] >= cur[2]):
                    self.newest[m] = got
                    # the store's end of an open state is when it was last confirmed, not
                    # an end: a later piece may begin before it
                    self._open[m] = True
                    self._piece[m] = got[1]
            seen = snap.last_seen.get(m)
            if seen is not None and seen > self.last_seen.get(m, -1):
                self.last_seen[m] = seen
            self._checked[m] = max(self._checked.get(m, snap.now), snap.now)

    def _heard(self, m: str, ts: Micros) -> None:
        if ts > self.last_seen.get(m, -1):
            self.last_seen[m] = ts

    def fold(self, payload: Payload) -> bool:
        """Fold one bus event in; whether it may change a status."""
        if isinstance(payload, StateChanged):
            return self._state(payload)
        if isinstance(payload, ValuesChanged):
            # a sample changes a status only when it may end a silence (a machine last
            # answered offline or not scheduled, or silent for longer than the threshold):
            # otherwise it keeps a machine fresh, which every tick checks
            woke = False
            for v in payload.values:
                m = v.signal.rpartition("/")[0]
                if m in self._mine:
                    before = self.last_seen.get(m)
                    woke |= m in self._quiet or before is None or v.ts - before > self.stale_us
                    self._heard(m, v.ts)
            return woke
        return False

    def _state(self, e: StateChanged) -> bool:
        m = e.machine
        if m not in self._mine:
            return False
        end = e.start if e.end is None else e.end
        self._heard(m, end)
        cur = self.newest.get(m)
        piece = self._piece.get(m)
        if cur is not None:
            if e.end is None and e.start < cur[2] and not self._open.get(m, False):
                return True  # an open state the history has passed (the store ignores it)
            if piece is not None and e.start < piece:
                return True  # an older piece: heard, but not the newest
        same = cur is not None and cur[0] == e.state and cur[3] == e.reason
        if cur is not None and piece == e.start:
            # the newest piece again (its open state closed): joined as it was if unchanged
            start = cur[1] if same else e.start
        else:
            # touching pieces of one state and reason are one interval (``merge_touching``)
            joined = same and cur is not None and cur[2] == e.start
            start = cur[1] if joined and cur is not None else e.start
        self.newest[m] = (e.state, start, end, e.reason)
        self._piece[m] = e.start
        self._open[m] = e.end is None
        return True

    # -- what goes out

    def status(self, now: Micros) -> dict[str, MachineStatus]:
        """Every machine's status at ``now`` (model order)."""
        plans = machine_plans(self.plant, now)
        return {
            m: machine_status(
                m, self.newest.get(m), self.last_seen.get(m), plans[m], now, self.stale_us
            )
            for m in self.machines
        }

    def to_confirm(self, now: Micros) -> list[str]:
        """Machines the bus alone would call silent at ``now`` whose silence the store has
        not confirmed since it began (an open state re-confirmed at the edge is stored, not
        published): ask it (one snapshot, :meth:`confirm`). Once confirmed silent, a
        machine is asked about again only after it is heard again."""
        out = []
        for m in self.machines:
            seen = self.last_seen.get(m)
            if seen is None or now - seen <= self.stale_us:
                continue
            if self._checked.get(m, -1) <= seen + self.stale_us:
                out.append(m)
        return out

    def changed(self, status: Mapping[str, MachineStatus]) -> list[MachineStatus]:
        """The statuses of ``status`` whose (state, since) differ from those answered
        before, remembered as answered."""
        out = []
        for m in self.machines:
            st = status[m]
            if self._sent.get(m) != (st.state, st.since):
                self._sent[m] = (st.state, st.since)
                out.append(st)
                if st.state in (OFFLINE, NOT_SCHEDULED):
                    self._quiet.add(m)
                else:
                    self._quiet.discard(m)
        return out


class AlertMarks:
    """Which alerts a feed has sent, by what a client shows of them: closed, acknowledged,
    shelved until. ``want``: whether a machine's alerts are the feed's (None: the site's)."""

    def __init__(self) -> None:
        self._sent: dict[str, tuple[int | None, int | None, int | None]] = {}

    @staticmethod
    def _mark(a: Mapping[str, Any]) -> tuple[int | None, int | None, int | None]:
        return (a["closed_at"], a["acked_at"], a["shelved_until"])

    def first(self, rows: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        """The open alerts among ``rows`` (what a feed sends first), remembered as sent."""
        out = []
        for a in rows:
            if a["closed_at"] is None:
                self._sent[a["id"]] = self._mark(a)
                out.append(a)
        return out

    def changed(self, rows: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        """The alerts among ``rows`` whose mark differs from the one sent, remembered."""
        out = []
        for a in rows:
            mark = self._mark(a)
            if self._sent.get(a["id"]) != mark:
                self._sent[a["id"]] = mark
                out.append(a)
        return out

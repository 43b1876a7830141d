"""What the ingestor publishes on the live bus after each store write (``andon.bus``).

Only what was stored, after validation and dedup, goes out, grouped by site (a name's first
path component is its site's plant key) on the topics of ``andon.bus.events``:

* samples: per signal, the **newest** sample of the write (the store's "last value" rule),
  and only when it is newer than the one last published for that signal — a late,
  out-of-order sample never replaces a newer value, and a resend the store refused as a
  duplicate is not published again. A write of duplicates only publishes nothing.
* text values (decision 0202): per signal, the newest text value of the write, by the same
  rule as samples (``TextsChanged``, on the site's ``texts`` topic).
* states: each closed interval, and each open state whose ``(state, start)`` differs from
  the one last published for the machine (an edge re-confirms its open states every flush).
* parts: per machine, the good and scrap counts the write added.

Publishing never fails an ingest: the data is stored. A failed publish is counted
(``LiveStats.failed``) and logged at most once per ``log_interval_s``.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from andon.bus import (
    LiveBus,
    PartsCounted,
    Payload,
    SignalText,
    SignalValue,
    StateChanged,
    TextsChanged,
    ValuesChanged,
    parts_topic,
    states_topic,
    texts_topic,
    values_topic,
)
from andon.ingest.ratelog import RateLimitedLog
from andon.model.types import Micros, PartBatch, SampleBatch, StateBatch, TextBatch

__all__ = ["LivePublisher", "LiveStats"]

log = logging.getLogger("andon.ingest.live")


@dataclass
class LiveStats:
    published: int = 0
    """Bus messages published."""
    failed: int = 0
    """Bus messages that could not be published (the data is stored all the same)."""

    def as_dict(self) -> dict[str, int]:
        return {"published": self.published, "failed": self.failed}


def _site(name: str) -> str:
    return name.partition("/")[0]


def _newest_rows(batch: SampleBatch | TextBatch) -> np.ndarray:
    """The row of each signal's greatest ts (the last such row on a tie). O(n) when each
    signal's rows come in time order, as an edge sends them; a sort otherwise."""
    n = len(batch)
    pos = np.full(len(batch.names), -1, dtype=np.int64)
    pos[batch.index] = np.arange(n)  # the last row of each signal (the last write wins)
    last = pos[pos >= 0]
    newest = np.zeros(len(batch.names), dtype=np.int64)
    newest[batch.index[last]] = batch.ts[last]
    if not (batch.ts > newest[batch.index]).any():
        return last
    order = np.lexsort((batch.ts, batch.index))
    idx = batch.index[order]
    return order[np.flatnonzero(np.append(idx[1:] != idx[:-1], True))]


class LivePublisher:
    """Publishes stored batches on ``bus`` (see the module)."""

    def __init__(self, bus: LiveBus, *, log_interval_s: float = 10.0) -> None:
        self.bus = bus
        self.stats = LiveStats()
        self._newest: dict[tuple[str, str], Micros] = {}
        self._newest_text: dict[tuple[str, str], Micros] = {}
        self._open: dict[tuple[str, str], tuple[int, Micros]] = {}
        self._log = RateLimitedLog(log_interval_s, emit=log.warning, what=("message", "messages"))

    async def _send(self, tenant: str, topic: tuple[str, ...], payload: Payload) -> None:
        try:
            await self.bus.publish(tenant, topic, payload)
        except Exception as exc:
            self.stats.failed += 1
            self._log.note((f"tenant {tenant!r}", "bus_publish_failed"), f"{exc}", 1)
        else:
            self.stats.published += 1

    async def samples(self, tenant: str, batch: SampleBatch) -> None:
        """``batch``: the rows the store was given; call only when it wrote some."""
        if len(batch) == 0:
            return
        last = _newest_rows(batch)
        by_site: dict[str, list[SignalValue]] = defaultdict(list)
        for i, ts, value, quality in zip(
            batch.index[last].tolist(),
            batch.ts[last].tolist(),
            batch.value[last].tolist(),
            batch.quality[last].tolist(),
            strict=True,
        ):
            name = batch.names[i]
            key = (tenant, name)
            if self._newest.get(key, -1) >= ts:
                continue
            self._newest[key] = ts
            by_site[_site(name)].append(SignalValue(name, ts, value, quality))
        for site, values in by_site.items():
            await self._send(tenant, values_topic(site), ValuesChanged(tuple(values)))

    async def texts(self, tenant: str, batch: TextBatch) -> None:
        """``batch``: the text values the store was given; call only when it wrote some."""
        if len(batch) == 0:
            return
        last = _newest_rows(batch).tolist()
        by_site: dict[str, list[SignalText]] = defaultdict(list)
        for row in last:
            name = batch.names[int(batch.index[row])]
            ts = int(batch.ts[row])
            key = (tenant, name)
            if self._newest_text.get(key, -1) >= ts:
                continue
            self._newest_text[key] = ts
            code = float(batch.code[row])
            by_site[_site(name)].append(
                SignalText(
                    name,
                    ts,
                    batch.value[row],
                    int(batch.quality[row]),
                    None if np.isnan(code) else code,
                )
            )
        for site, values in by_site.items():
            await self._send(tenant, texts_topic(site), TextsChanged(tuple(values)))

    async def states(self, tenant: str, batch: StateBatch, *, open_: bool) -> None:
        """Stored state intervals (``open_``: the machines' open states)."""
        for i, start, end, state, reason in zip(
            batch.index.tolist(),
            batch.start.tolist(),
            batch.end.tolist(),
            batch.state.tolist(),
            batch.reason,
            strict=True,
        ):
            machine = batch.names[i]
            if open_:
                key = (tenant, machine)
                if self._open.get(key) == (state, start):
                    continue
                self._open[key] = (state, start)
            event = StateChanged(machine, state, start, reason, None if open_ else end)
            await self._send(tenant, states_topic(_site(machine)), event)

    async def parts(self, tenant: str, batch: PartBatch) -> None:
        """Stored part events: per machine, what the write added."""
        if len(batch) == 0:
            return
        n = len(batch.names)
        good = np.bincount(batch.index, weights=batch.good, minlength=n)
        scrap = np.bincount(batch.index, weights=batch.scrap, minlength=n)
        newest = np.full(n, -1, dtype=np.int64)
        np.maximum.at(newest, batch.index, batch.ts)
        for i in np.flatnonzero(newest >= 0).tolist():
            machine = batch.names[i]
            event = PartsCounted(machine, int(newest[i]), int(good[i]), int(scrap[i]))
            await self._send(tenant, parts_topic(_site(machine)), event)

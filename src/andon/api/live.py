"""The live bus side of the feeds (``/sites/{id}/live``, ``/sites/{id}/kiosk/feed``): a feed
subscribes to its site's events on the services' bus (``andon.bus``) and sends what arrives
between ticks without reading the store. The first tick's snapshot (last values, and the
floor's one ``floor_snapshot``) is the feed's only store read, but for the one case
``andon.floor.watch`` describes (a machine silent on the bus, confirmed once).

* ``values`` (``/live`` only): the newest value of each signal, coalesced over ``window_s``
  (default 0.1 s); a value not newer than the one the feed already sent is not sent again.
* ``text`` (``/live`` only): the newest text value (decision 0202: an ``Execution``, a
  program name) of each signal, coalesced like ``values``, with its ``code`` (``null`` when
  none). Only what arrives on the bus: the snapshot holds numeric values only.
* ``states``: machines whose status (state and since) changed, from ``FloorWatch``: pushed
  when a state arrives, and at every tick for what time alone changes (offline when silent,
  not scheduled).
* ``alerts``: alerts opened, acknowledged, shelved, unshelved or closed, pushed when the
  bus says so (``AlertChanged``; the alert's row is then read from the metadata database).

A feed that falls ``max_queue`` messages behind loses the oldest of them, counted in the
bus's statistics (``BusStats.subscribers``), never slowing ingest.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterable
from contextlib import AbstractAsyncContextManager
from typing import Any

from andon.api.deps import Access, SiteModel
from andon.api.feeds import sse
from andon.api.schemas_ops import AlertOut
from andon.bus import (
    DEFAULT_MAX_QUEUE,
    AlertChanged,
    LiveBus,
    Message,
    Payload,
    Subscription,
    TextsChanged,
    ValuesChanged,
)
from andon.floor.alerts import FloorRecords, FloorSnapshot, floor_snapshot
from andon.floor.watch import AlertMarks, FloorWatch
from andon.model.types import Micros

__all__ = [
    "FLOOR_STEP_US",
    "WINDOW_S",
    "FloorFeed",
    "SiteFeed",
    "floor_now",
    "floor_records",
    "site_cache_key",
]

WINDOW_S = 0.1
"""Seconds over which a feed coalesces bus events into one event of each kind."""
FLOOR_STEP_US = 200_000
"""Current states are read at most once per this step per site (all boards and feeds)."""


def _f(x: float) -> float | None:
    return None if math.isnan(x) else x


def floor_records(ctx: Access) -> FloorRecords:
    """The floor's records in the services' metadata database, publishing alert changes."""
    svc = ctx.services
    return FloorRecords(svc.platform.db, svc.clock, svc.alert_events)


def site_cache_key(ctx: Access, part: str = "") -> tuple[str, str, int]:
    """A cache key of the caller's site (and ``part``), changing with the site's model."""
    site = ctx.site or {}
    return (ctx.tenant, ctx.site_id + part, int(site.get("updated_at", 0)))


async def floor_now(ctx: Access, model: SiteModel) -> FloorSnapshot:
    """The site's floor snapshot at now rounded down to ``FLOOR_STEP_US``, shared by every
    caller in that step."""
    svc = ctx.services
    now = svc.clock()
    step = now - now % FLOOR_STEP_US
    stale = svc.settings.monitoring.stale_after_s

    async def compute() -> dict[str, Any]:
        return {"snap": await floor_snapshot(svc.store, ctx.tenant, model.plant, step, stale)}

    got = await svc.floor_cache.get(site_cache_key(ctx), step, compute)
    snap: FloorSnapshot = got["snap"]
    return snap


class FloorFeed:
    """The ``states`` and ``alerts`` events of one feed connection, for the machines under
    ``want`` (a path prefix ending in ``/``): all machines' states and every open alert at
    the first tick, then what changed (:meth:`fold` takes the bus's events)."""

    def __init__(self, ctx: Access, model: SiteModel, want: str) -> None:
        self.ctx = ctx
        self.model = model
        self.want = want
        self.machines = [m for m in model.machines if (m + "/").startswith(want)]
        self.watch: FloorWatch | None = None
        self.marks = AlertMarks()
        self._alerts: set[str] = set()
        self.confirmed = 0
        """Store snapshots asked for because a machine fell silent on the bus."""

    def _mine(self, machine: str | None) -> bool:
        return machine is None or (machine + "/").startswith(self.want)

    def fold(self, payload: Payload) -> bool:
        """Take one bus event in; whether it may bring an event to send."""
        if isinstance(payload, AlertChanged):
            if not self._mine(payload.machine):
                return False
            self._alerts.add(payload.alert_id)
            return True
        if self.watch is None:
            return False
        return self.watch.fold(payload)

    async def tick(self) -> list[str]:
        """The events of a tick: at the first, every machine's status and the open alerts
        (one store snapshot); later, what changed, the statuses time alone changes included
        (a store snapshot only for a machine silent on the bus, ``FloorWatch.to_confirm``)."""
        ctx = self.ctx
        svc = ctx.services
        if self.watch is None:
            snap = await floor_now(ctx, self.model)
            self.watch = FloorWatch(
                self.model.plant, self.machines, snap, svc.settings.monitoring.stale_after_s
            )
            states = self.watch.changed(self.watch.status(snap.now))
            rows = await floor_records(ctx).alerts_touched(ctx.tenant, ctx.site_id, snap.now)
            self._alerts.clear()
            first = self.marks.first(a for a in rows if self._mine(a["machine"]))
            return [
                sse("states", [self._state(s) for s in states]),
                sse("alerts", [AlertOut(**a).model_dump() for a in first]),
            ]
        now = svc.clock()
        if self.watch.to_confirm(now):
            self.confirmed += 1
            self.watch.confirm(await floor_now(ctx, self.model))
        return await self.changes(now)

    async def changes(self, now: Micros | None = None) -> list[str]:
        """The states and alerts changed since they were last sent (no store read)."""
        out: list[str] = []
        watch = self.watch
        if watch is None:
            return out
        ctx = self.ctx
        at = ctx.services.clock() if now is None else now
        states = watch.changed(watch.status(at))
        if states:
            out.append(sse("states", [self._state(s) for s in states]))
        if self._alerts:
            ids, self._alerts = sorted(self._alerts), set()
            rows = await floor_records(ctx).alerts_by_id(ctx.tenant, ctx.site_id, ids)
            changed = self.marks.changed(rows)
            if changed:
                out.append(sse("alerts", [AlertOut(**a).model_dump() for a in changed]))
        return out

    @staticmethod
    def _state(s: Any) -> dict[str, Any]:
        return {"machine": s.machine, "state": s.state, "since": s.since}


class SiteFeed:
    """One feed's subscription to its site's events (pattern ``("site", site_key, ">")``):
    values of ``signals`` (none for the kiosk), and whatever ``floor`` takes. ``sent_ts``
    holds the newest ts sent per signal (the snapshot fills it). A ``LiveSource`` of
    ``andon.api.feeds.event_stream``."""

    def __init__(
        self,
        bus: LiveBus,
        tenant: str,
        site_key: str,
        signals: Iterable[str],
        floor: FloorFeed,
        *,
        window_s: float = WINDOW_S,
        max_queue: int = DEFAULT_MAX_QUEUE,
    ) -> None:
        self.bus = bus
        self.tenant = tenant
        self.site_key = site_key
        self.signals = frozenset(signals)
        self.floor = floor
        self.window_s = window_s
        self.max_queue = max_queue
        self.sent_ts: dict[str, Micros] = {}
        self._values: dict[str, tuple[Micros, float, int]] = {}
        self.sent_text_ts: dict[str, Micros] = {}
        self._texts: dict[str, tuple[Micros, str, int, float | None]] = {}
        self._floor = False
        """Whether the floor took an event since its changes were last sent."""
        self._sub: tuple[AbstractAsyncContextManager[Subscription], Subscription] | None = None
        self._first: float | None = None
        """Loop time of the oldest event not yet taken: its window ends ``window_s`` later."""

    async def start(self) -> None:
        cm = self.bus.subscribe(self.tenant, ("site", self.site_key, ">"), max_queue=self.max_queue)
        self._sub = (cm, await cm.__aenter__())

    async def stop(self) -> None:
        sub, self._sub = self._sub, None
        if sub is not None:
            await sub[0].__aexit__(None, None, None)

    def _add(self, msg: Message) -> bool:
        """Fold ``msg`` in; whether it brought something to send."""
        p = msg.payload
        added = False
        if isinstance(p, ValuesChanged) and self.signals:
            for v in p.values:
                if v.signal not in self.signals or self.sent_ts.get(v.signal, -1) >= v.ts:
                    continue
                old = self._values.get(v.signal)
                if old is None or old[0] < v.ts:
                    self._values[v.signal] = (v.ts, v.value, v.quality)
                    added = True
        if isinstance(p, TextsChanged) and self.signals:
            for t in p.values:
                if t.signal not in self.signals or self.sent_text_ts.get(t.signal, -1) >= t.ts:
                    continue
                had = self._texts.get(t.signal)
                if had is None or had[0] < t.ts:
                    self._texts[t.signal] = (t.ts, t.value, t.quality, t.code)
                    added = True
        if self.floor.fold(p):
            self._floor = added = True
        return added

    def _fold(self, msg: Message | None) -> None:
        if msg is not None and self._add(msg) and self._first is None:
            self._first = asyncio.get_running_loop().time()

    def drain(self) -> None:
        """Fold in every message waiting (the floor's snapshot must exist: its first tick)."""
        if self._sub is None or self.floor.watch is None:
            return
        sub = self._sub[1]
        while (msg := sub.get_nowait()) is not None:
            self._fold(msg)

    def ready(self) -> bool:
        """Whether events wait and their window has passed."""
        self.drain()
        if self._first is None:
            return False
        return asyncio.get_running_loop().time() >= self._first + self.window_s

    async def wait(self, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self.ready():
            now = loop.time()
            if self._first is not None:  # in a window: its end, or the deadline if sooner
                await asyncio.sleep(max(0.0, min(self._first + self.window_s, deadline) - now))
                if loop.time() >= deadline and not self.ready():
                    return
                continue
            left = deadline - now
            if left <= 0 or self._sub is None:
                return
            sub = self._sub[1]
            if sub.closed or self.floor.watch is None:  # nothing will come, or not yet taken
                await asyncio.sleep(left)
                return
            self._fold(await sub.next(left))  # the first message, or None at the deadline

    async def take(self) -> list[str]:
        self.drain()
        out = []
        if self._values:
            values = sorted(self._values.items())
            out.append(
                sse(
                    "values",
                    [
                        {"signal": s, "ts": t, "value": _f(v), "quality": q}
                        for s, (t, v, q) in values
                    ],
                )
            )
            self.sent_ts.update((s, t) for s, (t, _, _) in values)
        if self._texts:
            texts = sorted(self._texts.items())
            out.append(
                sse(
                    "text",
                    [
                        {"signal": s, "ts": t, "value": v, "quality": q, "code": c}
                        for s, (t, v, q, c) in texts
                    ],
                )
            )
            self.sent_text_ts.update((s, t) for s, (t, _, _, _) in texts)
            self._texts.clear()
        if self._floor:
            out += await self.floor.changes()
        self._values.clear()
        self._floor = False
        self._first = None
        return out

    async def tick(self) -> list[str]:
        """The floor's events of a tick, the bus's waiting events folded in first."""
        self.drain()
        got = await self.floor.tick()
        self._floor = False
        if not self._values and not self._texts:
            self._first = None
        return got

"""The live bus side of ``/sites/{id}/live``: a feed subscribes to its site's values and
states on the services' bus (``andon.bus``) and sends what arrives between ticks, without
reading the store (the first tick's snapshot is the feed's only store read for values).

Events are coalesced over ``window_s`` (default 0.1 s): within a window only the newest
value of each signal and the newest state of each machine are sent, so a busy site costs a
client at most one ``values`` and one ``states`` event per window. A value not newer than
the one the feed already sent for its signal (the snapshot included) is not sent again.
A feed that falls ``max_queue`` messages behind loses the oldest of them, counted in the
bus's statistics (``BusStats.subscribers``), never slowing ingest.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Callable, Iterable
from contextlib import AbstractAsyncContextManager

from andon.api.feeds import sse
from andon.bus import (
    DEFAULT_MAX_QUEUE,
    LiveBus,
    Message,
    StateChanged,
    Subscription,
    ValuesChanged,
    states_topic,
    values_topic,
)
from andon.model.types import MachineState, Micros

__all__ = ["WINDOW_S", "BusFeed"]

WINDOW_S = 0.1
"""Seconds over which a feed coalesces bus events into one ``values``/``states`` event."""

_LABELS = {int(s): s.label for s in MachineState}


def _f(x: float) -> float | None:
    return None if math.isnan(x) else x


class BusFeed:
    """One feed's subscription: values of ``signals`` and states of ``machines`` of the
    site whose plant key is ``site_key``. ``sent_ts`` holds the newest ts sent per signal
    (the snapshot fills it); ``on_state`` hears each state sent, as ``(machine, label,
    since)`` (the floor part of the feed then does not send it again)."""

    def __init__(
        self,
        bus: LiveBus,
        tenant: str,
        site_key: str,
        signals: Iterable[str],
        machines: Iterable[str],
        *,
        window_s: float = WINDOW_S,
        max_queue: int = DEFAULT_MAX_QUEUE,
        on_state: Callable[[str, str, Micros], None] | None = None,
    ) -> None:
        self.bus = bus
        self.tenant = tenant
        self.site_key = site_key
        self.signals = frozenset(signals)
        self.machines = frozenset(machines)
        self.window_s = window_s
        self.max_queue = max_queue
        self.on_state = on_state
        self.sent_ts: dict[str, Micros] = {}
        self._values: dict[str, tuple[Micros, float, int]] = {}
        self._states: dict[str, StateChanged] = {}
        self._subs: list[tuple[AbstractAsyncContextManager[Subscription], Subscription]] = []
        self._first: float | None = None
        """Loop time of the oldest event not yet taken: its window ends ``window_s`` later."""

    async def start(self) -> None:
        for topic in (values_topic(self.site_key), states_topic(self.site_key)):
            cm = self.bus.subscribe(self.tenant, topic, max_queue=self.max_queue)
            self._subs.append((cm, await cm.__aenter__()))

    async def stop(self) -> None:
        subs, self._subs = self._subs, []
        for cm, _ in subs:
            await cm.__aexit__(None, None, None)

    def _add(self, msg: Message) -> bool:
        """Fold ``msg`` in; whether it brought something to send."""
        p = msg.payload
        added = False
        if isinstance(p, ValuesChanged):
            for v in p.values:
                if v.signal not in self.signals or self.sent_ts.get(v.signal, -1) >= v.ts:
                    continue
                old = self._values.get(v.signal)
                if old is None or old[0] < v.ts:
                    self._values[v.signal] = (v.ts, v.value, v.quality)
                    added = True
        elif isinstance(p, StateChanged) and p.end is None and p.machine in self.machines:
            self._states[p.machine] = p
            added = True
        return added

    def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        for _, sub in self._subs:
            while (msg := sub.get_nowait()) is not None:
                if self._add(msg) and self._first is None:
                    self._first = loop.time()

    def ready(self) -> bool:
        """Whether events wait and their window has passed."""
        self._drain()
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
            if left <= 0 or not self._subs:
                return
            if all(sub.closed for _, sub in self._subs):  # the bus closed: nothing will come
                await asyncio.sleep(left)
                return
            # the first message of any subscription, or the deadline
            getters = [asyncio.ensure_future(sub.next(left)) for _, sub in self._subs]
            try:
                await asyncio.wait(getters, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for g in getters:
                    if not g.done():
                        g.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await g
                for g in getters:
                    msg = g.result() if g.done() and not g.cancelled() else None
                    if msg is not None and self._add(msg) and self._first is None:
                        self._first = loop.time()

    def take(self) -> list[str]:
        self._drain()
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
        if self._states:
            states = []
            for m, st in sorted(self._states.items()):
                label = _LABELS.get(st.state, str(st.state))
                states.append({"machine": m, "state": label, "since": st.start})
                if self.on_state is not None:
                    self.on_state(m, label, st.start)
            out.append(sse("states", states))
        self._values.clear()
        self._states.clear()
        self._first = None
        return out

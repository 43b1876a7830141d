"""The in-process live bus: the default, embedded one (``andon demo``, one ``andon serve``).
Events are handed to subscribers as they are (frozen dataclasses, shared, never copied)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from andon.bus.base import (
    DEFAULT_MAX_QUEUE,
    BusCore,
    Message,
    Subscription,
    _check_tenant,
    check_topic,
    matches,
)
from andon.bus.events import (
    AlertChanged,
    PartsCounted,
    Payload,
    StateChanged,
    TextsChanged,
    ValuesChanged,
)

__all__ = ["InProcessBus"]

_PAYLOADS = (bytes, ValuesChanged, TextsChanged, StateChanged, PartsCounted, AlertChanged)


class InProcessBus(BusCore):
    """A ``LiveBus`` within one process (see ``andon.bus.base`` for the semantics)."""

    async def publish(self, tenant: str, topic: Sequence[str], payload: Payload) -> None:
        if self._closed:
            raise RuntimeError("InProcessBus is closed")
        _check_tenant(tenant)
        t = check_topic(topic)
        if not isinstance(payload, _PAYLOADS):
            raise TypeError(f"not a bus payload: {type(payload).__name__}")
        self._totals.published += 1
        subs = self._subs.get(tenant)
        if not subs:
            return
        msg = Message(tenant, t, payload)
        for sub in subs:
            if matches(sub.pattern, t):
                sub.offer(msg)

    @asynccontextmanager
    async def subscribe(
        self, tenant: str, pattern: Sequence[str], *, max_queue: int = DEFAULT_MAX_QUEUE
    ) -> AsyncIterator[Subscription]:
        sub = self._add(tenant, pattern, max_queue)
        try:
            yield sub
        finally:
            self._remove(sub)

    async def close(self) -> None:
        self._close_all()

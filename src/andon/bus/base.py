"""The ``LiveBus`` protocol and what every implementation shares: topics and patterns,
bounded subscriber queues that drop their oldest message (counted), and the statistics.

Semantics every implementation honours (``tests/bus/test_conformance.py``):

* A message is published under a **tenant** and a **topic** (a tuple of tokens); a
  subscription names a tenant and a **pattern** whose tokens match literally, except ``*``
  (exactly one token) and ``>`` (last token only: one or more tokens). A subscriber never
  receives a message of another tenant, whatever the names contain.
* Messages of one publisher arrive at a subscriber in the order they were published.
* ``subscribe`` returns once the subscription is in place: a message published after it is
  delivered.
* A subscriber's queue holds at most ``max_queue`` messages. When it is full, the **oldest**
  message is dropped and counted (``SubscriberStats.dropped``); ``publish`` never waits for
  a slow subscriber.
* ``close`` ends every subscription: iteration stops once its queue is empty.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Protocol

from andon.bus.events import Payload

__all__ = [
    "DEFAULT_MAX_QUEUE",
    "BusStats",
    "LiveBus",
    "Message",
    "SubscriberStats",
    "Subscription",
    "Topic",
    "check_pattern",
    "check_topic",
    "matches",
]

Topic = tuple[str, ...]
DEFAULT_MAX_QUEUE = 1000


def check_topic(topic: Sequence[str], what: str = "topic") -> Topic:
    """``topic`` as a tuple, or ``ValueError`` naming the bad token."""
    out = tuple(topic)
    if not out:
        raise ValueError(f"{what} is empty")
    for i, tok in enumerate(out):
        if not isinstance(tok, str) or not tok:
            raise ValueError(f"{what} token {i}: expected a non-empty string, got {tok!r}")
        if tok in ("*", ">") and what == "topic":
            raise ValueError(f"topic token {i}: {tok!r} is a wildcard, not a name")
    return out


def check_pattern(pattern: Sequence[str]) -> Topic:
    """``pattern`` as a tuple: ``>`` only as its last token."""
    out = check_topic(pattern, "pattern")
    if ">" in out[:-1]:
        raise ValueError(f"pattern {out!r}: '>' may only be the last token")
    return out


def matches(pattern: Topic, topic: Topic) -> bool:
    """Whether ``topic`` matches ``pattern`` (``*`` one token, ``>`` the rest).

    >>> matches(("site", "*", "values"), ("site", "s1", "values"))
    True
    >>> matches(("site", ">"), ("site",))
    False
    """
    for i, p in enumerate(pattern):
        if p == ">":
            return len(topic) > i
        if i >= len(topic) or (p != "*" and p != topic[i]):
            return False
    return len(topic) == len(pattern)


@dataclass(frozen=True, slots=True)
class Message:
    tenant: str
    topic: Topic
    payload: Payload


@dataclass
class SubscriberStats:
    """One subscription's totals: messages queued for it and the oldest ones dropped."""

    tenant: str
    pattern: Topic
    received: int = 0
    dropped: int = 0


@dataclass
class BusStats:
    """A bus's totals since it started; ``subscribers`` are the open subscriptions."""

    published: int = 0
    delivered: int = 0
    dropped: int = 0
    """Messages dropped from full subscriber queues, closed subscriptions included."""
    publish_failed: int = 0
    undecodable: int = 0
    """Messages from the broker this bus's codec could not read (never delivered)."""
    subscribers: list[SubscriberStats] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {
            "published": self.published,
            "delivered": self.delivered,
            "dropped": self.dropped,
            "publish_failed": self.publish_failed,
            "undecodable": self.undecodable,
            "subscribers": [
                {
                    "tenant": s.tenant,
                    "pattern": ".".join(s.pattern),
                    "received": s.received,
                    "dropped": s.dropped,
                }
                for s in self.subscribers
            ],
        }


class Subscription:
    """A subscriber's bounded queue. Iterate it (``async for``) or call :meth:`next` with a
    timeout; both end once the subscription is closed and its queue is empty."""

    def __init__(self, tenant: str, pattern: Topic, max_queue: int, totals: BusStats) -> None:
        if max_queue < 1:
            raise ValueError(f"max_queue must be at least 1, got {max_queue}")
        self.tenant = tenant
        self.pattern = pattern
        self.max_queue = max_queue
        self.stats = SubscriberStats(tenant, pattern)
        self._totals = totals
        self._queue: deque[Message] = deque()
        self._ready = asyncio.Event()
        self.closed = False

    def offer(self, msg: Message) -> None:
        """Queue ``msg`` without waiting; the oldest queued message goes when full."""
        if self.closed:
            return
        if len(self._queue) >= self.max_queue:
            self._queue.popleft()
            self.stats.dropped += 1
            self._totals.dropped += 1
        self._queue.append(msg)
        self.stats.received += 1
        self._totals.delivered += 1
        self._ready.set()

    def close(self) -> None:
        self.closed = True
        self._ready.set()

    def pending(self) -> int:
        return len(self._queue)

    def get_nowait(self) -> Message | None:
        """The next queued message, or ``None`` when none is queued."""
        if not self._queue:
            return None
        msg = self._queue.popleft()
        if not self._queue and not self.closed:
            self._ready.clear()
        return msg

    async def next(self, timeout: float | None = None) -> Message | None:
        """The next message; ``None`` after ``timeout`` seconds or once closed and empty."""
        while not self._queue:
            if self.closed:
                return None
            self._ready.clear()
            if timeout is None:
                await self._ready.wait()
            else:
                try:
                    await asyncio.wait_for(self._ready.wait(), timeout)
                except TimeoutError:
                    return None
        return self.get_nowait()

    def __aiter__(self) -> AsyncIterator[Message]:
        return self

    async def __anext__(self) -> Message:
        msg = await self.next()
        if msg is None:
            raise StopAsyncIteration
        return msg


class LiveBus(Protocol):
    """Publish/subscribe of live events, scoped by tenant (see the module)."""

    async def publish(self, tenant: str, topic: Sequence[str], payload: Payload) -> None: ...

    def subscribe(
        self, tenant: str, pattern: Sequence[str], *, max_queue: int = DEFAULT_MAX_QUEUE
    ) -> AbstractAsyncContextManager[Subscription]: ...

    def stats(self) -> BusStats: ...

    async def close(self) -> None: ...


class BusCore:
    """Subscriber bookkeeping shared by the implementations."""

    def __init__(self) -> None:
        self._totals = BusStats()
        self._subs: dict[str, list[Subscription]] = {}
        self._closed = False

    def _add(self, tenant: str, pattern: Sequence[str], max_queue: int) -> Subscription:
        if self._closed:
            raise RuntimeError(f"{type(self).__name__} is closed")
        _check_tenant(tenant)
        sub = Subscription(tenant, check_pattern(pattern), max_queue, self._totals)
        self._subs.setdefault(tenant, []).append(sub)
        return sub

    def _remove(self, sub: Subscription) -> None:
        sub.close()
        subs = self._subs.get(sub.tenant, [])
        if sub in subs:
            subs.remove(sub)
            if not subs:
                del self._subs[sub.tenant]

    def stats(self) -> BusStats:
        t = self._totals
        subs = [s.stats for ss in self._subs.values() for s in ss]
        return BusStats(t.published, t.delivered, t.dropped, t.publish_failed, t.undecodable, subs)

    def _close_all(self) -> None:
        self._closed = True
        for subs in list(self._subs.values()):
            for s in list(subs):
                self._remove(s)


def _check_tenant(tenant: str) -> str:
    if not isinstance(tenant, str) or not tenant:
        raise ValueError(f"tenant: expected a non-empty string, got {tenant!r}")
    return tenant

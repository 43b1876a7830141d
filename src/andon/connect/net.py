"""Network helpers shared by connectors, the edge uplink and the ingest service: an aiomqtt
client that cleans up after itself, and capped exponential backoff."""

from __future__ import annotations

import random
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiomqtt

__all__ = ["Backoff", "mqtt_client"]


@asynccontextmanager
async def mqtt_client(host: str, port: int, **kwargs: Any) -> AsyncIterator[aiomqtt.Client]:
    """``aiomqtt.Client`` as a context manager that also consumes the client's disconnection
    error, which aiomqtt otherwise leaves unretrieved (asyncio logs it at garbage collection).
    Sets ``TCP_NODELAY``: the uplink's acknowledgements are small messages that Nagle's
    algorithm would otherwise hold back."""
    kwargs.setdefault("socket_options", ((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),))
    client = aiomqtt.Client(host, port, **kwargs)
    try:
        async with client:
            yield client
    finally:
        done = client._disconnected
        if done.done() and not done.cancelled():
            done.exception()


@dataclass
class Backoff:
    """Capped exponential backoff with ±20 % jitter.

    >>> b = Backoff(initial_s=1.0, max_s=4.0, jitter=0.0)
    >>> [b.next() for _ in range(4)]
    [1.0, 2.0, 4.0, 4.0]
    """

    initial_s: float = 0.05
    max_s: float = 5.0
    jitter: float = 0.2
    _current: float = 0.0
    _rng: random.Random = field(default_factory=random.Random)

    def next(self) -> float:
        self._current = self.initial_s if self._current == 0 else min(self._current * 2, self.max_s)
        return self._current * (1 + self.jitter * (2 * self._rng.random() - 1))

    def reset(self) -> None:
        self._current = 0.0

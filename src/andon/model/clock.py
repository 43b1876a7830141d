"""Clocks, injected from the top so that tests and the demo control time.

``wall_clock`` is the default wall time (µs since the epoch, UTC) of the services that stamp
what they do (``Callable[[], Micros]``). ``Clock`` is what the virtual factory and the demo
run against: ``WallClock`` reads the event loop's monotonic clock; ``ManualClock`` is
advanced by its own ``sleep``, so tests run the real-time path with no waiting at all and
exactly known timing.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

from andon.model.types import Micros

__all__ = ["Clock", "ManualClock", "WallClock", "wall_clock"]


def wall_clock() -> Micros:
    """Now, in µs since the epoch (UTC)."""
    return time.time_ns() // 1000


class Clock(Protocol):
    def monotonic(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class WallClock:
    def monotonic(self) -> float:
        return asyncio.get_running_loop().time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class ManualClock:
    """A clock whose time moves only when something sleeps on it."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)
        await asyncio.sleep(0)

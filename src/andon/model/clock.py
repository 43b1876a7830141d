"""Clocks for running the virtual factory against (accelerated) wall time.

``WallClock`` reads the event loop's monotonic clock. ``ManualClock`` is advanced by its own
``sleep``: tests run the real-time path with no waiting at all and exactly known timing.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

__all__ = ["Clock", "ManualClock", "WallClock"]


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

"""A small discrete-event engine: a heap of ``(time, sequence, event)``.

The sequence number breaks ties, so events scheduled for the same instant run in the order
they were scheduled and every run with the same inputs is the same run. Times are floats in
seconds from the start of the simulation. Cancelled events stay in the heap and are skipped
when they come up (cheaper than removing them).

>>> eng = Engine()
>>> seen = []
>>> _ = eng.schedule(2.0, lambda: seen.append(eng.now))
>>> _ = eng.schedule(1.0, lambda: seen.append(eng.now))
>>> eng.run(until=10.0)
>>> seen, eng.now
([1.0, 2.0], 10.0)
"""

from __future__ import annotations

import heapq
from collections.abc import Callable

__all__ = ["Engine", "Event"]


class Event:
    """A scheduled callback; ``cancel()`` makes the engine skip it."""

    __slots__ = ("cancelled", "fn", "time")

    def __init__(self, time: float, fn: Callable[[], None]) -> None:
        self.time = time
        self.fn = fn
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Engine:
    def __init__(self) -> None:
        self.now = 0.0
        self._heap: list[tuple[float, int, Event]] = []
        self._seq = 0

    def schedule(self, at: float, fn: Callable[[], None]) -> Event:
        """Run ``fn`` at time ``at`` (not before now)."""
        if at < self.now:
            raise ValueError(f"cannot schedule at {at} before now ({self.now})")
        ev = Event(at, fn)
        self._seq += 1
        heapq.heappush(self._heap, (at, self._seq, ev))
        return ev

    def after(self, delay: float, fn: Callable[[], None]) -> Event:
        return self.schedule(self.now + delay, fn)

    def peek(self) -> float:
        """Time of the next pending event, or ``inf``."""
        heap = self._heap
        while heap and heap[0][2].cancelled:
            heapq.heappop(heap)
        return heap[0][0] if heap else float("inf")

    def run(self, until: float) -> None:
        """Process every event with time <= ``until``, then set the clock to ``until``."""
        heap = self._heap
        pop = heapq.heappop
        while heap and heap[0][0] <= until:
            t, _, ev = pop(heap)
            if ev.cancelled:
                continue
            self.now = t
            ev.fn()
        if until > self.now:
            self.now = until

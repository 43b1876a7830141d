"""A deterministic counting source for fault tests, benchmarks and smoke runs.

Point ``k`` (0, 1, 2, ...) belongs to signal ``k % n`` at ``start_us + (k // n) * period_us``
and has value ``float(k)``, so a receiver can check the whole stream exactly: which points
arrived, how often and in which order. The cursor is the next ``k``; after a crash the source
resumes exactly after the last batch the buffer holds.

>>> import asyncio
>>> src = CounterSource("gen", ["a/x", "a/y"], batch_points=3, total_points=5)
>>> async def first() -> list[tuple[list[float], str]]:
...     return [(b.value.tolist(), c) async for b, c in src.batches(None)]
>>> asyncio.run(first())
[([0.0, 1.0, 2.0], '3'), ([3.0, 4.0], '5')]
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import numpy as np

from andon.model.types import Micros, SampleBatch

__all__ = ["CounterSource", "counter_batch"]

DEFAULT_START: Micros = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z


def counter_batch(
    names: tuple[str, ...], k0: int, k1: int, start_us: Micros, period_us: int
) -> SampleBatch:
    """Points ``k0 <= k < k1`` of the counting stream over ``names``."""
    k = np.arange(k0, k1, dtype=np.int64)
    n = len(names)
    return SampleBatch(
        names,
        (k % n).astype(np.int32),
        start_us + (k // n) * period_us,
        k.astype(np.float64),
        np.zeros(len(k), dtype=np.uint8),
    )


@dataclass
class CounterSource:
    """Yields ``(batch, cursor)`` pairs; paced to ``rate_points_s`` when given."""

    stream: str
    signals: Sequence[str]
    batch_points: int = 5_000
    total_points: int | None = None
    rate_points_s: float | None = None
    start_us: Micros = DEFAULT_START
    period_us: int = 1_000

    async def batches(self, cursor: str | None) -> AsyncIterator[tuple[SampleBatch, str]]:
        names = tuple(self.signals)
        k = int(cursor) if cursor else 0
        t0, k_start = time.monotonic(), k
        while self.total_points is None or k < self.total_points:
            k1 = k + self.batch_points
            if self.total_points is not None:
                k1 = min(k1, self.total_points)
            if self.rate_points_s:
                due = t0 + (k1 - k_start) / self.rate_points_s
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            yield counter_batch(names, k, k1, self.start_us, self.period_us), str(k1)
            k = k1

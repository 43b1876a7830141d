"""Per-tenant token buckets, in process: API requests per second and ingest points per second.

Time is a parameter (``now`` in seconds), so tests drive buckets without sleeping.

>>> b = TokenBucket(rate=10.0, burst=20.0, now=0.0)
>>> b.take(20, now=0.0), b.take(1, now=0.0), b.take(1, now=0.1)
(0.0, 0.1, 0.0)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["RateLimiter", "TokenBucket"]


@dataclass
class TokenBucket:
    rate: float
    burst: float
    now: float
    tokens: float = field(init=False)
    updated: float = field(init=False)

    def __post_init__(self) -> None:
        self.tokens = self.burst
        self.updated = self.now

    def take(self, n: float, now: float) -> float:
        """Take ``n`` tokens; ``0.0`` if granted, else the seconds until they would be.
        A request larger than the burst is refused for good (``inf``)."""
        if n > self.burst:
            return float("inf")
        # a clock stepped back adds nothing and takes nothing: never a negative count
        elapsed = max(0.0, now - self.updated)
        self.tokens = min(self.burst, self.tokens + elapsed * self.rate)
        self.updated = now
        if self.tokens >= n:
            self.tokens -= n
            return 0.0
        return (n - self.tokens) / self.rate


class RateLimiter:
    """One bucket per (tenant, kind); refused amounts are counted (no silent loss)."""

    def __init__(self, limits: dict[str, tuple[float, float]], clock: Callable[[], float]) -> None:
        self.limits = limits
        self.clock = clock
        self._buckets: dict[tuple[str, str], TokenBucket] = {}
        self.refused: Counter[tuple[str, str]] = Counter()

    def take(self, tenant: str, kind: str, n: float = 1.0) -> float:
        limit = self.limits.get(kind)
        if limit is None or limit[0] <= 0:
            return 0.0
        now = self.clock()
        bucket = self._buckets.get((tenant, kind))
        if bucket is None:
            bucket = self._buckets[(tenant, kind)] = TokenBucket(limit[0], limit[1], now)
        wait = bucket.take(n, now)
        if wait:
            self.refused[(tenant, kind)] += int(n)
        return wait

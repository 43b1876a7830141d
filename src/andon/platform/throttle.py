"""Failed-login throttling per (account, source) and per source, in process.

Replaces account lockout, which anyone could use to lock anyone out (the platform admin
included) and which answered a locked account faster than an unknown one. Here a source that
keeps guessing one account waits, and so does a source guessing many accounts; the same
account from any other source is untouched. Time is a parameter (seconds, monotonic).

>>> t = LoginThrottle(per_account=2, per_source=10, window_s=60.0, clock=lambda: 0.0)
>>> t.allowed("a@x", "10.0.0.1")
True
>>> t.failed("a@x", "10.0.0.1"); t.failed("a@x", "10.0.0.1")
>>> t.allowed("a@x", "10.0.0.1"), t.allowed("a@x", "10.0.0.2")
(False, True)
"""

from __future__ import annotations

from collections.abc import Callable

from andon.platform.ratelimit import TokenBucket

__all__ = ["LoginThrottle"]


class LoginThrottle:
    """``per_account`` failures per (account, source) and ``per_source`` failures per source
    are allowed per ``window_s`` (token buckets refilling over the window); beyond them the
    source waits. At most ``max_keys`` buckets are kept: full ones are dropped first."""

    def __init__(
        self,
        per_account: int,
        per_source: int,
        window_s: float,
        clock: Callable[[], float],
        max_keys: int = 100_000,
    ) -> None:
        self.per_account = per_account
        self.per_source = per_source
        self.window_s = window_s
        self.clock = clock
        self.max_keys = max_keys
        self._pairs: dict[tuple[str, str], TokenBucket] = {}
        self._sources: dict[str, TokenBucket] = {}
        self.throttled = 0
        """Login attempts refused because their source was throttled (visible, counted)."""

    def _has_token(self, bucket: TokenBucket | None, now: float) -> bool:
        if bucket is None:
            return True
        bucket.take(0, now)  # refill up to now
        return bucket.tokens >= 1

    def allowed(self, account: str, source: str) -> bool:
        """Whether ``source`` may try ``account`` now (counts a refusal)."""
        now = self.clock()
        ok = self._has_token(self._pairs.get((account, source)), now) and self._has_token(
            self._sources.get(source), now
        )
        if not ok:
            self.throttled += 1
        return ok

    def failed(self, account: str, source: str) -> None:
        now = self.clock()
        if len(self._pairs) + len(self._sources) >= self.max_keys:
            self._prune(now)
        pair = self._pairs.get((account, source))
        if pair is None:
            pair = self._pairs[(account, source)] = self._bucket(self.per_account, now)
        pair.take(1, now)
        src = self._sources.get(source)
        if src is None:
            src = self._sources[source] = self._bucket(self.per_source, now)
        src.take(1, now)

    def _bucket(self, burst: int, now: float) -> TokenBucket:
        return TokenBucket(burst / self.window_s, float(burst), now)

    def succeeded(self, account: str, source: str) -> None:
        """A right password from this source forgets its failures on this account."""
        self._pairs.pop((account, source), None)

    def _prune(self, now: float) -> None:
        def full(b: TokenBucket) -> bool:
            b.take(0, now)
            return b.tokens >= b.burst

        self._pairs = {k: b for k, b in self._pairs.items() if not full(b)}
        self._sources = {k: b for k, b in self._sources.items() if not full(b)}
        while len(self._pairs) + len(self._sources) >= self.max_keys and self._pairs:
            del self._pairs[next(iter(self._pairs))]  # the oldest first
        while len(self._pairs) + len(self._sources) >= self.max_keys and self._sources:
            del self._sources[next(iter(self._sources))]

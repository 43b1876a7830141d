"""Rate-limited warnings: at most one log line per key (who, why) per ``interval_s``, with a
count of what happened since the last line, so a million garbage frames make a few lines,
not a million. The counters that matter are kept elsewhere and always exact; this only
decides what reaches the log.

>>> t = [0.0]
>>> lines = []
>>> rl = RateLimitedLog(10.0, lambda: t[0], lambda msg: lines.append(msg))
>>> for i in range(1000):
...     rl.note(("key k1", "bad_frame"), f"frame {i}")
>>> t[0] = 11.0
>>> rl.note(("key k1", "bad_frame"), "frame 1000")
>>> for line in lines:
...     print(line)
refused 1 frame from key k1: bad_frame (last: frame 0)
refused 1,000 frames from key k1: bad_frame (last: frame 1000)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["RateLimitedLog"]


@dataclass
class _Pending:
    logged_at: float
    count: int = 0
    last: str = ""


class RateLimitedLog:
    """One line per ``(who, why)`` per ``interval_s``: the first at once, then the count of
    the ones held back (with the last one's detail) when the next arrives after the interval.
    ``what`` names the thing counted (``frame``/``frames``)."""

    def __init__(
        self,
        interval_s: float,
        monotonic: Callable[[], float] = time.monotonic,
        emit: Callable[[str], None] | None = None,
        *,
        what: tuple[str, str] = ("frame", "frames"),
        max_keys: int = 10_000,
    ) -> None:
        self.interval_s = interval_s
        self._monotonic = monotonic
        self._emit = emit if emit is not None else (lambda msg: None)
        self._what = what
        self._max_keys = max_keys
        self._pending: dict[tuple[str, str], _Pending] = {}
        self.lines = 0
        """Lines emitted so far."""

    def note(self, key: tuple[str, str], detail: str, n: int = 1) -> None:
        """Count ``n`` more under ``key`` (who, why); emit a line if the key's interval has
        passed since its last line (or it has none)."""
        now = self._monotonic()
        p = self._pending.get(key)
        if p is None:
            if len(self._pending) >= self._max_keys:  # made-up keys cannot grow it forever
                self._pending.clear()
            self._pending[key] = _Pending(now)
            self._line(key, n, detail)
            return
        p.count += n
        p.last = detail
        if now - p.logged_at >= self.interval_s:
            self._line(key, p.count, p.last)
            p.logged_at, p.count, p.last = now, 0, ""

    def _line(self, key: tuple[str, str], n: int, detail: str) -> None:
        self.lines += 1
        noun = self._what[0] if n == 1 else self._what[1]
        self._emit(f"refused {n:,} {noun} from {key[0]}: {key[1]} (last: {detail})")

"""Refusals of callers without valid credentials, audited one row per source per window.

An anonymous flood must not write one audit row per request (the audit log would grow at the
attacker's pace and its hash chain would serialize every request). The first refusal of a
source in a window is written as it happens; the rest of that window are counted and written
as one row with their count when the source's next window opens, or at shutdown (``flush``).
Nothing is dropped: ``suppressed`` counts the refusals folded into summary rows.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from andon.platform.audit import AuditLog

__all__ = ["AnonymousAudit"]


@dataclass
class _Window:
    start: float
    count: int = 0
    actions: dict[str, int] = field(default_factory=dict)


class AnonymousAudit:
    """``record`` an anonymous refusal; at most one row per source per ``window_s`` plus one
    summary row with the count of the others. At most ``max_sources`` windows are open:
    beyond that every open window is summarised at once."""

    def __init__(
        self,
        window_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        max_sources: int = 10_000,
    ) -> None:
        self.window_s = window_s
        self.clock = clock
        self.max_sources = max_sources
        self._open: dict[str, _Window] = {}
        self.suppressed = 0
        """Refusals not written as their own row (each is in a summary row's count)."""

    async def record(
        self,
        audit: AuditLog,
        *,
        source: str,
        action: str,
        obj: str,
        detail: dict[str, Any],
        actor: str = "anonymous",
        result: str = "denied",
    ) -> None:
        now = self.clock()
        win = self._open.get(source)
        if win is not None and 0 <= now - win.start < self.window_s:
            win.count += 1
            win.actions[action] = win.actions.get(action, 0) + 1
            self.suppressed += 1
            return
        if win is not None:
            await self._summary(audit, source, win)
        elif len(self._open) >= self.max_sources:
            await self.flush(audit)
        self._open[source] = _Window(now)
        await audit.record(
            tenant_id=None,
            actor=actor,
            source=source,
            action=action,
            obj=obj,
            result=result,
            detail={**detail, "window_s": self.window_s},
        )

    async def _summary(self, audit: AuditLog, source: str, win: _Window) -> None:
        if win.count:
            await audit.record(
                tenant_id=None,
                actor="anonymous",
                source=source,
                action="anonymous.denied",
                obj="requests",
                result="denied",
                detail={
                    "count": win.count,
                    "window_s": self.window_s,
                    "actions": dict(sorted(win.actions.items())),
                },
            )

    async def flush(self, audit: AuditLog) -> None:
        """Write the summary of every open window (at shutdown, or when too many are open)."""
        windows, self._open = self._open, {}
        for source, win in windows.items():
            await self._summary(audit, source, win)

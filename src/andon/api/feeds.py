"""The one loop behind every server-sent-event feed (``/live``, ``/kiosk/feed``): tick every
``interval_s`` on the services' clock, re-check the caller's credentials, stop when the client
goes away, and end with ``event: end`` naming why (``max_ticks`` or lapsed credentials).

Revocation reaches an open feed within a second: while waiting for the next tick the loop
re-checks every ``RECHECK_S`` wall seconds (``Access.still_allowed``, cached until something
is revoked). One principal holds at most ``security.max_feeds_per_principal`` feeds at once;
the next one is refused with 429."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Protocol

from fastapi import HTTPException, Request
from fastapi.responses import StreamingResponse
from starlette.background import BackgroundTask

from andon.api.deps import Access

__all__ = ["RECHECK_S", "LiveSource", "TickEvents", "event_stream", "sse"]

RECHECK_S = 0.1
"""Wall seconds between credential re-checks while a feed waits for its next tick."""

TickEvents = Callable[[int], Awaitable[list[str]]]
"""The events of tick ``n`` (0 first), each an ``event: ...`` block from :func:`sse`."""


class LiveSource(Protocol):
    """Events pushed between ticks (the live bus: ``andon.api.live``), sent as they come."""

    async def start(self) -> None:
        """Subscribe; called before the first tick, so nothing after it is missed."""

    async def wait(self, timeout: float) -> None:
        """Return once events are ready (:meth:`ready`), or after ``timeout`` seconds."""

    def ready(self) -> bool: ...

    async def take(self) -> list[str]:
        """The ready events (``event: ...`` blocks), forgetting them."""
        ...

    async def stop(self) -> None: ...


def sse(event: str, data: object) -> str:
    """One server-sent event block: ``event: <event>`` and ``data: <data as JSON>``.

    >>> sse("end", {"reason": "max_ticks"})
    'event: end\\ndata: {"reason": "max_ticks"}\\n\\n'
    """
    return f"event: {event}\ndata: {json.dumps(data)}\n\n"


def event_stream(
    ctx: Access,
    request: Request,
    tick: TickEvents,
    *,
    interval_s: float,
    max_ticks: int,
    recheck_every: int = 1,
    live: LiveSource | None = None,
) -> StreamingResponse:
    """A ``text/event-stream`` response of ``tick``'s events, at most ``max_ticks`` ticks
    ``interval_s`` apart (``services.sleep``). Before every tick, and every ``RECHECK_S``
    while waiting for one, the credentials and the endpoint's permission are checked again
    (:meth:`Access.still_allowed`); when they no longer hold, the stream ends with
    ``event: end`` and reason ``credentials no longer valid``. ``recheck_every`` is kept for
    callers and only validated: the cached check made counting ticks unnecessary.
    ``live``: events sent as soon as they are ready between ticks (subscribed before the
    first tick, unsubscribed when the stream ends)."""
    if recheck_every < 1:
        raise ValueError(f"recheck_every must be at least 1, got {recheck_every}")
    svc = ctx.services
    who = ctx.principal.actor
    cap = svc.settings.security.max_feeds_per_principal
    if svc.open_feeds.get(who, 0) >= cap:
        raise HTTPException(
            429, f"at most {cap} live feeds per user or key", headers={"Retry-After": "5"}
        )
    svc.open_feeds[who] = svc.open_feeds.get(who, 0) + 1
    released = False

    def release() -> None:
        nonlocal released
        if not released:
            released = True
            left = svc.open_feeds.get(who, 1) - 1
            if left > 0:
                svc.open_feeds[who] = left
            else:
                svc.open_feeds.pop(who, None)

    async def wait(sleeper: asyncio.Future[None]) -> str:
        """Until live events are ready (``live``), ``sleeper`` is done (``tick``) or the
        credentials lapse (``lapsed``), re-checked every ``RECHECK_S``."""
        while True:
            if live is None:
                await asyncio.wait({sleeper}, timeout=RECHECK_S)
            else:
                waiter = asyncio.ensure_future(live.wait(RECHECK_S))
                try:
                    await asyncio.wait({sleeper, waiter}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    if not waiter.done():
                        waiter.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await waiter
                if live.ready():
                    return "live"
            if sleeper.done():
                return "tick"
            if not await ctx.still_allowed():
                return "lapsed"

    async def events() -> AsyncIterator[str]:
        try:
            reason = "max_ticks"
            for n in range(max_ticks):
                # every tick: still_allowed is cached, so a fast feed costs no extra reads
                if not await ctx.still_allowed():
                    reason = "credentials no longer valid"
                    break
                if await request.is_disconnected():
                    return
                if n == 0 and live is not None:
                    await live.start()
                for event in await tick(n):
                    yield event
                sleeper = asyncio.ensure_future(svc.sleep(interval_s))
                try:
                    while (got := await wait(sleeper)) == "live" and live is not None:
                        for event in await live.take():
                            yield event
                finally:
                    sleeper.cancel()
                if got == "lapsed":
                    reason = "credentials no longer valid"
                    break
            yield sse("end", {"reason": reason})
        finally:
            if live is not None:
                await live.stop()
            release()

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"X-Accel-Buffering": "no"},
        background=BackgroundTask(release),  # also when the body never started
    )

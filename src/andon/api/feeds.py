"""The one loop behind every server-sent-event feed (``/live``, ``/kiosk/feed``): tick every
``interval_s`` on the services' clock, re-check the caller's credentials, stop when the client
goes away, and end with ``event: end`` naming why (``max_ticks`` or lapsed credentials)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable

from fastapi import Request
from fastapi.responses import StreamingResponse

from andon.api.deps import Access

__all__ = ["TickEvents", "event_stream", "sse"]

TickEvents = Callable[[int], Awaitable[list[str]]]
"""The events of tick ``n`` (0 first), each an ``event: ...`` block from :func:`sse`."""


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
) -> StreamingResponse:
    """A ``text/event-stream`` response of ``tick``'s events, at most ``max_ticks`` ticks
    ``interval_s`` apart (``services.sleep``). Before every tick whose number is a multiple
    of ``recheck_every`` (the first included) the credentials and the endpoint's permission
    are checked again (:meth:`Access.still_allowed`); when they no longer hold, the stream
    ends with ``event: end`` and reason ``credentials no longer valid``."""
    if recheck_every < 1:
        raise ValueError(f"recheck_every must be at least 1, got {recheck_every}")
    svc = ctx.services

    async def events() -> AsyncIterator[str]:
        reason = "max_ticks"
        for n in range(max_ticks):
            if n % recheck_every == 0 and not await ctx.still_allowed():
                reason = "credentials no longer valid"
                break
            if await request.is_disconnected():
                return
            for event in await tick(n):
                yield event
            await svc.sleep(interval_s)
        yield sse("end", {"reason": reason})

    return StreamingResponse(
        events(), media_type="text/event-stream", headers={"X-Accel-Buffering": "no"}
    )

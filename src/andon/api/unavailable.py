"""A dependency that is down is a 503, not a 500: the metadata database restarting, refusing
connections or out of connections. The caller is told to come back (``Retry-After``), the
refusal is counted per route (``GET /ingest/stats``: ``unavailable``) and logged at most once
per ``LOG_INTERVAL_S``; nothing was done, so an edge sends the same frame again.

Which errors mean "down" (not a bug, ``is_down``): a refused, reset or timed-out connection
(``OSError``'s ``ConnectionError``, ``TimeoutError``), SQLAlchemy's ``OperationalError``,
``InterfaceError``, pool ``TimeoutError`` and invalidated connections, and asyncpg's
connection and start-up refusals, bare or wrapped in SQLAlchemy's ``DBAPIError``.
"""

from __future__ import annotations

import importlib
import logging
import time
from collections import Counter

import sqlalchemy.exc
from fastapi import Request
from fastapi.responses import JSONResponse

__all__ = ["RETRY_AFTER_S", "UNAVAILABLE", "Unavailable", "is_down"]

log = logging.getLogger("andon.api")

RETRY_AFTER_S = 5
LOG_INTERVAL_S = 10.0


def _asyncpg_errors() -> tuple[type[Exception], ...]:
    try:
        pg = importlib.import_module("asyncpg.exceptions")  # no type stubs
    except ImportError:  # pragma: no cover - asyncpg is a dependency
        return ()
    return (
        pg.PostgresConnectionError,
        pg.CannotConnectNowError,
        pg.AdminShutdownError,
        pg.TooManyConnectionsError,
        pg.InterfaceError,
    )


_DOWN: tuple[type[Exception], ...] = (ConnectionError, TimeoutError, *_asyncpg_errors())

UNAVAILABLE: tuple[type[Exception], ...] = (
    *_DOWN,
    sqlalchemy.exc.DBAPIError,
    sqlalchemy.exc.TimeoutError,
)
"""Exceptions the handler is registered for; a ``DBAPIError`` only counts as "down" when
``is_down`` says so (else it is a bug, re-raised: a 500)."""


def is_down(exc: BaseException) -> bool:
    """Whether ``exc`` says a dependency is down (rather than a bug): a connection error, a
    pool timeout, SQLAlchemy's operational or interface errors, or any error whose cause
    is one of those (SQLAlchemy wraps asyncpg's "not yet accepting connections")."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        e = todo.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(
            e,
            (
                *_DOWN,
                sqlalchemy.exc.OperationalError,
                sqlalchemy.exc.InterfaceError,
                sqlalchemy.exc.TimeoutError,
            ),
        ):
            return True
        if isinstance(e, sqlalchemy.exc.DBAPIError) and e.connection_invalidated:
            return True
        for nxt in (getattr(e, "orig", None), e.__cause__, e.__context__):
            if isinstance(nxt, BaseException):
                todo.append(nxt)
    return False


class Unavailable:
    """The app's exception handler for ``UNAVAILABLE``; ``counts``: refusals per route."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self._logged = 0.0

    async def __call__(self, request: Request, exc: Exception) -> JSONResponse:
        if not is_down(exc):
            raise exc  # a bug, not an outage: the server's 500
        route = getattr(request.scope.get("route"), "name", None) or "unrouted"
        self.counts[route] += 1
        now = time.monotonic()
        if now - self._logged >= LOG_INTERVAL_S:
            self._logged = now
            log.warning(
                "%s %s answered 503, a dependency is unavailable: %s: %s (%d so far)",
                request.method,
                request.url.path,
                type(exc).__name__,
                exc,
                sum(self.counts.values()),
            )
        return JSONResponse(
            {"detail": "a service the platform depends on is unavailable; try again"},
            status_code=503,
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )

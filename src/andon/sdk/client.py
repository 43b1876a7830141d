"""``Client``: the app's end of the socket. One connection, requests answered by id,
pushed events queued per subscription (bounded: the oldest goes first, counted).

Most apps never use it directly: ``andon.sdk.Context`` wraps it with typed methods.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator
from typing import Any, Final

from andon.sdk.protocol import (
    PROTOCOL_VERSION,
    ProtocolError,
    error_for,
    read_message,
    write_message,
)

__all__ = ["DEFAULT_EVENT_QUEUE", "Client", "EventStream"]

DEFAULT_EVENT_QUEUE: Final = 1000
"""Pushed events kept per subscription before the oldest are dropped."""


class EventStream:
    """The events of one live subscription; iterate with ``async for``. Ends when the
    connection closes or the subscription is cancelled. ``dropped`` counts events lost
    because the app read them slower than they came."""

    def __init__(self, sub: int, max_queue: int) -> None:
        self.sub = sub
        self.max_queue = max_queue
        self.dropped = 0
        self.closed = False
        self._queue: deque[dict[str, Any]] = deque()
        self._ready = asyncio.Event()

    def _offer(self, event: dict[str, Any]) -> None:
        if len(self._queue) >= self.max_queue:
            self._queue.popleft()
            self.dropped += 1
        self._queue.append(event)
        self._ready.set()

    def _close(self) -> None:
        self.closed = True
        self._ready.set()

    async def next(self, timeout: float | None = None) -> dict[str, Any] | None:
        """The next event; ``None`` after ``timeout`` seconds or once closed and empty."""
        while not self._queue:
            if self.closed:
                return None
            self._ready.clear()
            try:
                await asyncio.wait_for(self._ready.wait(), timeout)
            except TimeoutError:
                return None
        return self._queue.popleft()

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        return self

    async def __anext__(self) -> dict[str, Any]:
        event = await self.next()
        if event is None:
            raise StopAsyncIteration
        return event


class Client:
    """A connection to an app gateway. ``await Client.connect(path, app_id, version)``
    opens it and says hello; ``grant`` is the gateway's answer (tenant, sites, permissions,
    settings)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._next_id = 0
        self._pending: dict[int, asyncio.Future[tuple[Any, bytes | None]]] = {}
        self._streams: dict[int, EventStream] = {}
        self._write_lock = asyncio.Lock()
        self._closed: BaseException | None = None
        self.grant: dict[str, Any] = {}
        self._task = asyncio.create_task(self._read_loop(), name="andon-sdk-reader")

    @classmethod
    async def connect(cls, path: str, app_id: str, version: str) -> Client:
        """Connect to the socket at ``path`` and say hello; ``ConnectionError`` when no
        gateway listens there, ``RemoteError`` when it refuses the app."""
        try:
            reader, writer = await asyncio.open_unix_connection(path, limit=2**16)
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise ConnectionError(f"no app gateway at {path}: {exc.strerror or exc}") from None
        client = cls(reader, writer)
        try:
            hello = {"protocol": PROTOCOL_VERSION, "app_id": app_id, "version": version}
            grant, _ = await client.call("hello", hello)
        except BaseException:
            await client.close()
            raise
        client.grant = grant if isinstance(grant, dict) else {}
        return client

    async def _read_loop(self) -> None:
        try:
            while True:
                got = await read_message(self._reader)
                if got is None:
                    raise ConnectionError("the gateway closed the connection")
                msg, blob = got
                if "sub" in msg and "event" in msg:
                    stream = self._streams.get(msg["sub"])
                    if stream is not None and isinstance(msg["event"], dict):
                        stream._offer(msg["event"])
                    continue
                rid = msg.get("id")
                fut = self._pending.pop(rid, None) if isinstance(rid, int) else None
                if fut is None or fut.done():
                    continue  # a reply to a request given up on
                if "error" in msg:
                    err = msg["error"] if isinstance(msg["error"], dict) else {}
                    code = str(err.get("code", "internal"))
                    fut.set_exception(error_for(code, str(err.get("message", ""))))
                else:
                    fut.set_result((msg.get("result"), blob))
        except (ProtocolError, ConnectionError, OSError) as exc:
            self._fail(exc)
        except asyncio.CancelledError:
            self._fail(ConnectionError("client closed"))
            raise

    def _fail(self, exc: BaseException) -> None:
        self._closed = exc
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(ConnectionError(f"connection lost: {exc}"))
        self._pending.clear()
        for stream in self._streams.values():
            stream._close()

    async def call(
        self, method: str, params: dict[str, Any] | None = None
    ) -> tuple[Any, bytes | None]:
        """Send a request and wait for its reply: ``(result, binary part or None)``; an
        error reply raises its ``RemoteError`` subclass."""
        if self._closed is not None:
            raise ConnectionError(f"connection lost: {self._closed}")
        self._next_id += 1
        rid = self._next_id
        fut: asyncio.Future[tuple[Any, bytes | None]] = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        try:
            async with self._write_lock:
                await write_message(
                    self._writer, {"id": rid, "method": method, "params": params or {}}
                )
        except BaseException:
            self._pending.pop(rid, None)
            raise
        return await fut

    async def subscribe(self, site: str, max_queue: int = DEFAULT_EVENT_QUEUE) -> EventStream:
        """Subscribe to a site's live events (``live.subscribe``)."""
        result, _ = await self.call("live.subscribe", {"site": site})
        stream = EventStream(int(result["sub"]), max_queue)
        self._streams[stream.sub] = stream
        return stream

    async def unsubscribe(self, stream: EventStream) -> None:
        self._streams.pop(stream.sub, None)
        stream._close()
        if self._closed is None:
            await self.call("live.unsubscribe", {"sub": stream.sub})

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await self._task
        self._writer.close()
        with contextlib.suppress(OSError, ConnectionError):
            await self._writer.wait_closed()

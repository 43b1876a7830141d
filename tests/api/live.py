"""A real uvicorn server on a free loopback port, in a thread with its own event loop. The
socket listens before the thread starts, so the first request simply waits for start-up: no
polling, no sleeps."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import uvicorn
from fastapi import FastAPI

__all__ = ["LiveServer", "live_server"]

T = TypeVar("T")


@dataclass
class LiveServer:
    app: FastAPI
    url: str
    loop: asyncio.AbstractEventLoop

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the server's loop (where its database connections live)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=60)


@contextmanager
def live_server(
    app: FastAPI, *, certfile: Path | None = None, keyfile: Path | None = None
) -> Iterator[LiveServer]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(256)
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        log_level="warning",
        ws="none",
        lifespan="on",
        server_header=False,
        ssl_certfile=str(certfile) if certfile else None,
        ssl_keyfile=str(keyfile) if keyfile else None,
    )
    server = uvicorn.Server(config)
    loop = asyncio.new_event_loop()

    def main() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(server.serve(sockets=[sock]))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()

    thread = threading.Thread(target=main, name="andon-live-server", daemon=True)
    thread.start()
    scheme = "https" if certfile else "http"
    try:
        yield LiveServer(app, f"{scheme}://127.0.0.1:{port}", loop)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()

"""The platform's API (``create_app``) served by a real uvicorn over TLS on a fixed loopback
port, in a thread with its own loop, so a test can stop it and start it again on the same
address (a platform restart as the edge sees it). The SQLite metadata file and the DuckDB
store outlive the restarts, as a real platform's databases would."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any, TypeVar

import uvicorn

from andon.api import create_app
from andon.platform import KeyKind, Permission
from andon.platform.config import Settings
from andon.platform.service import Platform, Principal
from andon.store.duckdb_store import DuckDBStore
from tests.connect.pki import Pair, make_ca, tls_leaf
from tests.edge.broker import free_port

__all__ = ["ApiPlatform", "demo_yaml"]

T = TypeVar("T")
TENANT = "ta"


def demo_yaml() -> str:
    return (files("andon.sim") / "plants" / "demo.yaml").read_text(encoding="utf-8")


@dataclass
class _Running:
    server: uvicorn.Server
    thread: threading.Thread
    loop: asyncio.AbstractEventLoop
    sock: socket.socket


class ApiPlatform:
    """``start()`` / ``stop()`` the API; ``setup()`` makes a tenant, the demo site and an
    edge key (returned as ``key``); ``url``, ``site_id`` and ``ca`` for the edge."""

    def __init__(self, tmp: Path, **settings: Any) -> None:
        self.tmp = tmp
        self.port = free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.ca: Pair = make_ca(tmp / "pki", "api-ca")
        self.leaf = tls_leaf(tmp / "pki", self.ca, "api")
        self.store = DuckDBStore.open(tmp / "telemetry.duckdb")
        settings.setdefault("web", False)
        settings.setdefault("monitoring", {"alert_interval_s": 0})
        self.settings = Settings(
            database_url=f"sqlite:///{tmp / 'platform.db'}", secret_key="k" * 40, **settings
        )
        self._running: _Running | None = None
        self.site_id = ""
        self.key = ""
        self.key_id = ""

    def start(self) -> None:
        app = create_app(self.settings, store=self.store)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(256)
        config = uvicorn.Config(
            app,
            log_level="warning",
            ws="none",
            lifespan="on",
            server_header=False,
            ssl_certfile=str(self.leaf.cert),
            ssl_keyfile=str(self.leaf.key),
        )
        server = uvicorn.Server(config)
        loop = asyncio.new_event_loop()
        started = threading.Event()

        async def serve() -> None:
            started.set()
            await server.serve(sockets=[sock])

        def main() -> None:
            asyncio.set_event_loop(loop)
            loop.run_until_complete(serve())
            loop.run_until_complete(loop.shutdown_asyncgens())

        thread = threading.Thread(target=main, name="andon-api", daemon=True)
        thread.start()
        started.wait(30)
        deadline = time.monotonic() + 30
        while not server.started:  # the lifespan has run: services exist
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("the API did not start")
            time.sleep(0.01)
        self._running = _Running(server, thread, loop, sock)
        self.app = app

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the server's loop (where its database connections live)."""
        r = self._running
        assert r is not None
        return asyncio.run_coroutine_threadsafe(coro, r.loop).result(timeout=60)

    @property
    def platform(self) -> Platform:
        pf: Platform = self.app.state.services.platform
        return pf

    def setup(self) -> None:
        pf = self.platform
        self.run(pf.create_tenant(TENANT, "TA"))
        site = self.run(pf.create_site(TENANT, demo_yaml()))
        self.site_id = site["id"]
        admin = Principal("user", "setup", TENANT, tenant_wide=frozenset(Permission))
        key, secret = self.run(
            pf.create_api_key(
                TENANT,
                admin,
                name="edge",
                kind=KeyKind.EDGE,
                permissions=[Permission.INGEST_WRITE, Permission.SITE_READ],
                site_ids=[self.site_id],
                ttl_s=3600,
            )
        )
        self.key, self.key_id = secret, key["id"]

    def stop(self) -> None:
        r = self._running
        if r is None:
            return
        # a hard stop, as a crashed or killed platform: open connections are aborted (a
        # graceful TLS close would wait for the edge's idle pooled connections to answer)
        r.server.should_exit = True

        def abort() -> None:
            for conn in list(r.server.server_state.connections):
                transport = getattr(conn, "transport", None)
                if transport is not None:
                    transport.abort()

        deadline = time.monotonic() + 30
        while r.thread.is_alive() and time.monotonic() < deadline:
            r.loop.call_soon_threadsafe(abort)
            r.thread.join(timeout=0.05)
        r.loop.close()
        r.sock.close()
        self._running = None

    async def values(self, names: list[str], start: int, end: int) -> dict[str, list[float]]:
        got = await self.store.read(TENANT, names, start, end)
        return {n: got.value[got.index == i].tolist() for i, n in enumerate(got.names)}

    def close(self) -> None:
        self.stop()
        asyncio.run(self.store.close())

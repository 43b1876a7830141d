"""Shared pieces of the edge tests: a platform (store + ingest service) and condition waits."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import numpy as np

from andon.ingest import Ingestor
from andon.ingest.ledger import DedupLedger
from andon.ingest.service import EdgeCredential, IngestService, hash_token
from andon.store.duckdb_store import DuckDBStore

__all__ = ["TENANT", "TOKEN", "Platform", "signals", "until", "until_async"]

TENANT = "acme"
TOKEN = "s3cret-edge-token"


def signals(n: int) -> list[str]:
    return [f"site/area/line/m{i % 3}/s{i}" for i in range(n)]


async def until(pred: Callable[[], bool], timeout: float, what: str) -> None:
    """Wait for a condition (checked every 20 ms) or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.02)


async def until_async(pred: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    """``until`` for a condition that must be awaited."""
    deadline = time.monotonic() + timeout
    while not await pred():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.02)


class Platform:
    """DuckDB store + ingestor + ledger + MQTT ingest service; the service can be cut."""

    def __init__(self, tmp: Path, port: int, names: list[str], edge: str = "edge-1") -> None:
        self.store = DuckDBStore.open(tmp / "platform.duckdb")
        self.ingestor = Ingestor(self.store)
        self.ingestor.register(TENANT, names, [])
        self.ledger = DedupLedger.open(tmp / "ledger.db")
        self.service = IngestService(
            self.ingestor,
            self.ledger,
            {edge: EdgeCredential(TENANT, hash_token(TOKEN))},
            port=port,
        )
        self.names = names
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self.service.run())

    async def cut(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def close(self) -> None:
        await self.cut()
        await self.store.close()
        self.ledger.close()

    async def values(self, start: int, end: int) -> dict[str, np.ndarray]:
        got = await self.store.read(TENANT, self.names, start, end)
        return {n: got.value[got.index == i] for i, n in enumerate(got.names)}

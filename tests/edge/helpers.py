"""Shared pieces of the edge tests: a platform (store + ingest gateway and its MQTT receiver,
with one static edge key) and condition waits."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import numpy as np

from andon.ingest import Ingestor
from andon.ingest.gateway import EdgeIdentity, IngestGateway, StaticKeys, StaticSites
from andon.ingest.mqtt import MqttReceiver, ReceiverConfig
from andon.store.duckdb_store import DuckDBStore

__all__ = [
    "KEY",
    "KEY_ID",
    "TENANT",
    "Platform",
    "signals",
    "spawn_edge",
    "until",
    "until_async",
]

TENANT = "acme"
KEY_ID = "e1" * 16
KEY = f"andon_{KEY_ID}_s3cret-edge-secret"
"""A platform edge key of the tenant, for every site."""


def spawn_edge(cfg: Path, log: Path) -> subprocess.Popen[bytes]:
    """A real edge agent process (``andon edge --config cfg``), its output appended to ``log``."""
    with log.open("ab") as f:
        return subprocess.Popen(
            [sys.executable, "-m", "andon.cli", "edge", "--config", str(cfg)],
            stdout=f,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )


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
    """DuckDB store + ingest gateway + MQTT receiver; the receiver can be cut. The names'
    site (``site``) belongs to ``TENANT``, whose edge key is ``KEY``."""

    def __init__(
        self,
        tmp: Path,
        port: int,
        names: list[str],
        workers: int = 1,
        login: tuple[str, str] | None = None,
    ) -> None:
        self.store = DuckDBStore.open(tmp / "platform.duckdb")
        self.ingestor = Ingestor(self.store)
        self.ingestor.register(TENANT, names, [])
        self.keys = StaticKeys({KEY: EdgeIdentity(KEY_ID, TENANT)})
        self.gateway = IngestGateway(
            self.ingestor, self.keys, StaticSites({TENANT: {"site": "site-1"}}), key_cache_s=0
        )
        user, password = login or (None, None)
        self.receiver = MqttReceiver(
            self.gateway,
            ReceiverConfig(port=port, workers=workers, username=user, password=password),
        )
        self.names = names
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self.receiver.run())

    async def cut(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def close(self) -> None:
        await self.cut()
        await self.store.close()

    async def values(self, start: int, end: int) -> dict[str, np.ndarray]:
        got = await self.store.read(TENANT, self.names, start, end)
        return {n: got.value[got.index == i] for i, n in enumerate(got.names)}

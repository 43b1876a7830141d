"""The edge agent: runs connectors, writes every batch to the durable buffer, forwards it.

``EdgeAgent.run`` runs until cancelled: one task per connector (read → ``buffer.put``; a
batch counts as acknowledged by the edge only once ``put`` returned), the uplink, and a status
writer that keeps ``<data_dir>/status.json`` current for ``andon edge status``.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import os
import sqlite3
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from andon.connect.base import Connector, within
from andon.edge.buffer import BufferFull, DiskFull, EdgeBuffer
from andon.edge.config import EdgeConfig
from andon.edge.https_uplink import HealthReporter, HttpsUplink, HttpsUplinkConfig
from andon.edge.uplink import Uplink, UplinkConfig
from andon.model.clock import wall_clock
from andon.model.types import Micros, SampleBatch
from andon.wire.health import (
    BufferHealth,
    ConnectorHealth,
    DeviceHealth,
    EdgeHealth,
    UplinkHealth,
)

__all__ = ["EdgeAgent", "make_uplink", "read_status", "write_status_file"]

log = logging.getLogger("andon.edge.agent")

LOG_EVERY_S = 10.0
"""At most one log line per kind of repeated failure (drops, status writes) this often."""

STATUS_FILE = "status.json"
BUFFER_FILE = "buffer.db"


class EdgeAgent:
    """One edge: its connectors, buffer and uplink."""

    def __init__(
        self,
        config: EdgeConfig,
        connectors: Sequence[Connector],
        clock: Callable[[], Micros] = wall_clock,
    ) -> None:
        """``clock``: the wall time the agent stamps its status with (µs since the epoch);
        waits and rate limits run on the monotonic clock, which a stepped wall clock cannot
        stall."""
        names = [c.name for c in connectors]
        if len(set(names)) != len(names):
            raise ValueError(f"connector names must be unique: {names}")
        self.config = config
        self.connectors = list(connectors)
        self.clock = clock
        self.buffer: EdgeBuffer | None = None
        self.uplink: Uplink | HttpsUplink | None = None
        self.dropped: dict[str, int] = {}
        self._logged_at: dict[str, float] = {}

    async def run(self) -> None:
        cfg = self.config
        cfg.data_dir.mkdir(parents=True, exist_ok=True)
        self.buffer = await EdgeBuffer.open(
            cfg.data_dir / BUFFER_FILE,
            cfg.buffer.max_bytes,
            cfg.buffer.policy,
            cfg.buffer.reserve_bytes,
        )
        self.uplink = make_uplink(self.buffer, cfg, self.status)
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self.uplink.run())
                tg.create_task(self._status_loop())
                if cfg.uplink.reports_to_api:
                    tg.create_task(self._health_reporter().run())
                for c in self.connectors:
                    tg.create_task(self._pump(c))
        finally:
            with contextlib.suppress(Exception):
                await self._write_status()
            await self.buffer.close()

    async def _pump(self, connector: Connector) -> None:
        """Connector → buffer. Small batches arriving within ``linger_s`` of each other are
        merged into one put (one fsync), up to ``max_batch_points``."""
        assert self.buffer is not None
        cursor = await self.buffer.cursor(connector.name)
        queue: asyncio.Queue[tuple[SampleBatch, str | None]] = asyncio.Queue(maxsize=64)

        async def read() -> None:
            async for item in connector.batches(cursor):
                if len(item[0]) or item[0].text is not None:  # text values ride along (0202)
                    await queue.put(item)

        linger, cap = self.config.linger_s, self.config.max_batch_points
        async with asyncio.TaskGroup() as tg:
            tg.create_task(read())
            while True:
                batch, cur = await queue.get()
                parts, n = [batch], len(batch)
                deadline = time.monotonic() + linger
                while n < cap:
                    left = deadline - time.monotonic()
                    if left <= 0 and queue.empty():
                        break
                    try:
                        batch, cur = await within(queue.get(), max(left, 0))
                    except TimeoutError:
                        break
                    parts.append(batch)
                    n += len(batch)
                merged = parts[0] if len(parts) == 1 else SampleBatch.concat(parts)
                try:
                    await self.buffer.put(connector.name, merged, cur)
                except (BufferFull, DiskFull) as exc:
                    # counted by the buffer (a full disk: with reason disk_full); the source
                    # keeps being read, so what is lost is only what could not be stored
                    self.dropped[connector.name] = self.dropped.get(connector.name, 0) + n
                    self._log_limited(type(exc).__name__, "%s", exc)

    def _health_reporter(self) -> HealthReporter:
        u = self.config.uplink
        assert u.url is not None and u.site is not None
        return HealthReporter(
            HttpsUplinkConfig(
                self.config.edge.id,
                u.url,
                u.site,
                u.resolved_key(),
                u.api_tls_context(),
                timeout_s=u.ack_timeout_s,
                health_interval_s=self.config.health_interval_s,
            ),
            self.status,
        )

    async def status(self) -> EdgeHealth:
        """The agent's health report (the status file, the report posted to the platform).
        Built from its own counters without validation: a long error text must not stop
        the agent; the platform validates what it receives."""
        assert self.buffer is not None and self.uplink is not None
        stats = await self.buffer.stats()
        return EdgeHealth.model_construct(
            edge=self.config.edge.id,
            time_us=int(self.clock()),
            pid=os.getpid(),
            interval_s=self.config.health_interval_s,
            uplink=UplinkHealth.model_construct(**asdict(self.uplink.stats)),
            buffer=BufferHealth.model_construct(**asdict(stats)),
            connectors=[
                ConnectorHealth.model_construct(
                    connector=c.health.connector,
                    devices=[
                        DeviceHealth.model_construct(**asdict(d)) for d in c.health.devices.values()
                    ],
                )
                for c in self.connectors
            ],
        )

    async def _write_status(self) -> None:
        assert self.buffer is not None
        try:
            await self.buffer.maintain()  # leave disk-full, give free pages back
        except sqlite3.Error as exc:
            self._log_limited("maintain", "buffer housekeeping failed: %s", exc)
        doc = await self.status()
        path = self.config.data_dir / STATUS_FILE
        text = doc.model_dump_json(indent=1)
        await asyncio.to_thread(write_status_file, path, text)

    async def _status_loop(self) -> None:
        while True:
            try:
                await self._write_status()
            except OSError as exc:  # a full disk must not stop the agent
                self._log_limited("status", "status file not written: %s", exc)
            await asyncio.sleep(self.config.status_interval_s)

    def _log_limited(self, kind: str, msg: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._logged_at.get(kind, -LOG_EVERY_S) >= LOG_EVERY_S:
            self._logged_at[kind] = now
            log.error(msg, *args)


def make_uplink(
    buffer: EdgeBuffer,
    cfg: EdgeConfig,
    health: Callable[[], Awaitable[EdgeHealth]] | None = None,
) -> Uplink | HttpsUplink:
    """The uplink the site file asks for (``health``: what an HTTPS uplink reports)."""
    u = cfg.uplink
    if u.kind == "https":
        assert u.url is not None and u.site is not None
        return HttpsUplink(
            buffer,
            HttpsUplinkConfig(
                cfg.edge.id,
                u.url,
                u.site,
                u.resolved_key(),
                u.tls_context(),
                window=u.window,
                timeout_s=u.ack_timeout_s,
                health_interval_s=cfg.health_interval_s,
            ),
            health,
        )
    return Uplink(
        buffer,
        UplinkConfig(
            cfg.edge.id,
            u.resolved_key(),
            u.host,
            u.port,
            u.window,
            u.ack_timeout_s,
            u.username,
            u.resolved_password(),
            u.tls_context(),
        ),
    )


STATUS_SLACK = 4096
"""Room to grow the status file keeps (trailing spaces): a disk-full rewrite in place fits."""


def write_status_file(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` atomically (a new file renamed over it), padded with
    spaces to whole 4 KiB blocks and ``STATUS_SLACK`` more. On a full disk (``ENOSPC``) the
    new file cannot be made: the text is written over the old file's own, already allocated
    bytes instead, so the status stays fresh while the disk is full (decision 0311 left it
    stale). Readers may then catch a write half done: ``read_status`` reads again."""
    data = text.encode("utf-8")
    size = (len(data) + STATUS_SLACK + 4095) // 4096 * 4096
    tmp = path.with_suffix(".tmp")
    try:
        with tmp.open("wb") as f:
            f.write(data + b" " * (size - len(data)))
        os.replace(tmp, path)
        return
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.errno != errno.ENOSPC:
            raise
        full = exc
    try:
        old = path.open("r+b")
    except FileNotFoundError:
        raise full from None
    with old:
        room = os.fstat(old.fileno()).st_size
        if len(data) > room:
            raise OSError(errno.ENOSPC, f"status ({len(data)} bytes) outgrew its file") from full
        old.write(data + b" " * (room - len(data)))


def read_status(data_dir: Path) -> dict[str, Any]:
    """The status an agent last wrote in ``data_dir``, an ``EdgeHealth`` as JSON (raises
    ``FileNotFoundError``). A status being rewritten in place (a full disk) is read again."""
    path = data_dir / STATUS_FILE
    for _ in range(4):
        try:
            doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
            return doc
        except (json.JSONDecodeError, UnicodeDecodeError):
            time.sleep(0.01)  # the writer is between two writes of one small file
    doc = json.loads(path.read_text(encoding="utf-8"))
    return doc

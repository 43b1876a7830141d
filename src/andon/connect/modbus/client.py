"""The Modbus TCP connector: polls each device at its own rate with planned, batched reads.

A failed read never stops the connector: the points it serves are emitted with ``BAD``
quality and a NaN value (so the outage is visible in the data), the error is counted in the
device's health, and the client reconnects with backoff.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from andon.connect.base import Health, Manifest, within
from andon.connect.modbus.codec import ByteOrder, DataType, decode, scaled
from andon.connect.modbus.plan import Point, Read, Table, plan
from andon.connect.net import Backoff
from andon.model.types import Quality, SampleBatch

__all__ = ["MANIFEST", "ModbusConfig", "ModbusConnector", "ModbusDevice", "ModbusPoint"]

log = logging.getLogger("andon.connect.modbus")

MANIFEST = Manifest(
    domain="modbus",
    name="Modbus TCP",
    protocol="modbus-tcp",
    requirements=("pymodbus>=3.10",),
    iot_class="local_polling",
)


class _Cfg(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModbusPoint(_Cfg):
    signal: str = Field(min_length=1)
    table: Table = "holding"
    address: int = Field(ge=0, le=65535)
    type: DataType = "uint16"
    byte_order: ByteOrder = "big"
    word_order: ByteOrder = "big"
    scale: float = 1.0
    offset: float = 0.0


class ModbusDevice(_Cfg):
    name: str = Field(min_length=1)
    host: str = "127.0.0.1"
    port: int = Field(502, gt=0, lt=65536)
    unit: int = Field(1, ge=0, le=255)
    poll_s: float = Field(1.0, gt=0)
    timeout_s: float = Field(1.0, gt=0)
    retries: int = Field(1, ge=0)
    max_gap: int = Field(8, ge=0)
    points: list[ModbusPoint] = Field(min_length=1)


class ModbusConfig(_Cfg):
    name: str = Field(min_length=1)
    devices: list[ModbusDevice] = Field(min_length=1)


def _now_us() -> int:
    return time.time_ns() // 1000


class ModbusConnector:
    """Polls every configured device; yields one batch per device poll."""

    manifest = MANIFEST

    def __init__(self, config: ModbusConfig, clock: Callable[[], int] = _now_us) -> None:
        self.config = config
        self.name = config.name
        self.health = Health(config.name)
        self._clock = clock

    async def batches(self, cursor: str | None) -> AsyncIterator[tuple[SampleBatch, str | None]]:
        queue: asyncio.Queue[SampleBatch] = asyncio.Queue(maxsize=1000)
        tasks = [asyncio.create_task(self._poll(d, queue)) for d in self.config.devices]
        try:
            while True:
                get = asyncio.ensure_future(queue.get())
                done, _ = await asyncio.wait([get, *tasks], return_when=asyncio.FIRST_COMPLETED)
                if get not in done:
                    get.cancel()
                    for t in done:  # a poller must never end: surface its error
                        t.result()
                    raise RuntimeError("a Modbus poller stopped")
                yield get.result(), None
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _poll(self, dev: ModbusDevice, queue: asyncio.Queue[SampleBatch]) -> None:
        points = [
            Point(
                p.signal, p.table, p.address, p.type, p.byte_order, p.word_order, p.scale, p.offset
            )
            for p in dev.points
        ]
        reads = plan(points, dev.max_gap)
        names = tuple(p.signal for p in points)
        slot = {p.signal: i for i, p in enumerate(points)}
        # reconnect_delay=0: no reconnection inside pymodbus; this loop owns it (and counts it)
        client = AsyncModbusTcpClient(
            dev.host, port=dev.port, timeout=dev.timeout_s, retries=dev.retries, reconnect_delay=0
        )
        limit = dev.timeout_s * (dev.retries + 1) + 0.5
        backoff = Backoff(initial_s=min(dev.poll_s, 0.1), max_s=max(dev.poll_s, 5.0))
        ever_connected = False
        next_t = time.monotonic()
        try:
            while True:
                if not client.connected:
                    if not await client.connect():
                        self.health.error(dev.name, f"cannot connect to {dev.host}:{dev.port}")
                        await asyncio.sleep(backoff.next())
                        continue
                    if ever_connected:
                        self.health.reconnected(dev.name)
                    ever_connected = True
                    backoff.reset()
                t0 = time.monotonic()
                values = np.full(len(points), math.nan)
                quality = np.full(len(points), Quality.BAD, dtype=np.uint8)
                failed = False
                for r in reads:
                    try:
                        regs = await within(self._read(client, r, dev.unit), limit)
                    except asyncio.CancelledError:
                        task = asyncio.current_task()
                        if task is not None and task.cancelling():
                            raise
                        # pymodbus cancels a pending request when the connection drops
                        self.health.error(dev.name, "connection lost during a request")
                        failed = True
                        client.close()
                        break
                    except (ModbusException, OSError, ValueError, TimeoutError) as exc:
                        self.health.error(dev.name, exc or "timeout")
                        log.warning("modbus %s: %s", dev.name, exc or "timeout")
                        failed = True
                        client.close()
                        break
                    for p in r.points:
                        off = p.address - r.address
                        raw = decode(regs[off : off + p.width], p.dtype, p.byte_order, p.word_order)
                        values[slot[p.signal]] = scaled(raw, p.scale, p.offset)
                        quality[slot[p.signal]] = Quality.GOOD
                ts = self._clock()
                batch = SampleBatch(
                    names,
                    np.arange(len(points), dtype=np.int32),
                    np.full(len(points), ts, dtype=np.int64),
                    values,
                    quality,
                )
                if not failed:
                    self.health.success(dev.name, len(points), time.monotonic() - t0)
                await queue.put(batch)
                if failed and not client.connected:
                    continue
                next_t += dev.poll_s
                now = time.monotonic()
                if next_t < now:  # missed ticks are skipped, not bunched
                    next_t = now + dev.poll_s - ((now - next_t) % dev.poll_s)
                await asyncio.sleep(next_t - now)
        finally:
            client.close()

    @staticmethod
    async def _read(client: AsyncModbusTcpClient, r: Read, unit: int) -> list[int]:
        fn: Any = {
            "holding": client.read_holding_registers,
            "input": client.read_input_registers,
            "coil": client.read_coils,
            "discrete": client.read_discrete_inputs,
        }[r.table]
        rsp = await fn(r.address, count=r.count, device_id=unit)
        if rsp.isError():
            raise ModbusException(f"{r.table} {r.address}+{r.count}: {rsp}")
        if r.table in ("coil", "discrete"):
            return [int(b) for b in rsp.bits[: r.count]]
        regs: list[int] = list(rsp.registers)
        if len(regs) != r.count:
            raise ValueError(f"{r.table} {r.address}+{r.count}: got {len(regs)} registers")
        return regs

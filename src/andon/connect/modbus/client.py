"""The Modbus TCP connector: polls each device at its own rate with planned, batched reads.

A failed read never stops the connector: the points it serves are emitted with ``BAD``
quality and a NaN value (so the outage is visible in the data), the error is counted in the
device's health, and the client reconnects with backoff (reset only by a completed poll).
An exception response (illegal data address...) is the device answering, not a lost
connection: only the points of that read turn BAD, counted by reason in ``rejected``; a merged
read that draws one is split into one read per point, and the split is kept.
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
from andon.model.types import Quality, SampleBatch
from andon.wire.net import Backoff

__all__ = [
    "MANIFEST",
    "DeviceException",
    "ModbusConfig",
    "ModbusConnector",
    "ModbusDevice",
    "ModbusPoint",
]

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
    address: int = Field(
        ge=0,
        le=65535,
        description="0-based protocol address (a manual's 40001 is holding address 0)",
    )
    type: DataType = "uint16"
    byte_order: ByteOrder = Field(
        "big", description="bytes inside each register: big (AB), little (BA, byte swap)"
    )
    word_order: ByteOrder = Field(
        "big",
        description="registers of a wider value: big (most significant first, ABCD), little"
        " (least significant first, CDAB, word swap)",
    )
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
    max_gap: int = Field(
        0,
        ge=0,
        description="unmapped addresses one read may span to merge two points (0: merge only"
        " adjacent points; a device answers a read over a hole with an exception)",
    )
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
        outage = _Outage(
            dev.name, Backoff(initial_s=min(dev.poll_s, 0.1), max_s=max(dev.poll_s, 5.0))
        )
        warned: set[str] = set()
        ever_connected = False
        next_t = time.monotonic()
        try:
            while True:
                if not client.connected:
                    if not await client.connect():
                        why = f"cannot connect to {dev.host}:{dev.port}"
                        self.health.error(dev.name, why)
                        await asyncio.sleep(outage.delay(why))
                        continue
                    if ever_connected:
                        self.health.reconnected(dev.name)
                    ever_connected = True
                    # the backoff is reset by a completed poll, not by a connect: a peer that
                    # accepts and drops at once must not be retried at full speed
                t0 = time.monotonic()
                values = np.full(len(points), math.nan)
                quality = np.full(len(points), Quality.BAD, dtype=np.uint8)
                lost = ""
                pending = list(reads)
                kept: list[Read] = []
                while pending:
                    r = pending.pop(0)
                    try:
                        regs = await within(self._read(client, r, dev.unit), limit)
                    except DeviceException as exc:
                        # the device answered: the connection is fine, these points are not
                        merged = len(r.points) > 1 and exc.code in _SPLIT
                        why = exc.describe(merged)
                        self.health.reject(dev.name, exc.reason)
                        d = self.health.device(dev.name)
                        d.errors += 1
                        d.last_error = why
                        if why not in warned:
                            warned.add(why)
                            log.warning("modbus %s: %s", dev.name, why)
                        if merged:  # read each point alone from now on
                            pending[:0] = [
                                Read(r.table, p.address, p.width, (p,)) for p in r.points
                            ]
                        else:
                            kept.append(r)
                        continue
                    except asyncio.CancelledError:
                        task = asyncio.current_task()
                        if task is not None and task.cancelling():
                            raise
                        # pymodbus cancels a pending request when the connection drops
                        lost = "connection lost during a request"
                    except (ModbusException, OSError, ValueError, TimeoutError) as exc:
                        lost = str(exc) or "timeout"
                    if lost:
                        kept.extend([r, *pending])
                        break
                    kept.append(r)
                    for p in r.points:
                        off = p.address - r.address
                        raw = decode(regs[off : off + p.width], p.dtype, p.byte_order, p.word_order)
                        values[slot[p.signal]] = scaled(raw, p.scale, p.offset)
                        quality[slot[p.signal]] = Quality.GOOD
                reads = kept
                ts = self._clock()
                batch = SampleBatch(
                    names,
                    np.arange(len(points), dtype=np.int32),
                    np.full(len(points), ts, dtype=np.int64),
                    values,
                    quality,
                )
                await queue.put(batch)
                if lost:
                    self.health.error(dev.name, lost)
                    client.close()
                    await asyncio.sleep(outage.delay(lost))
                    continue
                self.health.success(
                    dev.name, int(np.count_nonzero(quality == Quality.GOOD)), time.monotonic() - t0
                )
                outage.over()
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
            raise DeviceException(int(getattr(rsp, "exception_code", 0)), r)
        if r.table in ("coil", "discrete"):
            return [int(b) for b in rsp.bits[: r.count]]
        regs: list[int] = list(rsp.registers)
        if len(regs) != r.count:
            raise ValueError(f"{r.table} {r.address}+{r.count}: got {len(regs)} registers")
        return regs


_EXCEPTIONS: dict[int, str] = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "device failure",
    5: "acknowledge",
    6: "device busy",
    8: "memory parity error",
    10: "gateway path unavailable",
    11: "gateway target failed to respond",
}
"""Modbus exception codes (Modbus Application Protocol v1.1b3, section 7)."""

_SPLIT = frozenset({2, 3})
"""Exceptions a merged read may cause by covering addresses no point needs."""


class DeviceException(Exception):
    """The device answered a read with a Modbus exception response (not a connection fault).

    >>> from andon.connect.modbus.plan import Point
    >>> r = Read("holding", 9, 6, (Point("a", "holding", 9), Point("b", "holding", 14)))
    >>> DeviceException(2, r).describe(merged=True)
    'illegal data address at holding 9–14 (merged read)'
    """

    def __init__(self, code: int, read: Read) -> None:
        self.code = code
        self.read = read
        self.reason = _EXCEPTIONS.get(code, f"exception code {code}")
        super().__init__(self.describe(False))

    def describe(self, merged: bool) -> str:
        r = self.read
        where = f"{r.table} {r.address}" + (f"–{r.address + r.count - 1}" if r.count > 1 else "")
        signals = "" if merged else f" ({', '.join(p.signal for p in r.points)})"
        return f"{self.reason} at {where}" + (" (merged read)" if merged else signals)


class _Outage:
    """Paces reconnects of one device and keeps its log short: one warning per backoff step
    while the delay grows, then one a minute while it stays at its cap."""

    def __init__(self, device: str, backoff: Backoff) -> None:
        self.device = device
        self.backoff = backoff
        self.attempts = 0
        self._last_log = -math.inf

    def delay(self, why: str) -> float:
        self.attempts += 1
        capped = self.backoff.initial_s * 2 ** (self.attempts - 1) > self.backoff.max_s
        now = time.monotonic()
        if not capped or now - self._last_log >= 60.0:
            self._last_log = now
            log.warning("modbus %s: %s (attempt %d); retrying", self.device, why, self.attempts)
        return self.backoff.next()

    def over(self) -> None:
        if self.attempts:
            log.info("modbus %s: reading again after %d attempts", self.device, self.attempts)
        self.attempts = 0
        self.backoff.reset()

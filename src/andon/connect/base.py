"""What every connector is: a source of ``SampleBatch`` es with a manifest and health.

A connector reads one protocol and maps its addresses onto model signal paths by config. The
edge agent drives it through one method, ``batches(cursor)``, an async iterator of
``(batch, cursor)`` pairs that runs until cancelled and handles its own reconnects (a failed
read means "retry", never a crash). ``cursor`` is the source position after the batch, for
sources that can resume (files, MTConnect sequences); polling sources give ``None``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable
from dataclasses import asdict, dataclass, field
from typing import Protocol, TypeVar, runtime_checkable

from andon.model.types import SampleBatch

__all__ = ["Connector", "DeviceHealth", "Health", "Manifest", "within"]


_T = TypeVar("_T")


async def within(aw: Awaitable[_T], timeout: float) -> _T:
    """``aw``'s result, or ``TimeoutError`` after ``timeout`` seconds.

    Used instead of ``asyncio.wait_for``, which on Python 3.11 can swallow a cancellation
    that arrives as the inner awaitable completes (CPython gh-86296): a connector task then
    never ends. ``asyncio.wait`` always lets the caller's cancellation through.

    >>> asyncio.run(within(asyncio.sleep(0, "done"), 1.0))
    'done'
    """
    task = asyncio.ensure_future(aw)
    try:
        done, _ = await asyncio.wait([task], timeout=max(timeout, 0.0))
    except asyncio.CancelledError:
        task.cancel()
        raise
    if not done:
        task.cancel()
        raise TimeoutError(f"no result within {timeout} s")
    return task.result()


@dataclass(frozen=True)
class Manifest:
    """A connector's declaration, checked by ``andon.connect.registry.check_manifest``."""

    domain: str
    name: str
    protocol: str
    requirements: tuple[str, ...]
    iot_class: str  # "local_polling" or "local_push"
    resumable: bool = False


@dataclass
class DeviceHealth:
    """Connection health of one device: what ``andon edge status`` shows."""

    device: str
    connected: bool = False
    last_success_us: int | None = None
    last_error: str = ""
    errors: int = 0
    reconnects: int = 0
    reads: int = 0
    points: int = 0
    text_points: int = 0
    """Of ``points``, text values (strings, enumeration labels, events; decision 0202)."""
    latency_ms: float | None = None
    rejected: dict[str, int] = field(default_factory=dict)
    """Refused messages or values by reason (malformed, wrong type, bad timestamp...)."""


@dataclass
class Health:
    """Health of every device of one connector."""

    connector: str
    devices: dict[str, DeviceHealth] = field(default_factory=dict)

    def device(self, name: str) -> DeviceHealth:
        return self.devices.setdefault(name, DeviceHealth(name))

    def success(self, device: str, points: int, latency_s: float, text_points: int = 0) -> None:
        """A completed read of ``points`` values, ``text_points`` of them text."""
        d = self.device(device)
        d.connected = True
        d.reads += 1
        d.points += points
        d.text_points += text_points
        d.latency_ms = round(latency_s * 1000.0, 3)
        d.last_success_us = int(time.time() * 1_000_000)

    def error(self, device: str, exc: BaseException | str) -> None:
        d = self.device(device)
        d.connected = False
        d.errors += 1
        d.last_error = str(exc)[:300]

    def reject(self, device: str, reason: str, n: int = 1) -> None:
        d = self.device(device)
        d.rejected[reason] = d.rejected.get(reason, 0) + n

    def reconnected(self, device: str) -> None:
        d = self.device(device)
        d.reconnects += 1
        d.connected = True

    def as_dict(self) -> dict[str, object]:
        return {"connector": self.connector, "devices": [asdict(d) for d in self.devices.values()]}


@runtime_checkable
class Connector(Protocol):
    """The one interface the edge agent drives."""

    manifest: Manifest
    name: str
    health: Health

    def batches(self, cursor: str | None) -> AsyncIterator[tuple[SampleBatch, str | None]]: ...

"""Per-connector harnesses for the conformance suite: each starts the connector's real peer
on loopback and builds a connector configured against it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from andon.connect.base import Connector
from andon.connect.registry import build_connector

__all__ = ["HARNESSES", "Peer", "harness"]


@dataclass
class Peer:
    """A running peer and its connector; ``stop``/``start`` simulate an outage (None: the
    source has no peer to lose)."""

    connector: Connector
    signals: set[str]
    stop: Callable[[], Awaitable[None]] | None = None
    start: Callable[[], Awaitable[None]] | None = None
    feed: Callable[[], Awaitable[None]] | None = None
    """Makes the peer produce data (push sources); called repeatedly while waiting."""
    live_ts: bool = True
    """Whether samples are stamped with the time they were read (not replayed history)."""


HARNESSES: dict[str, Callable[[Path], AbstractAsyncContextManager[Peer]]] = {}


def harness(domain: str) -> Callable[[Callable[[Path], AsyncIterator[Peer]]], None]:
    def deco(fn: Callable[[Path], AsyncIterator[Peer]]) -> None:
        HARNESSES[domain] = asynccontextmanager(fn)

    return deco


@harness("synthetic")
async def _synthetic(tmp: Path) -> AsyncIterator[Peer]:
    names = ["site/a/l/m/x", "site/a/l/m/y"]
    c = build_connector(
        {
            "type": "synthetic",
            "name": "gen",
            "signals": names,
            "batch_points": 10,
            "rate_points_s": 1000,
        }
    )
    yield Peer(c, set(names), live_ts=False)


@harness("modbus")
async def _modbus(tmp: Path) -> AsyncIterator[Peer]:
    from andon.sim.servers.modbus import ModbusImage, ModbusSimServer

    img = ModbusImage()
    img.set("holding", 0, 21.5, "float32")
    img.set("input", 4, 1234)
    img.set("coil", 2, 1)
    server = ModbusSimServer({1: img})
    await server.start()
    c = build_connector(
        {
            "type": "modbus",
            "name": "legacy",
            "devices": [
                {
                    "name": "press-1",
                    "port": server.port,
                    "poll_s": 0.05,
                    "timeout_s": 0.3,
                    "retries": 0,
                    "points": [
                        {
                            "signal": "s/a/l/press/temp",
                            "table": "holding",
                            "address": 0,
                            "type": "float32",
                        },
                        {"signal": "s/a/l/press/count", "table": "input", "address": 4},
                        {"signal": "s/a/l/press/run", "table": "coil", "address": 2},
                    ],
                }
            ],
        }
    )
    try:
        yield Peer(
            c,
            {"s/a/l/press/temp", "s/a/l/press/count", "s/a/l/press/run"},
            stop=server.stop,
            start=server.start,
        )
    finally:
        await server.stop()


@harness("sparkplug")
async def _sparkplug(tmp: Path) -> AsyncIterator[Peer]:
    import asyncio
    import contextlib
    import math

    from andon.connect.sparkplug.payload import BOOLEAN, DOUBLE, FLOAT, INT32
    from andon.sim.servers.sparkplug import SparkplugEdgeNode
    from tests.edge.broker import Broker

    broker = Broker(tmp)
    await asyncio.to_thread(broker.start)
    node = SparkplugEdgeNode(
        "plant1",
        "robotcell",
        {
            "robot1": [("axis/1/torque", DOUBLE), ("cycle count", INT32), ("running", BOOLEAN)],
            "env": [("temperature", FLOAT)],
        },
        lambda d, m, t: 20.0 + math.sin(t),
        port=broker.port,
        period_s=0.05,
    )
    task = asyncio.create_task(node.run())
    c = build_connector(
        {
            "type": "sparkplug",
            "name": "robots",
            "port": broker.port,
            "group": "plant1",
            "prefix": "s/a/cell",
            "signals": {"robotcell/env/temperature": "s/a/env/temp"},
        }
    )
    try:
        yield Peer(
            c,
            {
                "s/a/cell/robot1/axis/1/torque",
                "s/a/cell/robot1/cycle_count",
                "s/a/cell/robot1/running",
                "s/a/env/temp",
            },
            stop=lambda: asyncio.to_thread(broker.stop),
            start=lambda: asyncio.to_thread(broker.start),
        )
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await asyncio.to_thread(broker.close)


@harness("mqtt_json")
async def _mqtt_json(tmp: Path) -> AsyncIterator[Peer]:
    import asyncio
    import json
    import time

    from andon.wire.net import mqtt_client
    from tests.edge.broker import Broker

    broker = Broker(tmp)
    await asyncio.to_thread(broker.start)
    c = build_connector(
        {
            "type": "mqtt_json",
            "name": "sensors",
            "port": broker.port,
            "topics": [
                {
                    "filter": "hall/+/env",
                    "signal": "s/hall/{1}/temp",
                    "value": "t",
                    "timestamp": "ts",
                }
            ],
        }
    )

    async def feed() -> None:
        try:
            async with mqtt_client("127.0.0.1", broker.port) as pub:
                doc = {"t": 21.5, "ts": time.time_ns() // 1_000_000}
                await pub.publish("hall/z1/env", json.dumps(doc), qos=1)
                await pub.publish("hall/z2/env", b"{broken", qos=1)
        except Exception:  # the broker may be down during the outage phase
            return

    try:
        yield Peer(
            c,
            {"s/hall/z1/temp", "s/hall/z2/temp"},
            stop=lambda: asyncio.to_thread(broker.stop),
            start=lambda: asyncio.to_thread(broker.start),
            feed=feed,
        )
    finally:
        await asyncio.to_thread(broker.close)


@harness("csv")
async def _csv(tmp: Path) -> AsyncIterator[Peer]:
    (tmp / "h.csv").write_text("t,v\n2026-01-01T00:00:00,1.5\n", encoding="utf-8")
    c = build_connector(
        {
            "type": "csv",
            "name": "history",
            "path": str(tmp / "*.csv"),
            "timestamp": "t",
            "columns": {"v": "s/a/v"},
            "watch_s": 0.05,
        }
    )
    yield Peer(c, {"s/a/v"}, live_ts=False)


@harness("mtconnect")
async def _mtconnect(tmp: Path) -> AsyncIterator[Peer]:
    from andon.sim.servers.mtconnect import MTConnectAgent

    agent = MTConnectAgent(
        "vmc1",
        [("s1", "Sspeed", "SAMPLE", "SPINDLE_SPEED"), ("x1", "Xact", "SAMPLE", "POSITION")],
    )
    await agent.start()
    port = agent.port
    agent.observe("s1", 1200.0)
    agent.observe("x1", None)  # UNAVAILABLE: a bad-quality sample

    async def feed() -> None:
        agent.observe("s1", 1250.0)
        agent.observe("x1", 10.5)

    async def start() -> None:
        agent.port = port
        await agent.start()

    c = build_connector(
        {
            "type": "mtconnect",
            "name": "vmc",
            "url": f"http://127.0.0.1:{port}",
            "items": {"s1": "s/a/l/vmc1/spindle_speed", "x1": "s/a/l/vmc1/x"},
            "poll_s": 0.05,
            "timeout_s": 1.0,
        }
    )
    try:
        yield Peer(
            c,
            {"s/a/l/vmc1/spindle_speed", "s/a/l/vmc1/x"},
            stop=agent.stop,
            start=start,
            feed=feed,
        )
    finally:
        await agent.stop()


@harness("opcua")
async def _opcua(tmp: Path) -> AsyncIterator[Peer]:
    from andon.sim.servers.opcua import OpcUaSimServer

    server = OpcUaSimServer({"vmc1": ["spindle_speed", "spindle_temp"]})
    await server.start()
    c = build_connector(
        {
            "type": "opcua",
            "name": "machining",
            "url": server.url,
            "publishing_ms": 50,
            "watchdog_s": 0.2,
            "timeout_s": 1.0,
            "nodes": [
                {
                    "node_id": server.node_id("vmc1", "spindle_speed"),
                    "signal": "s/a/l/vmc1/speed",
                    "sampling_ms": 20,
                },
                {
                    "node_id": server.node_id("vmc1", "spindle_temp"),
                    "signal": "s/a/l/vmc1/temp",
                    "deadband": 0.5,
                },
            ],
        }
    )
    value = [1000.0]

    async def feed() -> None:
        if server.server is not None:
            value[0] += 1.0
            await server.set("vmc1", "spindle_speed", value[0])

    try:
        yield Peer(
            c,
            {"s/a/l/vmc1/speed", "s/a/l/vmc1/temp"},
            stop=server.stop,
            start=server.start,
            feed=feed,
        )
    finally:
        await server.stop()

"""``andon demo --via protocols``: the virtual factory read through real protocols.

The in-process demo hands the factory's batches straight to the ingestor. This one goes the
long way a real plant's data goes:

    factory → protocol servers (OPC UA, Modbus TCP, Sparkplug B over MQTT, MTConnect)
            → edge agent connectors → durable edge buffer → MQTT uplink
            → ingest gateway (edge key, site check, validation) → store (first write wins)

The factory runs against the wall clock from *now* (``speed`` 1 by default), because the
protocols stamp what they serve with the time they serve it: Modbus registers carry no time
(the poll's time is the sample's), the Sparkplug node stamps its DDATA. OPC UA values carry
the factory's time as their SourceTimestamp and MTConnect observations the factory's time.
Between two polls a server holds only the newest value of a signal, so the store gets what an
edge would read (every value stored is one the factory drew), not every sample drawn.

Machine states and part counts have no server yet; they go to the same ingestor in process,
so the live view's OEE still works.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from andon.connect.base import Connector, within
from andon.connect.registry import build_connector
from andon.demo.run import DemoRun
from andon.edge.agent import EdgeAgent
from andon.edge.config import EdgeConfig, EdgeSection, UplinkSection
from andon.ingest.gateway import IngestGateway
from andon.ingest.mqtt import MqttReceiver, ReceiverConfig
from andon.model.plant import Plant
from andon.model.types import Micros, SampleBatch
from andon.sim.factory import Flush
from andon.sim.servers.bridge import FactoryServers
from andon.store.base import TelemetryStore

__all__ = ["ProtocolDemo", "run_via_protocols"]

EDGE_ID = "demo-edge"


@dataclass
class ProtocolDemo:
    """A running protocol demo: what ``on_tick`` receives. ``run`` is the ``DemoRun`` the
    live view renders (its ingestor is the one the ingest service stores through)."""

    run: DemoRun
    servers: FactoryServers
    agent: EdgeAgent
    gateway: IngestGateway
    receiver: MqttReceiver
    drawn: list[SampleBatch] = field(default_factory=list)
    """Every sample batch the factory drew (kept only when ``keep_drawn``)."""

    def protocol_of(self, path: str) -> str | None:
        """Which protocol serves a signal path (``None`` for one no server has)."""
        a = self.servers.assignment
        for name in ("opcua", "modbus", "sparkplug", "mtconnect"):
            if path in getattr(a, name):
                return name
        return None


async def run_via_protocols(
    plant: Plant,
    store: TelemetryStore,
    seed: int,
    data_dir: Path,
    *,
    duration_s: float | None = None,
    speed: float = 1.0,
    mqtt_host: str = "127.0.0.1",
    mqtt_port: int = 1883,
    start: Micros | None = None,
    poll_s: float = 0.2,
    tick_s: float = 0.25,
    drain_timeout_s: float = 30.0,
    on_tick: Callable[[ProtocolDemo], Awaitable[None] | None] | None = None,
    keep_drawn: bool = False,
) -> dict[str, Any]:
    """Run the factory for ``duration_s`` wall seconds (forever when ``None``; cancel to
    stop) behind its protocol servers, read by an edge agent into ``store``.

    ``mqtt_host:mqtt_port`` is a running broker, used both by the Sparkplug node and by the
    uplink; ``data_dir`` holds the edge buffer. After the span, the
    factory stops and the edge's buffer drains (up to ``drain_timeout_s``) before the
    summary is returned: points per protocol, connector health, edge buffer and uplink,
    ingest service and ingestor counters. ``on_tick`` is called after every step (and
    awaited when it returns an awaitable)."""
    if speed <= 0:
        raise ValueError("speed must be positive")
    if duration_s is not None and duration_s <= 0:
        raise ValueError("duration_s must be positive")
    data_dir.mkdir(parents=True, exist_ok=True)
    window_s = max(1.0, speed)
    if start is None:  # one window back: the newest sample drawn is never in the future
        start = time.time_ns() // 1000 - round(window_s * 1e6)
    run = DemoRun.create(plant, store, seed, start, window_s=window_s)
    servers = FactoryServers(plant, mqtt_port, period_s=poll_s, mqtt_host=mqtt_host)
    await servers.start()  # node ids and ports are known once the servers run
    # the edge uses the demo's edge key (of the platform's form), known to its gateway only;
    # the factory's direct writes and the edge's frames go through that one gateway
    key = run.key
    config = EdgeConfig(
        edge=EdgeSection(id=EDGE_ID),
        data_dir=data_dir / "edge",
        uplink=UplinkSection(host=mqtt_host, port=mqtt_port, key=key),
        connectors=servers.connectors(poll_s=poll_s),
    )
    try:
        connectors: list[Connector] = [build_connector(c) for c in config.connectors]
    except BaseException:
        await servers.stop()
        raise
    agent = EdgeAgent(config, connectors)
    gateway = run.gateway
    receiver = MqttReceiver(
        gateway,
        ReceiverConfig(
            mqtt_host,
            mqtt_port,
            client_id=f"andon-demo-ingest-{secrets.token_hex(4)}",
            group=f"andon-demo-{secrets.token_hex(4)}",
        ),
    )
    demo = ProtocolDemo(run, servers, agent, gateway, receiver)
    tasks: list[asyncio.Task[None]] = []

    async def publish(flushes: list[Flush]) -> None:
        for f in flushes:
            if keep_drawn:
                demo.drawn.append(f.samples)
            await servers.publish(f.samples)
            # states and parts have no protocol server: the gateway takes them with the key
            await gateway.submit(key, states=f.states, parts=f.parts)

    try:
        # serve the first window before any client connects: nothing reads placeholder zeros
        await publish(run.factory.advance(run.factory.window_s))
        tasks.append(asyncio.create_task(receiver.run()))
        await _wait(receiver.connected.wait(), 15.0, "the ingest gateway's MQTT connection")
        tasks.append(asyncio.create_task(agent.run()))
        wall0 = time.monotonic()
        while True:
            elapsed = time.monotonic() - wall0
            if duration_s is not None:
                elapsed = min(elapsed, duration_s)
            await publish(run.factory.advance(run.factory.window_s + elapsed * speed))
            _raise_if_failed(tasks)
            if on_tick is not None and (got := on_tick(demo)) is not None:
                await got
            if duration_s is not None and elapsed >= duration_s:
                break
            await asyncio.sleep(tick_s)
        drained = await _drain(demo, tasks, drain_timeout_s)
        summary = await _summary(demo, drained)
    finally:
        for t in reversed(tasks):
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await t
        await servers.stop()
    return summary


def _raise_if_failed(tasks: list[asyncio.Task[None]]) -> None:
    for t in tasks:
        if t.done() and not t.cancelled() and t.exception() is not None:
            raise RuntimeError(f"demo task {t.get_name()} failed") from t.exception()


async def _wait(aw: Any, timeout: float, what: str) -> None:
    try:
        await within(aw, timeout)
    except TimeoutError:
        raise TimeoutError(f"no {what} within {timeout} s") from None


async def _drain(demo: ProtocolDemo, tasks: list[asyncio.Task[None]], timeout: float) -> bool:
    """Stop reading, then wait until the edge buffer holds nothing unacknowledged."""
    deadline = time.monotonic() + timeout
    # let the connectors see the last window: one more poll period of reading
    await asyncio.sleep(2 * demo.servers.node.period_s + 0.5)
    buf = demo.agent.buffer
    while buf is not None:
        _raise_if_failed(tasks)
        stats = await buf.stats()
        if stats.pending_points == 0:
            return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return False


async def _summary(demo: ProtocolDemo, drained: bool) -> dict[str, Any]:
    agent, run = demo.agent, demo.run
    status = (await agent.status()).model_dump(mode="json")
    per_protocol = {
        c.name: sum(d.points for d in c.health.devices.values()) for c in agent.connectors
    }
    a = demo.servers.assignment
    return {
        "tenant": run.plant.tenant,
        "site": run.plant.site.id,
        "edge": EDGE_ID,
        "drained": drained,
        "signals": {
            "opcua": len(a.opcua),
            "modbus": len(a.modbus),
            "sparkplug": len(a.sparkplug),
            "mtconnect": len(a.mtconnect),
        },
        "points_read": per_protocol,
        "connectors": status["connectors"],
        "buffer": status["buffer"],
        "uplink": status["uplink"],
        "service": demo.gateway.stats.as_dict(),
        "ingest": run.ingestor.stats.as_dict(),
    }

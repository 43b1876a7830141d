"""The virtual factory behind real protocol servers (OPC UA, Modbus TCP, Sparkplug B,
MTConnect), read back by the connectors an edge site file would configure: every signal of
the demo plant arrives under its own path with the value the factory drew (text values:
the MTConnect machine tool's execution and program, as events)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from importlib.resources import as_file, files
from pathlib import Path

import numpy as np

from andon.connect.registry import build_connector
from andon.demo.run import default_start
from andon.model.loader import load_plant
from andon.model.types import Quality, SampleBatch
from andon.sim.factory import VirtualFactory
from andon.sim.servers.bridge import FactoryServers
from tests.edge.broker import Broker


def test_demo_plant_is_read_through_four_protocols(tmp_path: Path, broker: Broker) -> None:
    with as_file(files("andon.sim") / "plants" / "demo.yaml") as p:
        plant = load_plant(p)
    factory = VirtualFactory(plant, 7, default_start(plant), window_s=60.0)
    flushes = factory.advance(120.0)
    samples = SampleBatch.concat([f.samples for f in flushes])

    async def go() -> None:
        servers = FactoryServers(plant, broker.port, period_s=0.1)
        await servers.start()
        await servers.publish(samples)
        expected: dict[str, float] = {}
        order = np.lexsort((samples.ts, samples.index))
        for i in order:  # the newest value of each signal wins
            expected[samples.names[int(samples.index[i])]] = float(samples.value[i])
        assert samples.text is not None
        texts: dict[str, str] = {}
        for i in np.argsort(samples.text.ts, kind="stable"):
            texts[samples.text.signal_at(int(i))] = samples.text.value[i]
        a = servers.assignment
        for path in a.modbus:
            expected[path] = float(np.float32(expected[path]))  # float32 registers
        assert min(len(a.opcua), len(a.modbus), len(a.sparkplug), len(a.mtconnect)) > 0
        connectors = [build_connector(c) for c in servers.connectors(poll_s=0.1)]
        got: dict[str, float] = {}
        got_text: dict[str, str] = {}

        async def read(c: object) -> None:
            async for batch, _ in c.batches(None):  # type: ignore[attr-defined]
                for i in range(len(batch)):
                    if batch.quality[i] == Quality.GOOD:
                        got[batch.signal_at(i)] = float(batch.value[i])
                t = batch.text
                for i in range(len(t) if t is not None else 0):
                    if t.quality[i] == Quality.GOOD:
                        got_text[t.signal_at(i)] = t.value[i]

        tasks = [asyncio.create_task(read(c)) for c in connectors]
        try:
            deadline = time.monotonic() + 30
            while got_text != texts or any(got.get(k) != v for k, v in expected.items()):
                assert time.monotonic() < deadline, (
                    {k: (got.get(k), v) for k, v in expected.items() if got.get(k) != v},
                    (got_text, texts),
                )
                assert not any(t.done() for t in tasks), [t.result() for t in tasks if t.done()]
                await asyncio.sleep(0.05)
        finally:
            for t in tasks:
                t.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await t
            await servers.stop()
        assert set(texts) == {f"tc1/machining/L1/MC-02/{s}" for s in ("execution", "program")}
        assert set(expected) | set(texts) == set(plant.signal_paths())

    asyncio.run(go())

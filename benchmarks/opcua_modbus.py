"""Values/s read over Modbus TCP polling and OPC UA subscriptions, against the simulator's
servers on loopback (pymodbus and asyncua in this same process: the peers' CPU is included).

Figures (one JSON object per line on stdout):

* ``modbus_poll_values_per_s``: ``--registers`` float32 values (2 registers each) on one device,
  planned into 125-register reads, polled back to back for ``--seconds``.
* ``opcua_subscription_values_per_s``: ``--variables`` Double variables, all rewritten by the
  server every 20 ms, subscribed with a 50 ms publishing interval; data changes received per s.

Run: ``.venv/bin/python benchmarks/opcua_modbus.py [--seconds S]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import time

from andon.connect.modbus import ModbusConfig, ModbusConnector
from andon.connect.opcua import OpcUaConfig, OpcUaConnector
from andon.sim.servers.modbus import ModbusImage, ModbusSimServer
from andon.sim.servers.opcua import OpcUaSimServer

__all__ = ["main"]


def emit(figure: str, value: float, unit: str) -> None:
    machine = (
        f"{os.cpu_count()} cpu, {platform.machine()}, {platform.system()} {platform.release()}, "
        f"python {platform.python_version()}"
    )
    print(json.dumps({"figure": figure, "value": value, "unit": unit, "machine": machine}))


async def modbus(n: int, seconds: float) -> float:
    img = ModbusImage(size=2 * n + 8)
    for i in range(n):
        img.set("holding", 2 * i, float(i), "float32")
    server = ModbusSimServer({1: img})
    await server.start()
    points = [
        {"signal": f"s/m/r{i}", "table": "holding", "address": 2 * i, "type": "float32"}
        for i in range(n)
    ]
    c = ModbusConnector(
        ModbusConfig.model_validate(
            {
                "name": "b",
                "devices": [{"name": "d", "port": server.port, "poll_s": 1e-4, "points": points}],
            }
        )
    )
    values = 0
    it = c.batches(None).__aiter__()
    await asyncio.wait_for(it.__anext__(), 30)  # connected
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        batch, _ = await asyncio.wait_for(it.__anext__(), 30)
        values += len(batch)
    rate = values / (time.perf_counter() - t0)
    await it.aclose()  # type: ignore[attr-defined]
    await server.stop()
    return rate


async def opcua(n: int, seconds: float) -> float:
    server = OpcUaSimServer({"m": [f"v{i}" for i in range(n)]})
    await server.start()
    nodes = [{"node_id": server.node_id("m", f"v{i}"), "signal": f"s/o/v{i}"} for i in range(n)]
    c = OpcUaConnector(
        OpcUaConfig.model_validate(
            {"name": "b", "url": server.url, "publishing_ms": 50, "nodes": nodes}
        )
    )
    stop = asyncio.Event()

    async def writer() -> None:
        k = 0
        while not stop.is_set():
            k += 1
            for i in range(n):
                await server.set("m", f"v{i}", float(k * 1000 + i))
            await asyncio.sleep(0.02)

    got = 0

    async def reader() -> None:
        nonlocal got
        async for batch, _ in c.batches(None):
            got += len(batch)

    r = asyncio.create_task(reader())
    w = asyncio.create_task(writer())
    deadline = time.monotonic() + 60
    while got < n:  # initial values: subscription established
        if time.monotonic() > deadline or r.done():
            raise RuntimeError(f"subscription delivered {got} of {n} initial values")
        await asyncio.sleep(0.05)
    start = got
    t0 = time.perf_counter()
    await asyncio.sleep(seconds)
    rate = (got - start) / (time.perf_counter() - t0)
    stop.set()
    for t in (r, w):
        t.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await t
    await server.stop()
    return rate


def main() -> None:
    p = argparse.ArgumentParser(description="Modbus and OPC UA read rates")
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--registers", type=int, default=500)
    p.add_argument("--variables", type=int, default=200)
    a = p.parse_args()
    emit("modbus_poll_values_per_s", round(asyncio.run(modbus(a.registers, a.seconds))), "values/s")
    emit(
        "opcua_subscription_values_per_s",
        round(asyncio.run(opcua(a.variables, a.seconds))),
        "values/s",
    )


if __name__ == "__main__":
    main()

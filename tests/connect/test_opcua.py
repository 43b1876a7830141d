"""OPC UA against the simulator's asyncua server: status codes → quality, deadband, polling."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

import pytest
from asyncua import ua
from asyncua.ua.status_codes import StatusCodes

from andon.connect.opcua import OpcUaConfig, OpcUaConnector, OpcUaNode, quality_of
from andon.model.types import Quality, SampleBatch
from andon.sim.servers.opcua import OpcUaSimServer


@pytest.mark.parametrize(
    ("code", "quality"),
    [
        (StatusCodes.Good, Quality.GOOD),
        (StatusCodes.GoodClamped, Quality.GOOD),
        (StatusCodes.UncertainSensorNotAccurate, Quality.UNCERTAIN),
        (StatusCodes.BadSensorFailure, Quality.BAD),
        (StatusCodes.BadCommunicationError, Quality.BAD),
    ],
)
def test_status_codes_map_to_quality(code: int, quality: Quality) -> None:
    assert quality_of(ua.StatusCode(ua.UInt32(code))) == quality


async def _until(pred: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


@pytest.mark.parametrize("mode", ["subscribe", "poll"])
def test_values_quality_and_deadband(mode: str) -> None:
    async def go() -> None:
        server = OpcUaSimServer({"g1": ["speed", "temp"]})
        await server.start()
        nodes = [
            OpcUaNode(node_id=server.node_id("g1", "speed"), signal="s/g1/speed", sampling_ms=0),
            OpcUaNode(node_id=server.node_id("g1", "temp"), signal="s/g1/temp", deadband=1.0),
        ]
        c = OpcUaConnector(
            OpcUaConfig(
                name="o", url=server.url, mode=mode, nodes=nodes, publishing_ms=20, poll_s=0.05
            )
        )
        got: list[SampleBatch] = []

        async def consume() -> None:
            async for b, _ in c.batches(None):
                got.append(b)

        def seen(signal: str) -> list[tuple[float, int]]:
            out = []
            for b in got:
                for i in range(len(b)):
                    if b.signal_at(i) == signal:
                        out.append((float(b.value[i]), int(b.quality[i])))
            return out

        task = asyncio.create_task(consume())
        try:
            await server.set("g1", "speed", 1500.0)
            await _until(lambda: (1500.0, Quality.GOOD) in seen("s/g1/speed"), 10)
            await server.set("g1", "speed", 7.0, StatusCodes.UncertainSensorNotAccurate)
            await _until(lambda: (7.0, Quality.UNCERTAIN) in seen("s/g1/speed"), 10)
            await server.set("g1", "speed", 8.0, StatusCodes.BadSensorFailure)
            await _until(lambda: any(q == Quality.BAD for _, q in seen("s/g1/speed")), 10)
            if mode == "subscribe":
                for v in (20.0, 20.4, 20.8, 22.0):  # absolute deadband 1.0
                    await server.set("g1", "temp", v)
                    await asyncio.sleep(0.08)
                await _until(lambda: (22.0, Quality.GOOD) in seen("s/g1/temp"), 10)
                temps = [v for v, _ in seen("s/g1/temp")]
                assert 20.4 not in temps and 20.8 not in temps and 20.0 in temps
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await server.stop()

    asyncio.run(go())

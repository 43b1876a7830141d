"""MTConnect: sequence tracking across polls, gap detection, agent restarts, resume."""

from __future__ import annotations

import asyncio
import math

from andon.connect.mtconnect import MTConnectConfig, MTConnectConnector
from andon.model.types import SampleBatch
from andon.sim.servers.mtconnect import MTConnectAgent

ITEMS = [("s1", "S", "SAMPLE", "SPINDLE_SPEED")]


async def _take(it: object, n: int) -> list[tuple[SampleBatch, str | None]]:
    return [await asyncio.wait_for(it.__anext__(), 5) for _ in range(n)]  # type: ignore[attr-defined]


def test_sequence_tracking_gap_restart_and_resume() -> None:
    async def go() -> None:
        agent = MTConnectAgent("vmc1", ITEMS, buffer_size=8)
        await agent.start()
        cfg = MTConnectConfig(
            name="m", url=f"http://127.0.0.1:{agent.port}", items={"s1": "s/x"}, poll_s=0.01
        )
        c = MTConnectConnector(cfg)
        it = c.batches(None).__aiter__()
        try:
            agent.observe("s1", 1.0)
            ((b, cur),) = await _take(it, 1)  # /current
            assert b.value.tolist() == [1.0] and cur == f"{agent.instance_id}:2"
            for v in (2.0, 3.0, 4.0):
                agent.observe("s1", v)
            seen: list[float] = []
            while len(seen) < 3:
                ((b, cur),) = await _take(it, 1)
                seen += b.value.tolist()
            assert seen == [2.0, 3.0, 4.0] and cur == f"{agent.instance_id}:5"
            # resume from a stored cursor: nothing is read twice
            c2 = MTConnectConnector(cfg)
            it2 = c2.batches(cur).__aiter__()
            agent.observe("s1", 5.0)
            got: list[float] = []
            while not got:
                ((b, _),) = await _take(it2, 1)
                got += b.value.tolist()
            assert got == [5.0]
            await it2.aclose()  # type: ignore[attr-defined]
            # the reader falls behind the agent's 8-observation buffer: the gap is counted
            await it.aclose()  # type: ignore[attr-defined]
            for v in range(20):
                agent.observe("s1", float(v))
            c3 = MTConnectConnector(cfg)
            it3 = c3.batches(cur).__aiter__()
            await _take(it3, 1)
            assert c3.lost == 25 - 8 - 4  # sequences 5..17 overwritten (buffer holds 18..25)
            assert c3.health.device(cfg.url).rejected == {"sequence_gap": 13}
            # an agent restart (new instanceId) is detected and the reader resyncs
            agent.restart()
            agent.observe("s1", math.pi)
            vals: list[float] = []
            while math.pi not in vals:
                ((b, _),) = await _take(it3, 1)
                vals += b.value.tolist()
            assert c3.health.device(cfg.url).rejected["agent_restarted"] == 1
            await it3.aclose()  # type: ignore[attr-defined]
        finally:
            await agent.stop()

    asyncio.run(go())

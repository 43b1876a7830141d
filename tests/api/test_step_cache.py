"""``StepCache``: one computation per step however many callers, and ``stale_ok`` callers
served the previous step's result while the next one is computed."""

from __future__ import annotations

import asyncio
from typing import Any

from andon.api.deps import StepCache

KEY = ("t", "s", 0)


def test_once_per_step_and_stale_while_computing() -> None:
    async def scenario() -> None:
        cache = StepCache()
        calls: list[int] = []
        gate = asyncio.Event()

        def compute(step: int, wait: bool = False) -> Any:
            async def run() -> dict[str, Any]:
                calls.append(step)
                if wait:
                    await gate.wait()
                return {"step": step}

            return run

        got = await asyncio.gather(*(cache.get(KEY, 1, compute(1)) for _ in range(5)))
        assert got == [{"step": 1}] * 5 and calls == [1]
        # step 2 is slow: stale_ok callers get step 1 at once, the others wait for step 2
        waiting = asyncio.ensure_future(cache.get(KEY, 2, compute(2, wait=True)))
        await asyncio.sleep(0)
        assert await cache.get(KEY, 2, compute(2), stale_ok=True) == {"step": 1}
        assert not waiting.done()
        gate.set()
        assert await waiting == {"step": 2}
        assert await cache.get(KEY, 2, compute(2), stale_ok=True) == {"step": 2}
        assert calls == [1, 2]

        # a failed step is retried, and stale_ok still has the last good result meanwhile
        async def boom() -> dict[str, Any]:
            raise RuntimeError("store gone")

        try:
            await cache.get(KEY, 3, boom)
        except RuntimeError:
            pass
        else:
            raise AssertionError("the failure must reach the caller")
        assert await cache.get(KEY, 3, compute(3)) == {"step": 3}

    asyncio.run(scenario())

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


def test_figures_follow_steps_when_every_computation_is_slower_than_a_step() -> None:
    """The board froze: at a 60x plant clock a step lasts 83 ms while today's KPIs take
    longer, so each step's result landed in an entry already replaced by the next step's
    and stale_ok callers saw the first result for the rest of the day."""

    async def scenario() -> None:
        cache = StepCache()
        gates: dict[int, asyncio.Event] = {}
        started: list[int] = []

        def slow(step: int) -> Any:
            gate = gates.setdefault(step, asyncio.Event())

            async def run() -> dict[str, Any]:
                started.append(step)
                await gate.wait()
                return {"step": step}

            return run

        gates[1] = asyncio.Event()
        gates[1].set()
        assert await cache.get(KEY, 1, slow(1)) == {"step": 1}
        seen = []
        for step in range(2, 12):
            seen.append((await cache.get(KEY, step, slow(step), stale_ok=True))["step"])
            await asyncio.sleep(0)
            for g in gates.values():
                g.set()  # each computation ends only after the next step has begun
            await asyncio.sleep(0)
        # the figures move on (one step or so behind), never stuck at step 1
        assert seen[-1] >= 9, seen
        assert seen == sorted(seen)
        # at most one computation in flight at a time for stale_ok callers
        assert len(started) <= 11

    asyncio.run(scenario())


def test_a_clock_set_back_never_gets_a_later_steps_figures() -> None:
    """Tests (and an NTP step) can set the clock back: the cache then holds a later step's
    result, which a stale_ok caller must not get for an earlier step."""

    async def scenario() -> None:
        cache = StepCache()

        def fixed(step: int) -> Any:
            async def run() -> dict[str, Any]:
                await asyncio.sleep(0)
                return {"step": step}

            return run

        assert await cache.get(KEY, 9, fixed(9)) == {"step": 9}
        assert await cache.get(KEY, 5, fixed(5), stale_ok=True) == {"step": 5}
        assert await cache.get(KEY, 5, fixed(5)) == {"step": 5}

    asyncio.run(scenario())

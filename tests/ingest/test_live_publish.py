"""The ingestor publishes on the live bus what the store kept, after validation and dedup
(``andon.ingest.live``), against a real DuckDB store and the in-process bus."""

from __future__ import annotations

import asyncio

from andon.bus import (
    InProcessBus,
    Message,
    PartsCounted,
    SignalValue,
    StateChanged,
    Subscription,
    ValuesChanged,
)
from andon.ingest import Ingestor
from andon.model.types import PartBatch, Quality, SampleBatch, StateBatch
from andon.store.duckdb_store import DuckDBStore

T = 1_767_225_600_000_000


def _drain(sub: Subscription) -> list[Message]:
    out = []
    while (m := sub.get_nowait()) is not None:
        out.append(m)
    return out


def test_only_stored_newest_values_states_and_parts_are_published() -> None:
    async def go() -> None:
        store = DuckDBStore.open(None)
        bus = InProcessBus()
        ing = Ingestor(store, bus=bus)
        ing.register("t", ["s/x", "s/y", "u/z"], ["s/m"])
        ing.register("t2", ["s/x"], [])
        async with bus.subscribe("t", (">",)) as sub, bus.subscribe("t2", (">",)) as other:
            batch = SampleBatch.build(
                ["s/x", "s/y", "s/nope", "u/z"],
                [0, 0, 1, 2, 3],
                [T + 2, T + 1, T, T, T],
                [2.0, 1.0, 5.0, 7.0, 3.0],
                [0, 0, int(Quality.UNCERTAIN), 0, 0],
            )
            await ing.samples("t", batch)
            got = {m.topic: m.payload for m in _drain(sub)}
            # one message per site, the newest value per signal, the unknown signal not at all
            assert got == {
                ("site", "s", "values"): ValuesChanged(
                    (SignalValue("s/x", T + 2, 2.0, 0), SignalValue("s/y", T, 5.0, 1))
                ),
                ("site", "u", "values"): ValuesChanged((SignalValue("u/z", T, 3.0, 0),)),
            }
            # a resend (all duplicates) and a late, older sample: stored or not, no news
            await ing.samples("t", batch)
            await ing.samples("t", SampleBatch.build(["s/x"], [0], [T - 5], [9.0]))
            assert _drain(sub) == []
            # open states: a change is published once, its re-confirmation is not
            open_ = StateBatch.build(["s/m"], [0], [T], [T + 5], [2], ["jam"])
            await ing.open_states("t", open_)
            await ing.open_states("t", StateBatch.build(["s/m"], [0], [T], [T + 9], [2], ["jam"]))
            closed = StateBatch.build(["s/m"], [0], [T - 9], [T], [0])
            await ing.states("t", closed)
            parts = PartBatch.build(["s/m"], [0, 0], [T + 1, T + 3], ["p", "p"], [2, 1], [0, 1])
            await ing.parts("t", parts)
            assert [m.payload for m in _drain(sub)] == [
                StateChanged("s/m", 2, T, "jam"),
                StateChanged("s/m", 0, T - 9, "", T),
                PartsCounted("s/m", T + 3, 3, 1),
            ]
            assert other.pending() == 0  # another tenant's subscriber heard nothing
        assert ing.live is not None and ing.live.stats.failed == 0
        await store.close()

    asyncio.run(go())


def test_a_failing_bus_never_fails_the_write_and_is_counted() -> None:
    async def go() -> None:
        store = DuckDBStore.open(None)
        bus = InProcessBus()
        ing = Ingestor(store, bus=bus)
        ing.register("t", ["s/x"], [])
        await bus.close()  # every publish now raises
        rep = await ing.samples("t", SampleBatch.build(["s/x"], [0], [T], [1.0]))
        assert rep.accepted == 1
        assert ing.live is not None and ing.live.stats.failed == 1
        assert len(await store.read("t", ["s/x"], T, T + 1)) == 1
        await store.close()

    asyncio.run(go())

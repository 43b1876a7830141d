"""Text values through the ingest gateway (decision 0202): stored once, validated and
counted like samples, checked against the key's site like every name of a frame."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import numpy as np
import pytest

from andon.connect.counting import DEFAULT_START
from andon.ingest.texts import MAX_TEXT_CHARS
from andon.model.types import SampleBatch, TextBatch
from andon.wire.frames import encode_frame
from tests.ingest.test_gateway import A_ID, KEY_A, S1, S2, World

T = DEFAULT_START
EXE = "s1/area/line/m/x0"
PRG = "s1/area/line/m/x1"


@pytest.fixture
def w() -> Iterator[World]:
    world = World()
    yield world
    asyncio.run(world.store.close())


def text_frame(text: TextBatch, seq: int = 1, numeric: bool = True) -> bytes:
    nums = SampleBatch.build([S1[2]], [0, 0], [T, T + 1], [1.0, 2.0]) if numeric else None
    batch = SampleBatch.build(
        nums.names if nums else (),
        nums.index if nums else [],
        nums.ts if nums else [],
        nums.value if nums else [],
        nums.quality if nums else [],
        text=text,
    )
    return encode_frame("edge-1", KEY_A, "gen", seq, T, False, batch)


def test_text_values_are_stored_unchanged_once_and_counted(w: World) -> None:
    text = TextBatch.build(
        [EXE, PRG],
        [0, 1, 0],
        [T, T, T + 5],
        ["READY", "O1234 — Ø12", "ACTIVE"],
        code=[1, np.nan, 2],
    )

    async def go() -> None:
        first = await w.gateway.frames([(A_ID, text_frame(text))])
        assert (first.accepted, first.texts_accepted, first.refused) == (2, 3, [])
        assert [a.status for a in first.acks[A_ID]] == ["ok"]
        again = await w.gateway.frames([(A_ID, text_frame(text, numeric=False))])
        assert (again.texts_accepted, again.texts_duplicate) == (0, 3)
        got = await w.store.read_text("t1", [EXE, PRG], 0, 2**62)
        assert got.value == ("READY", "ACTIVE", "O1234 — Ø12")
        assert got.code[:2].tolist() == [1.0, 2.0]
        stats = w.gateway.stats.as_dict()
        assert (stats["texts_stored"], stats["texts_duplicate"]) == (3, 3)

    asyncio.run(go())


def test_refused_text_values_are_counted_by_reason_and_the_rest_kept(w: World) -> None:
    text = TextBatch.build(
        [EXE, "s1/area/line/m/unknown"],
        [0, 1, 0, 0],
        [T, T, 5, T + 2],
        ["ok", "who", "old", "x" * (MAX_TEXT_CHARS + 1)],
        [0, 0, 0, 0],
    )

    async def go() -> None:
        res = await w.gateway.frames([(A_ID, text_frame(text, numeric=False))])
        assert res.texts_accepted == 1
        assert res.rejected == {"unknown_signal": 1, "bad_timestamp": 1, "text_too_long": 1}
        assert [a.status for a in res.acks[A_ID]] == ["ok"]
        got = await w.store.read_text("t1", [EXE], 0, 2**62)
        assert got.value == ("ok",)
        assert w.ingestor.stats.rejected["text_too_long"] == 1

    asyncio.run(go())


def test_text_names_outside_the_keys_site_refuse_the_frame(w: World) -> None:
    text = TextBatch.build([S2[0]], [0], [T], ["ACTIVE"])  # key A may write site 1 only

    async def go() -> None:
        res = await w.gateway.frames([(A_ID, text_frame(text, numeric=False))])
        assert res.refused == ["site_not_permitted"]
        assert res.acks[A_ID][0].status == "refused"
        assert len(await w.store.read_text("t1", [S2[0]], 0, 2**62)) == 0
        # numbers of site 1 with text of site 2: names of two sites, refused whole
        res = await w.gateway.frames([(A_ID, text_frame(text, seq=2))])
        assert res.refused == ["names_outside_site"]
        assert len(await w.store.read("t1", [S1[2]], 0, 2**62)) == 0

    asyncio.run(go())


def test_text_ahead_of_the_platform_clock_is_refused_as_future() -> None:
    from andon.ingest import Ingestor
    from andon.ingest.texts import ingest_text
    from andon.store.duckdb_store import DuckDBStore

    async def go() -> None:
        store = DuckDBStore.open(None)
        try:
            ing = Ingestor(store, clock=lambda: T, future_tolerance_s=60)
            ing.register("t1", [EXE], [])
            text = TextBatch.build([EXE], [0, 0], [T, T + 61_000_000], ["now", "later"])
            rep = await ingest_text(ing, "t1", text)
            assert (rep.accepted, rep.rejected) == (1, {"future": 1})
            with pytest.raises(PermissionError, match="not registered"):
                await ingest_text(ing, "t9", text)
            assert (await store.read_text("t1", [EXE], 0, 2**62)).value == ("now",)
        finally:
            await store.close()

    asyncio.run(go())

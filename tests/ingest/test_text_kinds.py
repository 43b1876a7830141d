"""Text values against their signals' declared kinds (``wrong_kind``) and on the live bus
(``TextsChanged``), through a real DuckDB store and the in-process bus (decision 0202)."""

from __future__ import annotations

import asyncio
import math

import pytest

from andon.bus import (
    CodecError,
    InProcessBus,
    Message,
    SignalText,
    SignalValue,
    Subscription,
    TextsChanged,
    ValuesChanged,
    decode,
    encode,
)
from andon.ingest import Ingestor
from andon.ingest.texts import ingest_text
from andon.model.types import Quality, SampleBatch, TextBatch
from andon.store.duckdb_store import DuckDBStore

T = 1_767_225_600_000_000
EXE = "s/a/l/m/execution"
LOAD = "s/a/l/m/load"


def _drain(sub: Subscription) -> list[Message]:
    out = []
    while (m := sub.get_nowait()) is not None:
        out.append(m)
    return out


def test_a_value_of_the_wrong_kind_is_refused_counted_and_the_rest_stored() -> None:
    async def go() -> None:
        store = DuckDBStore.open(None)
        try:
            ing = Ingestor(store)
            ing.register("t", [EXE, LOAD], [], texts=[EXE])
            nums = SampleBatch.build([EXE, LOAD], [0, 1, 1], [T, T, T + 1], [1.0, 50.0, 51.0])
            rep = await ing.samples("t", nums)
            assert (rep.accepted, rep.rejected) == (2, {"wrong_kind": 1})
            text = TextBatch.build([EXE, LOAD], [0, 1, 0], [T, T, T + 1], ["READY", "HIGH", "A"])
            trep = await ingest_text(ing, "t", text)
            assert (trep.accepted, trep.rejected) == (2, {"wrong_kind": 1})
            assert ing.stats.rejected["wrong_kind"] == 2
            assert any(
                e.startswith("wrong_kind: text for numeric signal " + LOAD)
                for e in ing.stats.examples
            )
            assert any(
                e.startswith("wrong_kind: a number for text signal " + EXE)
                for e in ing.stats.examples
            )
            assert (await store.read_text("t", [EXE, LOAD], 0, 2**62)).value == ("READY", "A")
            assert (await store.read("t", [EXE, LOAD], 0, 2**62)).value.tolist() == [50.0, 51.0]
            # a tenant registered without kinds (kinds not declared) is not checked
            ing.register("u", [EXE, LOAD], [])
            assert not ing.declares_kinds("u")
            assert (await ingest_text(ing, "u", text)).accepted == 3
            assert (await ing.samples("u", nums)).accepted == 3
        finally:
            await store.close()

    asyncio.run(go())


def test_stored_newest_text_values_are_published_once_per_signal_and_site() -> None:
    async def go() -> None:
        store = DuckDBStore.open(None)
        bus = InProcessBus()
        ing = Ingestor(store, bus=bus)
        ing.register("t", [EXE, LOAD, "u/x/p"], [], texts=[EXE, "u/x/p"])
        try:
            async with bus.subscribe("t", (">",)) as sub:
                text = TextBatch.build(
                    [EXE, "u/x/p", "s/nope"],
                    [0, 0, 1, 2],
                    [T + 2, T + 1, T, T],
                    ["ACTIVE", "READY", "O1234 Ø", "?"],
                    [0, 0, int(Quality.BAD), 0],
                    code=[2, 1, math.nan, 0],
                )
                await ingest_text(ing, "t", text)
                got = {m.topic: m.payload for m in _drain(sub)}
                assert got == {
                    ("site", "s", "texts"): TextsChanged(
                        (SignalText(EXE, T + 2, "ACTIVE", 0, 2.0),)
                    ),
                    ("site", "u", "texts"): TextsChanged(
                        (SignalText("u/x/p", T, "O1234 Ø", int(Quality.BAD)),)
                    ),
                }
                # a resend and an older value: stored or not, no news
                await ingest_text(ing, "t", text)
                await ingest_text(ing, "t", TextBatch.build([EXE], [0], [T - 5], ["STOPPED"]))
                assert _drain(sub) == []
                # numbers keep their own topic beside it
                await ing.samples("t", SampleBatch.build([LOAD], [0], [T], [5.0]))
                assert [m.payload for m in _drain(sub)] == [
                    ValuesChanged((SignalValue(LOAD, T, 5.0, 0),))
                ]
            assert ing.live is not None and ing.live.stats.published == 3
        finally:
            await store.close()

    asyncio.run(go())


def test_text_events_survive_the_wire_codec_and_bad_rows_are_refused() -> None:
    event = TextsChanged((SignalText("s/a", 1, "ACTIVE", 0), SignalText("s/b", 2, "Ø 12", 2, 3.0)))
    assert decode(encode(event)) == event
    for bad in (
        b'{"v":1,"type":"texts","values":[["s/a",1,2.5,0,null]]}',
        b'{"v":1,"type":"texts","values":[["s/a",1,"x",0]]}',
        b'{"v":1,"type":"texts","values":{}}',
    ):
        with pytest.raises(CodecError, match="values"):
            decode(bad)

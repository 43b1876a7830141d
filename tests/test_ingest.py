"""Ingest refuses what it cannot trust, counts every refused row, and keeps the rest."""

from __future__ import annotations

import asyncio
import math

import numpy as np
import pytest

from andon.ingest import Ingestor
from andon.model.types import PartBatch, Quality, SampleBatch, StateBatch
from andon.store.duckdb_store import DuckDBStore

T = 1_767_225_600_000_000


def test_bad_rows_are_counted_and_good_rows_kept() -> None:
    async def go() -> None:
        store = DuckDBStore.open(None)
        ing = Ingestor(store)
        ing.register("t", ["s/x", "s/y"], ["s/m"])
        batch = SampleBatch.build(
            ["s/x", "s/unknown", "s/y"],
            [0, 1, 2, 0, 2, 0],
            [T, T, T, 5, T + 1, T + 2],
            [1.0, 2.0, math.nan, 3.0, math.inf, 4.0],
            [0, 0, 0, 0, 0, Quality.UNCERTAIN],
        )
        rep = await ing.samples("t", batch)
        assert rep.accepted == 2
        assert rep.rejected == {"unknown_signal": 1, "non_finite_value": 2, "bad_timestamp": 1}
        # a NaN with bad quality is a legitimate "no value" and is kept
        rep2 = await ing.samples(
            "t", SampleBatch.build(["s/y"], [0], [T + 9], [math.nan], [Quality.BAD])
        )
        assert rep2.accepted == 1
        got = await store.read("t", ["s/x"], T, T + 10)
        assert list(got.value) == [1.0, 4.0]
        assert ing.stats.as_dict()["rejected"] == {
            "bad_timestamp": 1,
            "non_finite_value": 2,
            "unknown_signal": 1,
        }
        assert ing.stats.examples and "s/unknown" in ing.stats.examples[0]
        # duplicates are counted, not stored twice
        rep3 = await ing.samples("t", SampleBatch.build(["s/x"], [0], [T], [9.0]))
        assert rep3.accepted == 0 and rep3.duplicates == 1
        # states and parts of unknown machines are refused and counted
        st = StateBatch.build(["s/m", "s/other"], [0, 1], [T, T], [T + 5, T + 5], [0, 0])
        assert await ing.states("t", st) == 1
        pb = PartBatch.build(["s/m", "s/other"], [0, 1], [T, T], ["p", "p"], [1, 1], [0, 0])
        assert await ing.parts("t", pb) == 1
        assert ing.stats.rejected["unknown_machine"] == 2
        with pytest.raises(PermissionError, match="not registered"):
            await ing.samples("other-tenant", batch)
        await store.close()

    asyncio.run(go())


def test_batches_validate_their_shape() -> None:
    with pytest.raises(ValueError, match="lengths differ"):
        SampleBatch.build(["a"], [0, 0], [1], [1.0, 2.0])
    with pytest.raises(ValueError, match="out of range"):
        SampleBatch.build(["a"], [1], [1], [1.0])
    with pytest.raises(ValueError, match="ends before"):
        StateBatch.build(["m"], [0], [5], [4], [0])
    with pytest.raises(ValueError, match="negative"):
        PartBatch.build(["m"], [0], [5], ["p"], [-1], [0])
    merged = SampleBatch.concat(
        [
            SampleBatch.build(["a", "b"], [1, 0], [1, 2], [1.0, 2.0]),
            SampleBatch.build(["b", "c"], [1, 0], [3, 4], [3.0, 4.0]),
        ]
    )
    assert [merged.signal_at(i) for i in range(4)] == ["b", "a", "c", "b"]
    assert np.array_equal(merged.value, [1.0, 2.0, 3.0, 4.0])

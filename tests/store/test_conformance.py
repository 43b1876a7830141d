"""Conformance suite for ``TelemetryStore`` implementations.

Every test runs against every implementation through the ``impl`` fixture. To check another
store (ClickHouse, say), add one entry to ``IMPLEMENTATIONS``: a function that, given a
temporary directory, returns an ``Impl`` whose ``open(key)`` opens the store named ``key``
(re-opening the same database when called again with the same key, if the store persists).

Result conventions checked here beyond ``base.py``: ``read``/``aggregate`` return ``names``
equal to the requested signals (de-duplicated, request order) and rows ordered by
``(position in names, ts)``; ``read_states``/``read_parts`` do the same with the requested
machines, and with ``machines=None`` name the machines that have rows, sorted.

The tests are coroutines run with ``asyncio.run`` (no pytest-asyncio); each opens and closes
its own store inside one event loop.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from andon.model.types import PartBatch, Quality, SampleBatch, StateBatch, TextBatch
from andon.store import DuckDBStore, TelemetryStore, open_store
from andon.store.base import Aggregates

T = TypeVar("T")

T0 = 1_700_000_000_000_000
"""A base timestamp (2023-11-14) so tests use realistic Micros."""
S = 1_000_000
"""One second in Micros."""


@dataclass(frozen=True)
class Impl:
    """How to open one implementation under test."""

    name: str
    open: Callable[[str], TelemetryStore]
    """Open the store called ``key``; the same key re-opens the same data if persistent."""
    persistent: bool


def _duckdb_memory(tmp: Path) -> Impl:
    return Impl("duckdb-memory", lambda key: DuckDBStore.open(None), persistent=False)


def _duckdb_file(tmp: Path) -> Impl:
    return Impl("duckdb-file", lambda key: DuckDBStore.open(tmp / "stores" / f"{key}.duckdb"), True)


IMPLEMENTATIONS: dict[str, Callable[[Path], Impl]] = {
    "duckdb-memory": _duckdb_memory,
    "duckdb-file": _duckdb_file,
}


@pytest.fixture(params=list(IMPLEMENTATIONS))
def impl(request: pytest.FixtureRequest, tmp_path: Path) -> Impl:
    factory: Callable[[Path], Impl] = IMPLEMENTATIONS[request.param]
    return factory(tmp_path)


_keys = itertools.count()


def run(impl: Impl, scenario: Callable[[TelemetryStore], Awaitable[T]], key: str = "") -> T:
    """Open a store (a fresh one unless ``key`` names one), run ``scenario``, close it."""

    async def go() -> T:
        store = impl.open(key or f"s{next(_keys)}")
        try:
            return await scenario(store)
        finally:
            await store.close()

    return asyncio.run(go())


# --- helpers ---------------------------------------------------------------------------------


def rows(b: SampleBatch) -> list[tuple[str, int, float, int]]:
    return [
        (b.names[int(i)], int(t), float(v), int(q))
        for i, t, v, q in zip(b.index, b.ts, b.value, b.quality, strict=True)
    ]


def state_rows(b: StateBatch) -> list[tuple[str, int, int, int, str]]:
    return [
        (b.names[int(i)], int(s), int(e), int(x), r)
        for i, s, e, x, r in zip(b.index, b.start, b.end, b.state, b.reason, strict=True)
    ]


def part_rows(b: PartBatch) -> list[tuple[str, int, str, int, int]]:
    return [
        (b.names[int(i)], int(t), p, int(g), int(s))
        for i, t, p, g, s in zip(b.index, b.ts, b.product, b.good, b.scrap, strict=True)
    ]


def agg_rows(a: Aggregates) -> list[tuple[str, int, float, float, float, float, int]]:
    return [
        (a.names[int(i)], int(b), float(mn), float(mx), float(me), float(la), int(c))
        for i, b, mn, mx, me, la, c in zip(
            a.index, a.bucket, a.min, a.max, a.mean, a.last, a.count, strict=True
        )
    ]


def expected_read(
    data: list[tuple[str, int, float, int]], signals: list[str], start: int, end: int
) -> list[tuple[str, int, float, int]]:
    """Reference ``read`` of first-write-wins ``data`` (as written, duplicates included)."""
    first: dict[tuple[str, int], tuple[str, int, float, int]] = {}
    for r in data:
        first.setdefault((r[0], r[1]), r)
    order = {s: i for i, s in enumerate(dict.fromkeys(signals))}
    kept = [r for r in first.values() if r[0] in order and start <= r[1] < end]
    return sorted(kept, key=lambda r: (order[r[0]], r[1]))


def batch_of(data: list[tuple[str, int, float, int]]) -> SampleBatch:
    names = sorted({r[0] for r in data})
    pos = {n: i for i, n in enumerate(names)}
    return SampleBatch.build(
        names,
        [pos[r[0]] for r in data],
        [r[1] for r in data],
        [r[2] for r in data],
        [r[3] for r in data],
    )


def random_batch(
    rng: np.random.Generator, names: list[str], n: int, t0: int = T0, span: int = 3600 * S
) -> SampleBatch:
    """``n`` random samples with distinct (signal, ts), in random order."""
    per = -(-n // len(names))
    ts = np.concatenate([rng.choice(span, per, replace=False) for _ in names]) + t0
    index = np.repeat(np.arange(len(names), dtype=np.int32), per)
    order = rng.permutation(len(ts))[:n]
    return SampleBatch.build(
        names,
        index[order],
        ts[order],
        rng.normal(100, 30, n),
        rng.choice(3, n, p=[0.8, 0.1, 0.1]),
    )


SIGNALS = ["acme/s1/a1/l1/m1/temp", "acme/s1/a1/l1/m1/speed", "acme/s1/a1/l1/m2/temp"]


# --- protocol and samples ----------------------------------------------------------------------


def test_implements_protocol(impl: Impl) -> None:
    async def scenario(store: TelemetryStore) -> None:
        assert isinstance(store, TelemetryStore)

    run(impl, scenario)


def test_round_trip_is_exact(impl: Impl) -> None:
    rng = np.random.default_rng(1)
    batch = random_batch(rng, SIGNALS, 3000)
    special = [0.0, -0.0, 1e-300, -1e300, np.pi, 0.1, np.inf, -np.inf, np.nan, 5e-324]
    value = batch.value.copy()
    value[: len(special)] = special
    batch = SampleBatch(batch.names, batch.index, batch.ts, value, batch.quality)

    async def scenario(store: TelemetryStore) -> SampleBatch:
        result = await store.append("acme", batch)
        assert (result.written, result.duplicates) == (len(batch), 0)
        return await store.read("acme", SIGNALS, T0, T0 + 3600 * S)

    got = run(impl, scenario)
    assert got.names == tuple(SIGNALS)
    order = np.lexsort((batch.ts, batch.index))
    np.testing.assert_array_equal(got.index, batch.index[order])
    np.testing.assert_array_equal(got.ts, batch.ts[order])
    np.testing.assert_array_equal(got.quality, batch.quality[order])
    # Bit-exact values (NaN, signed zero and subnormals included).
    np.testing.assert_array_equal(got.value.view(np.int64), batch.value[order].view(np.int64))
    assert got.index.dtype == np.int32
    assert got.ts.dtype == np.int64
    assert got.value.dtype == np.float64
    assert got.quality.dtype == np.uint8


def test_read_range_is_half_open_and_filters_signals(impl: Impl) -> None:
    data = [(SIGNALS[k % 3], T0 + k * S, float(k), 0) for k in range(30)]

    async def scenario(store: TelemetryStore) -> None:
        await store.append("acme", batch_of(data))
        wanted = [SIGNALS[2], "acme/unknown", SIGNALS[0], SIGNALS[2]]
        got = await store.read("acme", wanted, T0 + 3 * S, T0 + 12 * S)
        assert got.names == (SIGNALS[2], "acme/unknown", SIGNALS[0])
        assert rows(got) == expected_read(data, wanted, T0 + 3 * S, T0 + 12 * S)
        assert got.ts[0] == T0 + 5 * S
        assert got.ts[-1] == T0 + 9 * S
        assert len(await store.read("acme", [], T0, T0 + 100 * S)) == 0
        assert len(await store.read("acme", ["nope"], T0, T0 + 100 * S)) == 0

    run(impl, scenario)


def test_out_of_order_append_reads_ordered(impl: Impl) -> None:
    rng = np.random.default_rng(2)
    batches = [
        random_batch(rng, SIGNALS, 500, t0=T0 + k * 600 * S, span=1200 * S) for k in (3, 0, 2, 1)
    ]
    data: list[tuple[str, int, float, int]] = []
    for b in batches:
        data.extend(rows(b))

    async def scenario(store: TelemetryStore) -> None:
        total = 0
        for b in batches:
            r = await store.append("acme", b)
            total += r.written
        expected = expected_read(data, SIGNALS, T0, T0 + 10_000 * S)
        assert total == len(expected)
        got = await store.read("acme", SIGNALS, T0, T0 + 10_000 * S)
        assert rows(got) == expected
        got = await store.read("acme", SIGNALS[::-1], T0 + 700 * S, T0 + 1900 * S)
        assert rows(got) == expected_read(data, SIGNALS[::-1], T0 + 700 * S, T0 + 1900 * S)

    run(impl, scenario)


def test_duplicates_in_batch_first_write_wins(impl: Impl) -> None:
    a, b = SIGNALS[:2]
    data = [(a, T0, 1.0, 0), (b, T0, 2.0, 0), (a, T0, 3.0, 1), (a, T0 + S, 4.0, 0), (a, T0, 5.0, 2)]

    async def scenario(store: TelemetryStore) -> None:
        r = await store.append("acme", batch_of(data))
        assert (r.written, r.duplicates) == (3, 2)
        got = await store.read("acme", [a, b], T0, T0 + 10 * S)
        assert rows(got) == [(a, T0, 1.0, 0), (a, T0 + S, 4.0, 0), (b, T0, 2.0, 0)]

    run(impl, scenario)


def test_duplicates_across_batches_first_write_wins(impl: Impl) -> None:
    a, b = SIGNALS[:2]
    first = [(a, T0 + k * S, float(k), 0) for k in range(0, 10, 2)]  # even seconds 0..8
    second = [
        (a, T0 + 4 * S, -1.0, 1),  # duplicate, below the high-water mark
        (a, T0 + 8 * S, -1.0, 1),  # duplicate, at the high-water mark
        (a, T0 + 3 * S, 3.0, 0),  # new, below the high-water mark (gap fill)
        (a, T0 + 9 * S, 9.0, 0),  # new, above
        (a, T0 + 9 * S, -9.0, 0),  # in-batch duplicate of the previous one
        (b, T0 + 4 * S, 40.0, 0),  # same ts, other signal: not a duplicate
    ]

    async def scenario(store: TelemetryStore) -> None:
        r = await store.append("acme", batch_of(first))
        assert (r.written, r.duplicates) == (5, 0)
        r = await store.append("acme", batch_of(second))
        assert (r.written, r.duplicates) == (3, 3)
        r = await store.append("acme", batch_of(first + second))
        assert (r.written, r.duplicates) == (0, 11)
        got = await store.read("acme", [a, b], T0, T0 + 10 * S)
        assert rows(got) == expected_read(first + second, [a, b], T0, T0 + 10 * S)
        last = await store.last_values("acme", [a])
        assert (last[a].ts, last[a].value) == (T0 + 9 * S, 9.0)

    run(impl, scenario)


def test_empty_append(impl: Impl) -> None:
    async def scenario(store: TelemetryStore) -> None:
        r = await store.append("acme", SampleBatch.empty())
        assert (r.written, r.duplicates) == (0, 0)
        assert await store.append_states("acme", StateBatch.empty()) == 0
        assert await store.append_parts("acme", PartBatch.empty()) == 0
        assert await store.last_values("acme") == {}

    run(impl, scenario)


def test_concurrent_appends_are_all_applied(impl: Impl) -> None:
    rng = np.random.default_rng(3)
    batches = [random_batch(rng, SIGNALS, 200, t0=T0 + k * 10_000 * S) for k in range(8)]

    async def scenario(store: TelemetryStore) -> None:
        results = await asyncio.gather(*(store.append("acme", b) for b in batches))
        assert sum(r.written for r in results) == 1600
        got = await store.read("acme", SIGNALS, T0, T0 + 100_000 * S)
        assert len(got) == 1600
        assert rows(got) == expected_read(
            [r for b in batches for r in rows(b)], SIGNALS, T0, T0 + 100_000 * S
        )

    run(impl, scenario)


def test_reads_complete_while_writes_are_in_progress(impl: Impl) -> None:
    """Reads do not wait for the writes queued before them (issue 17: board p99 of 12.9 s with
    every read behind the ingest writes), and each read sees every batch whole or not at all.

    Overlap is proven by order, not by timing: every read below is issued after all writes
    were queued, and once the writer has begun (the first write is done), so a store that
    serialises reads behind writes answers none of them before the last write is done."""
    names = [f"acme/s1/a1/l1/m1/s{i}" for i in range(100)]
    size, writes = 50_000, 8
    per_signal = size // len(names)

    def big(k: int) -> SampleBatch:
        """``size`` samples, ``per_signal`` for each signal, in a time slot of their own."""
        r = np.arange(size, dtype=np.int64)
        index = (r % len(names)).astype(np.int32)
        ts = T0 + k * size * S + (r // len(names)) * S
        return SampleBatch(
            tuple(names), index, ts, np.full(size, float(k)), np.zeros(size, np.uint8)
        )

    async def scenario(store: TelemetryStore) -> None:
        await store.append("acme", big(0))
        events: list[str] = []

        async def write(k: int) -> None:
            await store.append("acme", big(k))
            events.append(f"write {k}")

        tasks = [asyncio.create_task(write(k)) for k in range(1, writes + 1)]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        while not all(t.done() for t in tasks):
            got = await store.read("acme", names[:2], T0, T0 + (writes + 1) * size * S)
            last = await store.last_values("acme", names[:1])
            events.append(f"read {len(got)}")
            # whole batches only (MVCC snapshot), and never less than the first two
            assert len(got) % (2 * per_signal) == 0 and len(got) >= 4 * per_signal
            assert set(np.unique(got.value)) == set(range(len(got) // (2 * per_signal)))
            assert last[names[0]].value <= writes
        await asyncio.gather(*tasks)
        done_at = events.index(f"write {writes}") if f"write {writes}" in events else -1
        during = [e for e in events[: max(done_at, 0)] if e.startswith("read")]
        assert during, f"no read completed before the last write: {events}"
        final = await store.read("acme", names, T0, T0 + (writes + 1) * size * S)
        assert len(final) == (writes + 1) * size

    run(impl, scenario)


# --- last values ---------------------------------------------------------------------------------


def test_last_values_is_greatest_ts_not_last_written(impl: Impl) -> None:
    a, b, c = SIGNALS

    async def scenario(store: TelemetryStore) -> None:
        await store.append("acme", batch_of([(a, T0 + 10 * S, 1.0, 0), (b, T0, 2.0, 1)]))
        await store.append("acme", batch_of([(a, T0 + 5 * S, 99.0, 0)]))  # late sample
        await store.append("acme", batch_of([(b, T0 + S, 3.0, 2), (b, T0 - S, 0.5, 0)]))
        last = await store.last_values("acme")
        assert set(last) == {a, b}
        assert (last[a].ts, last[a].value, last[a].quality) == (T0 + 10 * S, 1.0, 0)
        assert (last[b].ts, last[b].value, last[b].quality) == (T0 + S, 3.0, int(Quality.BAD))
        only = await store.last_values("acme", [a, c, "acme/unknown"])
        assert set(only) == {a}
        # A duplicate at the newest ts does not change the last value either.
        await store.append("acme", batch_of([(a, T0 + 10 * S, -5.0, 0)]))
        assert (await store.last_values("acme", [a]))[a].value == 1.0
        assert await store.last_values("acme", []) == {}

    run(impl, scenario)


def test_last_values_many_signals_in_one_batch(impl: Impl) -> None:
    rng = np.random.default_rng(4)
    names = [f"acme/s/a/l/m{i}/x" for i in range(300)]
    batch = random_batch(rng, names, 6000)

    async def scenario(store: TelemetryStore) -> None:
        await store.append("acme", batch)
        last = await store.last_values("acme")
        assert set(last) == set(names)
        for i, name in enumerate(names):
            mask = batch.index == i
            k = int(np.argmax(np.where(mask, batch.ts, np.iinfo(np.int64).min)))
            assert last[name].ts == batch.ts[k]
            assert last[name].value == batch.value[k]
            assert last[name].quality == batch.quality[k]

    run(impl, scenario)


# --- aggregates ----------------------------------------------------------------------------------


def reference_aggregates(
    batch: SampleBatch, signals: list[str], start: int, end: int, width: int
) -> list[tuple[str, int, float, float, float, float, int]]:
    """NumPy reference over a duplicate-free batch."""
    out = []
    for sig in dict.fromkeys(signals):
        if sig not in batch.names:
            continue
        code = batch.names.index(sig)
        m = (
            (batch.index == code)
            & (batch.ts >= start)
            & (batch.ts < end)
            & (batch.quality != Quality.BAD)
        )
        ts, v = batch.ts[m], batch.value[m]
        k = (ts - start) // width
        for b in np.unique(k):
            sel = k == b
            tb, vb = ts[sel], v[sel]
            out.append(
                (
                    sig,
                    int(start + b * width),
                    float(vb.min()),
                    float(vb.max()),
                    float(vb.mean()),
                    float(vb[np.argmax(tb)]),
                    int(sel.sum()),
                )
            )
    return out


def assert_aggregates_equal(
    got: list[tuple[str, int, float, float, float, float, int]],
    want: list[tuple[str, int, float, float, float, float, int]],
) -> None:
    assert [(g[0], g[1], g[2], g[3], g[5], g[6]) for g in got] == [
        (w[0], w[1], w[2], w[3], w[5], w[6]) for w in want
    ]
    np.testing.assert_allclose([g[4] for g in got], [w[4] for w in want], rtol=1e-9, atol=1e-9)


def test_aggregates_match_numpy(impl: Impl) -> None:
    rng = np.random.default_rng(5)
    batch = random_batch(rng, SIGNALS, 20_000, span=24 * 3600 * S)
    start, end, width = T0 + 1234 * S, T0 + 20 * 3600 * S + 17, 600 * S

    async def scenario(store: TelemetryStore) -> Aggregates:
        await store.append("acme", batch)
        return await store.aggregate("acme", [SIGNALS[1], SIGNALS[0]], start, end, width)

    got = run(impl, scenario)
    assert got.names == (SIGNALS[1], SIGNALS[0])
    assert got.index.dtype == np.int32
    assert got.bucket.dtype == np.int64
    assert got.count.dtype == np.int64
    assert got.mean.dtype == np.float64
    want = reference_aggregates(batch, [SIGNALS[1], SIGNALS[0]], start, end, width)
    assert_aggregates_equal(agg_rows(got), want)
    assert len(got) == len(want) > 100


def test_aggregates_exclude_bad_quality_and_empty_buckets(impl: Impl) -> None:
    a = SIGNALS[0]
    data = [
        (a, T0, 1.0, 0),
        (a, T0 + 1, 100.0, int(Quality.BAD)),
        (a, T0 + 2, 3.0, int(Quality.UNCERTAIN)),
        (a, T0 + 25, 7.0, int(Quality.BAD)),  # only bad in its bucket: no bucket
        (a, T0 + 40, 5.0, 0),
    ]

    async def scenario(store: TelemetryStore) -> None:
        await store.append("acme", batch_of(data))
        got = await store.aggregate("acme", [a], T0, T0 + 60, 10)
        assert agg_rows(got) == [
            (a, T0, 1.0, 3.0, 2.0, 3.0, 2),
            (a, T0 + 40, 5.0, 5.0, 5.0, 5.0, 1),
        ]
        # Bad samples are still stored and read back.
        assert len(await store.read("acme", [a], T0, T0 + 60)) == 5
        assert len(await store.aggregate("acme", ["acme/unknown"], T0, T0 + 60, 10)) == 0

    run(impl, scenario)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    samples=st.lists(
        st.tuples(
            st.integers(0, 2),
            st.integers(-500, 500),
            st.floats(-1e6, 1e6, allow_nan=False),
            st.sampled_from([0, 0, 0, 1, 2]),
        ),
        max_size=120,
    ),
    start=st.integers(-600, 400),
    length=st.integers(1, 1200),
    width=st.integers(1, 300),
)
def test_aggregates_property(
    impl: Impl,
    samples: list[tuple[int, int, float, int]],
    start: int,
    length: int,
    width: int,
) -> None:
    data = [(SIGNALS[s], T0 + t, v, q) for s, t, v, q in samples]
    first: dict[tuple[str, int], tuple[str, int, float, int]] = {}
    for r in data:
        first.setdefault((r[0], r[1]), r)
    unique = list(first.values())

    async def scenario(store: TelemetryStore) -> Aggregates:
        if data:
            r = await store.append("acme", batch_of(data))
            assert (r.written, r.duplicates) == (len(unique), len(data) - len(unique))
        return await store.aggregate("acme", SIGNALS, T0 + start, T0 + start + length, width)

    got = run(impl, scenario)
    want = (
        reference_aggregates(batch_of(unique), SIGNALS, T0 + start, T0 + start + length, width)
        if unique
        else []
    )
    assert_aggregates_equal(agg_rows(got), want)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    batches=st.lists(
        st.lists(
            st.tuples(st.integers(0, 2), st.integers(0, 40), st.floats(-10, 10, allow_nan=False)),
            max_size=30,
        ),
        min_size=1,
        max_size=4,
    )
)
def test_append_read_last_property(impl: Impl, batches: list[list[tuple[int, int, float]]]) -> None:
    written = [[(SIGNALS[s], T0 + t, v, 0) for s, t, v in b] for b in batches]
    everything = [r for b in written for r in b]

    async def scenario(store: TelemetryStore) -> None:
        seen: set[tuple[str, int]] = set()
        for b in written:
            if not b:
                continue
            new = {(r[0], r[1]) for r in b} - seen
            r = await store.append("acme", batch_of(b))
            assert (r.written, r.duplicates) == (len(new), len(b) - len(new))
            seen |= new
        expected = expected_read(everything, SIGNALS, T0, T0 + 41)
        assert rows(await store.read("acme", SIGNALS, T0, T0 + 41)) == expected
        last = await store.last_values("acme")
        want = {}
        for sig, ts, v, _ in expected:
            want[sig] = (ts, v)  # expected is ordered by ts within signal
        assert {k: (x.ts, x.value) for k, x in last.items()} == want

    run(impl, scenario)


# --- tenants -------------------------------------------------------------------------------------


def test_tenants_never_see_each_other(impl: Impl) -> None:
    sig, machine = SIGNALS[0], "acme/s1/a1/l1/m1"

    def samples(v: float) -> SampleBatch:
        return batch_of([(sig, T0, v, 0), (sig, T0 + S, v + 1, 0)])

    def states(state: int) -> StateBatch:
        return StateBatch.build([machine], [0], [T0], [T0 + 10 * S], [state], [f"r{state}"])

    def parts(good: int) -> PartBatch:
        return PartBatch.build([machine], [0], [T0 + S], [f"p{good}"], [good], [0])

    async def scenario(store: TelemetryStore) -> None:
        # The same signal path and timestamps in both tenants: not duplicates of each other.
        assert (await store.append("alpha", samples(1.0))).written == 2
        assert (await store.append("beta", samples(10.0))).written == 2
        await store.append_states("alpha", states(0))
        await store.append_states("beta", states(3))
        await store.append_parts("alpha", parts(1))
        await store.append_parts("beta", parts(7))

        for tenant, v, state, good in (("alpha", 1.0, 0, 1), ("beta", 10.0, 3, 7)):
            got = await store.read(tenant, [sig], T0, T0 + 60 * S)
            assert rows(got) == [(sig, T0, v, 0), (sig, T0 + S, v + 1, 0)]
            agg = await store.aggregate(tenant, [sig], T0, T0 + 60 * S, 60 * S)
            assert agg_rows(agg) == [(sig, T0, v, v + 1, v + 0.5, v + 1, 2)]
            assert (await store.last_values(tenant))[sig].value == v + 1
            for machines in (None, [machine]):
                got_states = await store.read_states(tenant, machines, T0, T0 + 60 * S)
                assert state_rows(got_states) == [(machine, T0, T0 + 10 * S, state, f"r{state}")]
                got_parts = await store.read_parts(tenant, machines, T0, T0 + 60 * S)
                assert part_rows(got_parts) == [(machine, T0 + S, f"p{good}", good, 0)]

        # An unknown tenant sees nothing at all.
        assert len(await store.read("gamma", [sig], T0, T0 + 60 * S)) == 0
        assert len(await store.aggregate("gamma", [sig], T0, T0 + 60 * S, S)) == 0
        assert await store.last_values("gamma") == {}
        assert len(await store.read_states("gamma", None, T0, T0 + 60 * S)) == 0
        assert len(await store.read_parts("gamma", None, T0, T0 + 60 * S)) == 0

        # Retention scoped to one tenant leaves the other alone.
        assert await store.delete_before("alpha", T0 + 3600 * S) == 4
        assert await store.delete_before("gamma", T0 + 3600 * S) == 0
        assert await store.last_values("alpha") == {}
        assert len(await store.read("beta", [sig], T0, T0 + 60 * S)) == 2
        assert len(await store.read_states("beta", None, T0, T0 + 60 * S)) == 1
        assert len(await store.read_parts("beta", None, T0, T0 + 60 * S)) == 1

    run(impl, scenario)


# --- states and parts ----------------------------------------------------------------------------


def test_states_overlapping_range_are_clipped(impl: Impl) -> None:
    m1, m2, m3 = "acme/l/m1", "acme/l/m2", "acme/l/m3"
    lo, hi = T0 + 100, T0 + 200
    batch = StateBatch.build(
        [m2, m1, m3],
        [1, 1, 1, 1, 1, 0, 0, 2],
        # m1: before (touching), crossing lo, inside, crossing hi, after (touching) range
        # m2: covering the whole range, then a zero-length interval inside; m3: none inside
        [T0 + 50, T0 + 90, T0 + 120, T0 + 180, T0 + 200, T0, T0 + 150, T0 + 300],
        [T0 + 100, T0 + 120, T0 + 180, T0 + 260, T0 + 220, T0 + 1000, T0 + 150, T0 + 400],
        [0, 1, 2, 3, 4, 0, 5, 0],
        ["", "", "jam", "", "", "", "", ""],
    )

    async def scenario(store: TelemetryStore) -> None:
        assert await store.append_states("acme", batch) == 8
        got = await store.read_states("acme", None, lo, hi)
        assert got.names == (m1, m2)
        assert state_rows(got) == [
            (m1, lo, T0 + 120, 1, ""),
            (m1, T0 + 120, T0 + 180, 2, "jam"),
            (m1, T0 + 180, hi, 3, ""),
            (m2, lo, hi, 0, ""),
        ]
        got = await store.read_states("acme", [m2, m3, m1], lo, hi)
        assert got.names == (m2, m3, m1)
        assert state_rows(got) == [
            (m2, lo, hi, 0, ""),
            (m1, lo, T0 + 120, 1, ""),
            (m1, T0 + 120, T0 + 180, 2, "jam"),
            (m1, T0 + 180, hi, 3, ""),
        ]
        assert state_rows(await store.read_states("acme", [m3], T0 + 350, T0 + 351)) == [
            (m3, T0 + 350, T0 + 351, 0, "")
        ]
        assert len(await store.read_states("acme", [], lo, hi)) == 0
        assert len(await store.read_states("acme", ["acme/unknown"], lo, hi)) == 0

    run(impl, scenario)


def test_open_states_keep_the_latest_confirmation_per_machine(impl: Impl) -> None:
    """Open states are one row per machine, replaced by a later confirmation (not an older
    one), kept apart from the closed history, tenant-scoped and removed by retention once
    confirmed before the cutoff."""
    m1, m2 = "acme/l/m1", "acme/l/m2"

    async def scenario(store: TelemetryStore) -> None:
        first = StateBatch.build(
            [m1, m2],
            [0, 0, 1],
            [T0, T0, T0 + 5 * S],
            [T0 + 10 * S, T0 + 20 * S, T0 + 30 * S],
            [0, 0, 3],
            ["", "", "jam"],
        )
        assert await store.put_open_states("acme", first) == 2
        got = await store.open_states("acme", [m1, m2])
        assert state_rows(got) == [
            (m1, T0, T0 + 20 * S, 0, ""),
            (m2, T0 + 5 * S, T0 + 30 * S, 3, "jam"),
        ]
        older = StateBatch.build([m1], [0], [T0], [T0 + 15 * S], [1])
        await store.put_open_states("acme", older)  # an older confirmation never wins
        newer = StateBatch.build([m1], [0], [T0 + 20 * S], [T0 + 40 * S], [3], ["x"])
        await store.put_open_states("acme", newer)
        assert state_rows(await store.open_states("acme", None)) == [
            (m1, T0 + 20 * S, T0 + 40 * S, 3, "x"),
            (m2, T0 + 5 * S, T0 + 30 * S, 3, "jam"),
        ]
        assert len(await store.read_states("acme", None, T0, T0 + 100 * S)) == 0
        assert len(await store.open_states("other", None)) == 0
        assert len(await store.open_states("acme", [])) == 0
        await store.delete_before("acme", T0 + 35 * S)
        assert [r[0] for r in state_rows(await store.open_states("acme", None))] == [m1]

    run(impl, scenario)


def test_parts_range_is_half_open(impl: Impl) -> None:
    m1, m2 = "acme/l/m1", "acme/l/m2"
    batch = PartBatch.build(
        [m1, m2],
        [0, 1, 0, 1, 0, 0],
        [T0 + 30, T0 + 10, T0 + 10, T0 + 20, T0 + 19, T0 + 5],
        ["gear", "gear", "shaft", "", "gear", "gear"],
        [1, 2, 3, 4, 5, 6],
        [0, 1, 0, 0, 2, 0],
    )

    async def scenario(store: TelemetryStore) -> None:
        assert await store.append_parts("acme", batch) == 6
        got = await store.read_parts("acme", None, T0 + 10, T0 + 30)
        assert got.names == (m1, m2)
        assert part_rows(got) == [
            (m1, T0 + 10, "shaft", 3, 0),
            (m1, T0 + 19, "gear", 5, 2),
            (m2, T0 + 10, "gear", 2, 1),
            (m2, T0 + 20, "", 4, 0),
        ]
        got = await store.read_parts("acme", [m2], T0, T0 + 100)
        assert part_rows(got) == [(m2, T0 + 10, "gear", 2, 1), (m2, T0 + 20, "", 4, 0)]
        assert got.good.dtype == np.int32
        assert got.ts.dtype == np.int64

    run(impl, scenario)


# --- retention -----------------------------------------------------------------------------------


def test_retention_deletes_older_rows_everywhere(impl: Impl) -> None:
    a, b = SIGNALS[:2]
    m = "acme/l/m1"
    cutoff = T0 + 100

    async def scenario(store: TelemetryStore) -> None:
        await store.append(
            "acme",
            batch_of([(a, T0 + 50, 1.0, 0), (a, T0 + 100, 2.0, 0), (a, T0 + 150, 3.0, 0),
                      (b, T0 + 10, 4.0, 0), (b, T0 + 99, 5.0, 0)]),
        )  # fmt: skip
        await store.append_states(
            "acme",
            StateBatch.build([m], [0, 0, 0], [T0, T0 + 90, T0 + 100], [T0 + 90, T0 + 100, T0 + 200],
                             [0, 1, 2]),
        )  # fmt: skip
        await store.append_parts(
            "acme", PartBatch.build([m], [0, 0], [T0 + 99, T0 + 100], ["x", "x"], [1, 1], [0, 0])
        )
        # samples a@50, b@10, b@99; states ending at 90 and 100; part at 99
        assert await store.delete_before(None, cutoff) == 3 + 2 + 1
        assert await store.delete_before(None, cutoff) == 0
        got = await store.read("acme", [a, b], T0, T0 + 1000)
        assert rows(got) == [(a, T0 + 100, 2.0, 0), (a, T0 + 150, 3.0, 0)]
        assert state_rows(await store.read_states("acme", None, T0, T0 + 1000)) == [
            (m, T0 + 100, T0 + 200, 2, "")
        ]
        assert part_rows(await store.read_parts("acme", None, T0, T0 + 1000)) == [
            (m, T0 + 100, "x", 1, 0)
        ]
        last = await store.last_values("acme")
        assert set(last) == {a}
        assert last[a].ts == T0 + 150
        # b has no samples left: an old sample is new again, and becomes its last value.
        r = await store.append("acme", batch_of([(b, T0 + 10, 6.0, 0), (a, T0 + 50, 7.0, 0)]))
        assert (r.written, r.duplicates) == (2, 0)
        assert (await store.last_values("acme"))[b].value == 6.0
        assert (await store.last_values("acme"))[a].value == 3.0

    run(impl, scenario)


# --- persistence ---------------------------------------------------------------------------------


def test_close_and_reopen_keeps_everything(impl: Impl) -> None:
    if not impl.persistent:
        pytest.skip(f"{impl.name} does not persist")
    rng = np.random.default_rng(6)
    batch = random_batch(rng, SIGNALS, 2000)
    states = StateBatch.build(["m"], [0], [T0], [T0 + S], [3], ["jam"])
    parts = PartBatch.build(["m"], [0], [T0], ["gear"], [5], [1])

    async def first(store: TelemetryStore) -> tuple[SampleBatch, dict[str, Any]]:
        await store.append("acme", batch)
        await store.append("beta", batch.take(np.arange(10)))
        await store.append_states("acme", states)
        await store.append_parts("acme", parts)
        return await store.read("acme", SIGNALS, T0, T0 + 3600 * S), dict(
            await store.last_values("acme")
        )

    async def second(store: TelemetryStore) -> None:
        got = await store.read("acme", SIGNALS, T0, T0 + 3600 * S)
        assert rows(got) == rows(before)
        assert await store.last_values("acme") == last_before
        # High-water marks survive: old and newest samples are still duplicates.
        r = await store.append("acme", batch)
        assert (r.written, r.duplicates) == (0, len(batch))
        r = await store.append("beta", batch.take(np.arange(20)))
        assert (r.written, r.duplicates) == (10, 10)
        # New signals and tenants get fresh ids that do not collide with the stored ones.
        r = await store.append("gamma", batch_of([("new/sig", T0, 1.0, 0)]))
        assert r.written == 1
        assert rows(await store.read("gamma", ["new/sig", SIGNALS[0]], T0, T0 + 1)) == [
            ("new/sig", T0, 1.0, 0)
        ]
        assert state_rows(await store.read_states("acme", None, T0, T0 + S)) == [
            ("m", T0, T0 + S, 3, "jam")
        ]
        assert part_rows(await store.read_parts("acme", None, T0, T0 + S)) == [
            ("m", T0, "gear", 5, 1)
        ]

    before, last_before = run(impl, first, key="persist")
    run(impl, second, key="persist")


# --- invalid arguments ---------------------------------------------------------------------------


def test_invalid_arguments_raise_value_error(impl: Impl) -> None:
    a = SIGNALS[0]

    async def scenario(store: TelemetryStore) -> None:
        await store.append("acme", batch_of([(a, T0, 1.0, 0)]))
        tenant, rng, bucket = "tenant", "start|end|range", "bucket"
        calls: list[tuple[Callable[[], Awaitable[Any]], str]] = [
            (lambda: store.append("", batch_of([(a, T0, 1.0, 0)])), tenant),
            (lambda: store.read("", [a], T0, T0 + 1), tenant),
            (lambda: store.read("acme", [a], T0, T0), rng),
            (lambda: store.read("acme", [a], T0 + 1, T0), rng),
            (lambda: store.read("acme", a, T0, T0 + 1), "signals"),
            (lambda: store.aggregate("acme", [a], T0, T0 + 10, 0), bucket),
            (lambda: store.aggregate("acme", [a], T0, T0 + 10, -5), bucket),
            (lambda: store.aggregate("acme", [a], T0 + 10, T0, 5), rng),
            (lambda: store.last_values(""), tenant),
            (lambda: store.append_states("", StateBatch.empty()), tenant),
            (lambda: store.read_states("acme", None, T0, T0), rng),
            (lambda: store.append_parts("", PartBatch.empty()), tenant),
            (lambda: store.read_parts("acme", None, T0 + 1, T0), rng),
            (lambda: store.delete_before("", T0), tenant),
        ]
        for call, match in calls:
            with pytest.raises(ValueError, match=match):
                await call()
        # Nothing was changed by the failed calls.
        assert len(await store.read("acme", [a], T0, T0 + 1)) == 1

    run(impl, scenario)


# --- DuckDB specifics ----------------------------------------------------------------------------


def test_open_store_urls(tmp_path: Path) -> None:
    async def scenario() -> None:
        for target in (None, ":memory:", "duckdb://:memory:", "duckdb://", tmp_path / "x/a.db",
                       f"duckdb://{tmp_path}/y/b.db", str(tmp_path / "c.duckdb")):  # fmt: skip
            store = open_store(target)
            assert isinstance(store, DuckDBStore)
            await store.append("acme", batch_of([(SIGNALS[0], T0, 1.0, 0)]))
            await store.close()
            await store.close()  # idempotent
            with pytest.raises(RuntimeError):
                await store.last_values("acme")
        assert (tmp_path / "x/a.db").exists()
        assert (tmp_path / "y/b.db").exists()
        with pytest.raises(ValueError, match="unsupported"):
            open_store("mongodb://localhost")

    asyncio.run(scenario())


def test_duckdb_rejects_unknown_quality() -> None:
    async def scenario() -> None:
        async with DuckDBStore.open() as store:
            with pytest.raises(ValueError, match="quality"):
                await store.append("acme", batch_of([(SIGNALS[0], T0, 1.0, 7)]))

    asyncio.run(scenario())


def test_duckdb_close_waits_for_reads_in_flight(tmp_path: Path) -> None:
    """Closing a store answers the reads already issued (on the reader threads) before it
    closes their cursors, then the data is on disk; a read after close fails clearly."""
    path = tmp_path / "closing.duckdb"
    data = [(SIGNALS[i % 3], T0 + i * S, float(i), 0) for i in range(3000)]

    async def scenario() -> None:
        store = DuckDBStore.open(path, read_threads=2)
        await store.append("acme", batch_of(data))
        # tasks start in creation order: the six reads reach the reader threads before close
        reads = [
            asyncio.create_task(store.read("acme", SIGNALS, T0, T0 + 4000 * S)) for _ in range(6)
        ]
        await asyncio.create_task(store.close())
        assert [len(await r) for r in reads] == [3000] * 6
        with pytest.raises(RuntimeError, match="closed"):
            await store.read("acme", SIGNALS, T0, T0 + S)
        async with DuckDBStore.open(path) as again:
            assert len(await again.read("acme", SIGNALS, T0, T0 + 4000 * S)) == 3000

    asyncio.run(scenario())


def test_duckdb_read_threads_must_be_a_count() -> None:
    for bad in (-1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="read_threads"):
            DuckDBStore.open(None, read_threads=bad)  # type: ignore[arg-type]


# --- text values (decision 0202) ---------------------------------------------------------------

TEXT_SIGNALS = ["acme/s1/a1/l1/m1/execution", "acme/s1/a1/l1/m1/program"]


def text_rows(b: TextBatch) -> list[tuple[str, int, str, int, float | None]]:
    return [
        (b.names[int(i)], int(t), v, int(q), None if np.isnan(c) else float(c))
        for i, t, v, q, c in zip(b.index, b.ts, b.value, b.quality, b.code, strict=True)
    ]


def test_text_values_round_trip_exactly_and_in_order(impl: Impl) -> None:
    odd = ["ACTIVE", "", "O1234 (ROUGH) — Ø12 ✓", "a\x00b", "x" * 5000, "READY"]
    batch = TextBatch.build(
        TEXT_SIGNALS,
        [1, 0, 1, 0, 1, 0],
        [T0 + 5 * S, T0 + 2 * S, T0 + 1 * S, T0 + 1 * S, T0 + 3 * S, T0 + 9 * S],
        odd,
        [0, 0, 1, 2, 0, 0],
        [3, np.nan, np.nan, np.nan, np.nan, 2],
    )

    async def scenario(store: TelemetryStore) -> TextBatch:
        result = await store.append_text("acme", batch)
        assert (result.written, result.duplicates, result.conflicts) == (6, 0, 0)
        return await store.read_text(
            "acme", [TEXT_SIGNALS[0], "acme/none", TEXT_SIGNALS[1]], T0, T0 + 9 * S
        )

    got = run(impl, scenario)
    assert got.names == (TEXT_SIGNALS[0], "acme/none", TEXT_SIGNALS[1])
    assert text_rows(got) == [
        (TEXT_SIGNALS[0], T0 + 1 * S, "a\x00b", 2, None),
        (TEXT_SIGNALS[0], T0 + 2 * S, "", 0, None),
        (TEXT_SIGNALS[1], T0 + 1 * S, "O1234 (ROUGH) — Ø12 ✓", 1, None),
        (TEXT_SIGNALS[1], T0 + 3 * S, "x" * 5000, 0, None),
        (TEXT_SIGNALS[1], T0 + 5 * S, "ACTIVE", 0, 3.0),
    ]  # [start, end): the READY at T0 + 9 s is outside


def test_text_first_write_wins_and_conflicts_are_counted(impl: Impl) -> None:
    sig = TEXT_SIGNALS[0]
    first = TextBatch.build([sig], [0, 0, 0], [T0, T0 + S, T0 + S], ["READY", "ACTIVE", "STOP"])
    again = TextBatch.build([sig], [0, 0, 0], [T0, T0 + S, T0 + 2 * S], ["READY", "X", "ACTIVE"])

    async def scenario(store: TelemetryStore) -> TextBatch:
        r1 = await store.append_text("acme", first)
        assert (r1.written, r1.duplicates, r1.conflicts) == (2, 1, 1)  # in-batch STOP
        r2 = await store.append_text("acme", again)
        assert (r2.written, r2.duplicates, r2.conflicts) == (1, 2, 1)  # stored ACTIVE vs X
        assert len(await store.read_text("other", [sig], T0, T0 + 10 * S)) == 0
        return await store.read_text("acme", [sig], T0, T0 + 10 * S)

    got = run(impl, scenario)
    assert got.value == ("READY", "ACTIVE", "ACTIVE")
    assert got.ts.tolist() == [T0, T0 + S, T0 + 2 * S]


def test_text_values_persist_and_retention_deletes_them(impl: Impl) -> None:
    sig = TEXT_SIGNALS[1]
    batch = TextBatch.build([sig], [0, 0], [T0, T0 + 10 * S], ["P1", "P2"])

    async def write(store: TelemetryStore) -> None:
        await store.append_text("acme", batch)
        await store.append("acme", SampleBatch.build([sig], [0], [T0], [1.0]))

    async def reopen(store: TelemetryStore) -> TextBatch:
        r = await store.append_text("acme", batch)
        assert (r.written, r.duplicates) == ((0, 2) if impl.persistent else (2, 0))
        await store.delete_before("acme", T0 + 5 * S)
        return await store.read_text("acme", [sig], T0, T0 + 20 * S)

    run(impl, write, key="text-persist")
    got = run(impl, reopen, key="text-persist")
    assert got.value == ("P2",)

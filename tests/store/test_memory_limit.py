"""A file store's DuckDB memory is bounded (issue 17: the demo's memory grew about 3 MB a
minute): with DuckDB's own default (80 % of RAM) its buffer pool keeps every block of the
file it wrote, so what it holds grows with the file; with the store's ``memory_limit`` it
stays under the limit however large the file grows."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from andon.model.types import SampleBatch
from andon.store import open_store
from andon.store.duckdb_store import DEFAULT_MEMORY_LIMIT, DuckDBStore

NAMES = tuple(f"s/a/l/m{i % 7}/x{i}" for i in range(50))
BATCH = 400_000
BATCHES = 10  # 4 M points: about 45 MB of file


async def _fill(store: DuckDBStore) -> int:
    """Append BATCHES batches of random values (they compress badly, as measurements do);
    the most memory DuckDB held after any of them."""
    rng = np.random.default_rng(7)
    most = 0
    for b in range(BATCHES):
        k = np.arange(b * BATCH, (b + 1) * BATCH)
        batch = SampleBatch(
            NAMES,
            (k % len(NAMES)).astype(np.int32),
            (1_767_225_600_000_000 + k * 1_000).astype(np.int64),
            rng.normal(100.0, 10.0, BATCH),
            np.zeros(BATCH, dtype=np.uint8),
        )
        await store.append("t", batch)
        most = max(most, await store.memory_bytes())
    return most


def test_duckdb_memory_stays_under_the_store_limit(tmp_path: Path) -> None:
    async def go() -> None:
        limit = DuckDBStore.open(tmp_path / "limit.duckdb", memory_limit="16MB")
        try:
            bounded = await _fill(limit)
        finally:
            await limit.close()
        free = DuckDBStore.open(tmp_path / "free.duckdb", memory_limit=None)
        try:
            unbounded = await _fill(free)
        finally:
            await free.close()
        size = (tmp_path / "free.duckdb").stat().st_size
        # without a limit DuckDB holds about the whole file (here > 30 MB); with one, < 16 MB
        assert unbounded > 30e6 and size > 30e6, (unbounded, size)
        assert bounded <= 16 * 2**20, bounded
        # the data is all there either way
        again = DuckDBStore.open(tmp_path / "limit.duckdb", memory_limit="16MB")
        try:
            got = await again.read("t", list(NAMES[:1]), 0, 2**62)
            assert len(got) == BATCH * BATCHES // len(NAMES)
        finally:
            await again.close()

    asyncio.run(go())


def test_a_file_store_has_the_default_limit_and_memory_none(tmp_path: Path) -> None:
    async def go() -> None:
        store = DuckDBStore.open(tmp_path / "t.duckdb")
        mem = DuckDBStore.open(None)
        try:
            for s, want in ((store, DEFAULT_MEMORY_LIMIT), (mem, None)):

                def limit(s: DuckDBStore = s) -> str:
                    row = s._engine.con.execute("SELECT current_setting('memory_limit')")
                    return str(row.fetchone()[0])  # type: ignore[index]

                got = await s._run(limit)
                if want is None:  # DuckDB's default: 80 % of RAM, far above ours
                    assert not got.startswith(("244", "256")), got
                else:
                    assert got.startswith("244.1 MiB"), got  # 256 MB = 244.1 MiB
        finally:
            await store.close()
            await mem.close()

    asyncio.run(go())


def test_the_store_url_sets_the_limit_and_refuses_unknown_parameters(tmp_path: Path) -> None:
    async def go() -> None:
        store = open_store(f"duckdb://{tmp_path / 't.duckdb'}?memory_limit=32MB")
        assert isinstance(store, DuckDBStore)
        try:

            def limit() -> str:
                row = store._engine.con.execute("SELECT current_setting('memory_limit')")
                return str(row.fetchone()[0])  # type: ignore[index]

            assert (await store._run(limit)).startswith("30.5 MiB")  # 32 MB
        finally:
            await store.close()
        with pytest.raises(ValueError, match="unknown parameter 'cache' in store URL"):
            open_store(f"duckdb://{tmp_path / 'u.duckdb'}?cache=1")

    asyncio.run(go())

"""Read latency of ``DuckDBStore`` while writers ingest continuously (issue 17).

A file store is pre-loaded with ``--points`` samples of history (``--signals`` signals every
minute, as in ``store_ingest.py``) plus a state timeline per machine. Then, for ``--seconds``,
``--writers`` tasks each append ``--write-batch`` new points back to back (as many HTTPS edges
would through ingest), while ``--readers`` tasks run the board's reads in a loop: the states of
every machine over the last day, 1-minute buckets of 10 signals over the last day, and the last
value of every signal. Each read's latency (from the call to its answer, queueing included) is
recorded; the writers' throughput is recorded too.

Figures (one JSON object per line on stdout; progress on stderr), in ms unless noted:

* ``mixed_read.p50``, ``mixed_read.p99``, ``mixed_read.max``: over every read.
* ``mixed_<query>.p50`` and ``mixed_<query>.p99`` per query (``read_states_all_1_day``,
  ``aggregate_1min_10_signals_1_day``, ``last_values_all``).
* ``mixed_reads_per_s``: reads completed per second.
* ``mixed_write_points_per_s``: points appended per second while the readers ran.

Run: ``.venv/bin/python benchmarks/store_mixed.py [--seconds S] [--writers N] [--readers N]
[--read-threads N]``; ``--read-threads 0`` measures the store as it was before issue 17 (every
read queued behind the writes on one thread).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import numpy as np

from andon.model.types import US_PER_S, SampleBatch
from andon.store import DuckDBStore
from andon.store.duckdb_store import DEFAULT_READ_THREADS
from store_ingest import T0, emit, progress, sample_batches, signal_names
from store_query import state_batch

__all__ = ["main"]

DAY = 86_400 * US_PER_S
TENANT = "bench"


async def load(store: DuckDBStore, args: argparse.Namespace) -> int:
    """Fill the store with history; return the end of the covered range."""
    period = 60 * US_PER_S
    t1: int = T0 + -(-int(args.points) // int(args.signals)) * period
    with progress() as bar:
        task = bar.add_task("load history", total=args.points)
        for batch in sample_batches(args.points, args.signals, 500_000, period):
            await store.append(TENANT, batch)
            bar.advance(task, len(batch))
    machines = sorted({n.rsplit("/", 1)[0] for n in signal_names(args.signals)})
    await store.append_states(TENANT, state_batch(machines, T0, t1, 600.0))
    return t1


class LiveData:
    """New points after the history: each call takes the next ``batch`` points of a 1 s grid
    over every signal (cheap: only ``ts`` is computed per batch)."""

    def __init__(self, names: list[str], t1: int, batch: int) -> None:
        self.names = tuple(names)
        self.t1 = t1
        self.batch = batch
        self.next = 0
        rng = np.random.default_rng(3)
        r = np.arange(batch, dtype=np.int64)
        self.r = r
        self.value = rng.normal(50.0, 1.0, batch)
        self.quality = np.zeros(batch, dtype=np.uint8)

    def take(self) -> SampleBatch:
        r = self.next + self.r
        self.next += self.batch
        n = len(self.names)
        sig = (r % n).astype(np.int32)
        ts = self.t1 + (r // n) * US_PER_S + sig
        return SampleBatch(self.names, sig, ts, self.value, self.quality)


async def bench(args: argparse.Namespace, path: Path) -> None:
    names = signal_names(args.signals)
    async with DuckDBStore.open(path) as store:
        t1 = await load(store, args)
    # reopened: the figures see a warm start
    async with DuckDBStore.open(path, read_threads=args.read_threads) as store:
        live = LiveData(names, t1, args.write_batch)
        stop = asyncio.Event()
        written = 0
        latencies: dict[str, list[float]] = {}

        async def writer() -> None:
            nonlocal written
            while not stop.is_set():
                result = await store.append(TENANT, live.take())
                written += result.written

        rng = np.random.default_rng(11)
        queries: dict[str, Callable[[], Awaitable[object]]] = {
            "read_states_all_1_day": lambda: store.read_states(TENANT, None, t1 - DAY, t1),
            "aggregate_1min_10_signals_1_day": lambda: store.aggregate(
                TENANT,
                [names[int(i)] for i in rng.choice(len(names), 10, replace=False)],
                t1 - DAY,
                t1,
                60 * US_PER_S,
            ),
            "last_values_all": lambda: store.last_values(TENANT),
        }

        async def reader(k: int) -> None:
            order = list(queries)
            i = k
            while not stop.is_set():
                name = order[i % len(order)]
                i += 1
                t = time.perf_counter()
                await queries[name]()
                latencies.setdefault(name, []).append((time.perf_counter() - t) * 1000)

        for query in queries.values():  # warm: the first read of a reopened file loads it
            await query()
        tasks = [asyncio.create_task(writer()) for _ in range(args.writers)]
        tasks += [asyncio.create_task(reader(k)) for k in range(args.readers)]
        start = time.perf_counter()
        with progress() as bar:
            task = bar.add_task("mixed load (s)", total=args.seconds)
            while (elapsed := time.perf_counter() - start) < args.seconds:
                await asyncio.wait(tasks, timeout=0.5)
                failed = [t for t in tasks if t.done()]
                if failed:
                    stop.set()
                    await failed[0]  # raises what ended it early
                bar.update(task, completed=elapsed)
        stop.set()
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start

    every = np.concatenate([np.asarray(v) for v in latencies.values()])
    emit("mixed_read.p50", round(float(np.percentile(every, 50)), 2), "ms")
    emit("mixed_read.p99", round(float(np.percentile(every, 99)), 2), "ms")
    emit("mixed_read.max", round(float(every.max()), 2), "ms")
    for name, values in latencies.items():
        ms = np.asarray(values)
        emit(f"mixed_{name}.p50", round(float(np.percentile(ms, 50)), 2), "ms")
        emit(f"mixed_{name}.p99", round(float(np.percentile(ms, 99)), 2), "ms")
    emit("mixed_reads_per_s", round(len(every) / elapsed, 1), "reads/s")
    emit("mixed_write_points_per_s", round(written / elapsed), "points/s")


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--points", type=int, default=2_000_000, help="history points pre-loaded")
    p.add_argument("--signals", type=int, default=2000)
    p.add_argument("--seconds", type=float, default=20.0, help="duration of the mixed load")
    p.add_argument("--writers", type=int, default=20, help="tasks appending back to back")
    p.add_argument("--write-batch", type=int, default=20_000, help="points per append")
    p.add_argument("--readers", type=int, default=8, help="tasks reading in a loop")
    p.add_argument(
        "--read-threads",
        type=int,
        default=DEFAULT_READ_THREADS,
        help="the store's reader threads (0: reads queue behind writes on one thread, as "
        "before issue 17)",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    with tempfile.TemporaryDirectory(prefix="andon-bench-") as tmp:
        asyncio.run(bench(args, Path(tmp) / "mixed.duckdb"))


if __name__ == "__main__":
    main()

"""Query latency of ``DuckDBStore`` on a file database holding ``--points`` samples.

Loads the same synthetic telemetry as ``store_ingest.py`` (``--signals`` signals every
``--period-s`` seconds: 10M points over 2,000 signals at 60 s span about 3.5 days) plus a
state timeline for every machine (one machine per 10 signals, exponential dwell times with a
mean of ``--state-mean-s``), closes and re-opens the store, then times each query ``--runs``
times after ``--warmup`` untimed runs, each run on a randomly chosen signal/machine/window.

Figures, in ms, each as ``<query>.median``, ``<query>.p99`` and ``<query>.max``:

* ``last_values_2000_signals``: ``last_values`` of an explicit list of 2,000 signals.
* ``read_1_signal_1_day``: ``read`` of one signal over one day.
* ``aggregate_1min_1_signal_1_day``: 1-minute buckets of one signal over one day.
* ``aggregate_1h_100_signals_all``: 1-hour buckets of 100 signals over the whole range.
* ``read_states_1_machine_1_day`` and ``read_states_all_machines_1_day``.

Run: ``.venv/bin/python benchmarks/store_query.py [--points N] [--signals N] [--path FILE]``.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import numpy as np

from andon.model.types import US_PER_S, StateBatch
from andon.store import DuckDBStore
from store_ingest import T0, emit, progress, sample_batches, signal_names

__all__ = ["main", "state_batch"]

DAY = 86_400 * US_PER_S
TENANT = "bench"


def state_batch(machines: list[str], t0: int, t1: int, mean_s: float, seed: int = 1) -> StateBatch:
    """Back-to-back state intervals covering ``[t0, t1)`` for every machine."""
    rng = np.random.default_rng(seed)
    per = int((t1 - t0) / (mean_s * US_PER_S) * 1.5) + 10
    index, starts, ends = [], [], []
    for m in range(len(machines)):
        edges = t0 + np.cumsum(rng.exponential(mean_s * US_PER_S, per).astype(np.int64) + 1)
        edges = np.concatenate([[t0], edges[edges < t1], [t1]])
        index.append(np.full(len(edges) - 1, m, dtype=np.int32))
        starts.append(edges[:-1])
        ends.append(edges[1:])
    n = sum(len(i) for i in index)
    state = rng.choice(6, n, p=[0.7, 0.08, 0.07, 0.08, 0.04, 0.03]).astype(np.uint8)
    reasons = np.array(["", "", "", "jam", "", ""], dtype=object)[state]
    return StateBatch.build(
        machines,
        np.concatenate(index),
        np.concatenate(starts),
        np.concatenate(ends),
        state,
        reasons.tolist(),
    )


async def load(args: argparse.Namespace, path: Path) -> tuple[int, int]:
    """Fill the store; return the covered time range."""
    period = args.period_s * US_PER_S
    ticks = -(-args.points // args.signals)
    t1 = T0 + ticks * period
    store = DuckDBStore.open(path)
    with progress() as bar:
        task = bar.add_task("load samples", total=args.points)
        for batch in sample_batches(args.points, args.signals, 500_000, period):
            await store.append(TENANT, batch)
            bar.advance(task, len(batch))
    machines = sorted({n.rsplit("/", 1)[0] for n in signal_names(args.signals)})
    await store.append_states(TENANT, state_batch(machines, T0, t1, args.state_mean_s))
    await store.close()
    return T0, t1


async def measure(
    store: DuckDBStore,
    args: argparse.Namespace,
    name: str,
    query: Callable[[np.random.Generator], Awaitable[object]],
) -> None:
    rng = np.random.default_rng(7)
    for _ in range(args.warmup):
        await query(rng)
    times = []
    for _ in range(args.runs):
        t = time.perf_counter()
        await query(rng)
        times.append((time.perf_counter() - t) * 1000)
    ms = np.asarray(times)
    emit(f"{name}.median", round(float(np.median(ms)), 3), "ms")
    emit(f"{name}.p99", round(float(np.percentile(ms, 99)), 3), "ms")
    emit(f"{name}.max", round(float(ms.max()), 3), "ms")


async def bench(args: argparse.Namespace, path: Path) -> None:
    if path.exists() and not args.reuse:
        raise SystemExit(f"{path} exists; pass --reuse to query it as it is")
    if not path.exists():
        t0, t1 = await load(args, path)
    else:
        t0, t1 = T0, T0 + -(-args.points // args.signals) * args.period_s * US_PER_S
    names = signal_names(args.signals)
    machines = sorted({n.rsplit("/", 1)[0] for n in names})
    span = max(t1 - t0 - DAY, 1)

    def day(rng: np.random.Generator) -> tuple[int, int]:
        start = t0 + int(rng.integers(0, span))
        return start, start + DAY

    def pick(rng: np.random.Generator, items: list[str], k: int = 1) -> list[str]:
        return [items[int(i)] for i in rng.choice(len(items), k, replace=False)]

    async with DuckDBStore.open(path) as store:
        queries: dict[str, Callable[[np.random.Generator], Awaitable[object]]] = {
            "last_values_2000_signals": lambda rng: store.last_values(TENANT, names[:2000]),
            "read_1_signal_1_day": lambda rng: store.read(TENANT, pick(rng, names), *day(rng)),
            "aggregate_1min_1_signal_1_day": lambda rng: store.aggregate(
                TENANT, pick(rng, names), *day(rng), 60 * US_PER_S
            ),
            "aggregate_1h_100_signals_all": lambda rng: store.aggregate(
                TENANT, pick(rng, names, min(100, len(names))), t0, t1, 3600 * US_PER_S
            ),
            "read_states_1_machine_1_day": lambda rng: store.read_states(
                TENANT, pick(rng, machines), *day(rng)
            ),
            "read_states_all_machines_1_day": lambda rng: store.read_states(
                TENANT, None, *day(rng)
            ),
        }
        with progress() as bar:
            task = bar.add_task("queries", total=len(queries))
            for name, query in queries.items():
                bar.update(task, description=name)
                await measure(store, args, name, query)
                bar.advance(task)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--points", type=int, default=10_000_000)
    p.add_argument("--signals", type=int, default=2000)
    p.add_argument("--period-s", type=int, default=60, help="sampling period of each signal")
    p.add_argument("--state-mean-s", type=float, default=600.0, help="mean state dwell time")
    p.add_argument("--runs", type=int, default=50, help="timed runs per query")
    p.add_argument("--warmup", type=int, default=3, help="untimed runs per query")
    p.add_argument("--path", type=Path, default=None, help="database file (default: temp dir)")
    p.add_argument("--reuse", action="store_true", help="query an existing --path as it is")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    with tempfile.TemporaryDirectory(prefix="andon-bench-") as tmp:
        asyncio.run(bench(args, args.path or Path(tmp) / "query.duckdb"))


if __name__ == "__main__":
    main()

"""Batched-append throughput of ``DuckDBStore`` into a file database.

Synthetic telemetry: ``--signals`` signals sampled every ``--period-s`` seconds, generated
time-major (each tick carries every signal, as a poller would deliver them) with a fixed
per-signal phase, Gaussian values and 1 % uncertain / 0.5 % bad quality. Batches of
``--batch`` points are generated before their append is timed, so the figures measure the
store, not NumPy.

Figures (one JSON object per line on stdout; progress on stderr):

* ``ingest_points_per_s``: points / total time spent awaiting ``append``.
* ``ingest_points_per_s_incl_close``: the same including the final ``close`` (checkpoint).
* ``ingest_duplicate_points_per_s``: re-appending an already stored batch (every point is a
  duplicate found by the anti-join path instead of the high-water-mark fast path).
* ``ingest_bytes_per_point``: database file size / points after closing.

Run: ``.venv/bin/python benchmarks/store_ingest.py [--points N] [--signals N] [--batch N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import numpy as np
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from andon.model.types import US_PER_S, SampleBatch
from andon.store import DuckDBStore

__all__ = ["T0", "emit", "machine", "progress", "sample_batches", "signal_names"]

T0 = 1_767_225_600 * US_PER_S
"""2026-01-01T00:00:00Z: start of the synthetic data."""


def machine() -> str:
    """A short description of the machine the figures were taken on."""
    return (
        f"{os.cpu_count()} cpu, {platform.machine()}, {platform.system()} {platform.release()}, "
        f"python {platform.python_version()}, duckdb {duckdb.__version__}"
    )


def emit(figure: str, value: float, unit: str) -> None:
    """Print one figure as a JSON line on stdout."""
    print(
        json.dumps({"figure": figure, "value": value, "unit": unit, "machine": machine()}),
        flush=True,
    )


def progress() -> Progress:
    """A rich progress bar on stderr (stdout carries only JSON lines)."""
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,.0f}/{task.total:,.0f}"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    )


def signal_names(signals: int) -> list[str]:
    """``tenant/site/area/line/machine/signal`` paths, 10 signals per machine."""
    return [
        f"bench/site1/area{i // 1000}/line{i // 100}/m{i // 10:05d}/s{i % 10}"
        for i in range(signals)
    ]


def sample_batches(
    points: int, signals: int, batch: int, period_us: int, seed: int = 0
) -> Iterator[SampleBatch]:
    """Time-major synthetic samples: point ``r`` is signal ``r % signals`` at tick
    ``r // signals``, yielded in batches of ``batch`` points."""
    rng = np.random.default_rng(seed)
    names = tuple(signal_names(signals))
    phase = rng.integers(0, period_us, signals)
    for first in range(0, points, batch):
        r = np.arange(first, min(first + batch, points), dtype=np.int64)
        sig = (r % signals).astype(np.int32)
        ts = T0 + (r // signals) * period_us + phase[sig]
        value = 50.0 + 10.0 * np.sin(ts / (3600 * US_PER_S) + sig) + rng.normal(0, 1, len(r))
        quality = np.searchsorted([0.985, 0.995], rng.random(len(r))).astype(np.uint8)
        yield SampleBatch(names, sig, ts, value, quality)


async def bench(args: argparse.Namespace, path: Path) -> None:
    store = DuckDBStore.open(path)
    appended, busy, duplicates = 0, 0.0, 0
    first: SampleBatch | None = None
    with progress() as bar:
        task = bar.add_task("append", total=args.points)
        for batch in sample_batches(
            args.points, args.signals, args.batch, args.period_s * US_PER_S
        ):
            t = time.perf_counter()
            result = await store.append("bench", batch)
            busy += time.perf_counter() - t
            appended += result.written
            duplicates += result.duplicates
            first = first or batch
            bar.advance(task, len(batch))
    t = time.perf_counter()
    await store.close()
    busy_close = busy + time.perf_counter() - t
    if appended != args.points or duplicates:
        raise SystemExit(f"expected {args.points} new points, got {appended} (+{duplicates} dup)")
    emit("ingest_points_per_s", round(appended / busy), "points/s")
    emit("ingest_points_per_s_incl_close", round(appended / busy_close), "points/s")
    emit("ingest_bytes_per_point", round(path.stat().st_size / appended, 2), "bytes/point")

    assert first is not None
    store = DuckDBStore.open(path)
    t = time.perf_counter()
    result = await store.append("bench", first)
    dt = time.perf_counter() - t
    await store.close()
    if result.duplicates != len(first):
        raise SystemExit(f"expected {len(first)} duplicates, got {result.duplicates}")
    emit("ingest_duplicate_points_per_s", round(len(first) / dt), "points/s")


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--points", type=int, default=10_000_000)
    p.add_argument("--signals", type=int, default=2000)
    p.add_argument("--batch", type=int, default=500_000, help="points per append")
    p.add_argument("--period-s", type=int, default=60, help="sampling period of each signal")
    p.add_argument("--path", type=Path, default=None, help="database file (default: temp dir)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    with tempfile.TemporaryDirectory(prefix="andon-bench-") as tmp:
        path: Path = args.path or Path(tmp) / "ingest.duckdb"
        if path.exists():
            raise SystemExit(f"{path} exists; the ingest benchmark needs a new file")
        asyncio.run(bench(args, path))


if __name__ == "__main__":
    main()

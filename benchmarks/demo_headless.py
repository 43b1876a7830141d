"""Wall time of `andon demo --headless` (24 plant hours of the demo plant by default) and the
rate at which the virtual factory produces and stores samples.

    .venv/bin/python benchmarks/demo_headless.py [--hours 24] [--seed 7] [--plant FILE]

Prints one JSON object per figure: the whole demo (line model, physical signals, ingest and
DuckDB store) and the bare line model alone (no signals, no store).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import tempfile
import time
from pathlib import Path

from andon.demo.run import default_start, run_headless
from andon.model.loader import load_plant
from andon.store.duckdb_store import DuckDBStore
from andon.twin.line import FactoryModel

DEMO = Path(__file__).resolve().parents[1] / "examples" / "plants" / "demo.yaml"


def machine() -> str:
    return f"{os.cpu_count()} cpu, {platform.machine()}, {platform.system()}"


def emit(figure: str, value: float, unit: str) -> None:
    print(
        json.dumps(
            {"figure": figure, "value": round(value, 4), "unit": unit, "machine": machine()}
        ),
        flush=True,
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hours", type=float, default=24.0)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--plant", type=Path, default=DEMO)
    args = ap.parse_args()
    plant = load_plant(args.plant)

    with tempfile.TemporaryDirectory() as d:
        store = DuckDBStore.open(Path(d) / "t.duckdb")
        t = time.perf_counter()
        summary = asyncio.run(run_headless(plant, store, args.seed, args.hours))
        took = time.perf_counter() - t
        asyncio.run(store.close())
    n = summary.ingest.samples
    emit(f"demo headless {args.hours:g} plant hours, wall time", took, "s")
    emit("demo headless samples generated and stored per second", n / took, "samples/s")
    emit("demo headless speed-up over real time", args.hours * 3600 / took, "x")

    # the bare line model (no signals, no store): events per second
    t = time.perf_counter()
    model = FactoryModel(plant, args.seed, default_start(plant))
    model.run(args.hours * 3600.0 * 10)
    took = time.perf_counter() - t
    parts = sum(m.good + m.scrap for m in model.machines)
    emit(
        f"line model alone, {args.hours * 10:g} plant hours, parts per second",
        parts / took,
        "parts/s",
    )


if __name__ == "__main__":
    main()

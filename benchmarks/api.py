"""Throughput and tail latency of the dashboard's hot API endpoints, over HTTP on loopback.

Builds a 100-machine plant (the demo plant with its machining line copied under new ids),
simulates the last ``--hours`` up to now into a DuckDB file, creates a tenant, an admin and
the site in a SQLite metadata database, then starts ``andon serve`` (uvicorn, one worker) on
a free 127.0.0.1 port and drives it from this process with ``--concurrency`` httpx clients,
``--requests`` requests per endpoint (at most ``--seconds`` each) after ``--warmup`` untimed
ones:

* ``api.last_values_line``: ``GET /sites/{id}/telemetry/last?prefix=<area>/<line>``
* ``api.kpi_today``: ``GET /sites/{id}/kpi/summary`` (today so far, all 100 machines; the
  server computes it once per ``kpi_cache_s`` = 5 s step for all callers)
* ``api.kpi_range``: the same with an explicit ``start``/``end`` (the last ``--hours``),
  computed afresh by ``plant_summary`` on every request
* ``api.board``: ``GET /sites/{id}/board`` (every machine's current state, today's OEE and
  parts, line throughput and bottleneck, open alerts: what the andon board loads)

Figures, one JSON line each: ``<endpoint>.rps`` (requests/s with ``--concurrency`` clients),
``<endpoint>.p99`` (ms, same run: includes queueing behind the other clients) and
``<endpoint>.p99_single`` (ms, one client at a time, at most 300 requests or 15 s).

Run: ``.venv/bin/python benchmarks/api.py [--requests N] [--concurrency N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from importlib.resources import files
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import yaml

from andon.api.deps import wall_clock
from andon.demo.run import run_headless
from andon.model.loader import parse_plant
from andon.model.plant import Plant
from andon.platform import Database, Platform, Role
from andon.store import DuckDBStore

__all__ = ["main", "plant_with"]

TENANT = "bench"
PASSWORD = "benchmark password"


def machine() -> str:
    return (
        f"{os.cpu_count()} cpu, {platform.machine()}, {platform.system()} {platform.release()}, "
        f"python {platform.python_version()}, sqlite metadata, duckdb telemetry, "
        "1 uvicorn worker, load generator in the same machine"
    )


def emit(figure: str, value: float, unit: str) -> None:
    print(
        json.dumps({"figure": figure, "value": value, "unit": unit, "machine": machine()}),
        flush=True,
    )


def plant_with(machines: int) -> tuple[str, Plant]:
    """The demo plant's YAML with copies of its first line until it has ``machines``."""
    doc: dict[str, Any] = yaml.safe_load(
        (files("andon.sim") / "plants" / "demo.yaml").read_text(encoding="utf-8")
    )
    doc["tenant"] = TENANT
    area = doc["site"]["areas"][0]
    first = area["lines"][0]
    n = sum(len(ln["machines"]) for a in doc["site"]["areas"] for ln in a.get("lines", []))
    k = 0
    while n < machines:
        k += 1
        line = copy.deepcopy(first)
        line["id"] = f"{first['id']}c{k}"
        ren = {m["id"]: f"{m['id']}-c{k}" for m in line["machines"]}
        for m in line["machines"]:
            m["id"] = ren[m["id"]]
        for b in line.get("buffers", []):
            b["id"] = f"{b['id']}-c{k}"
            b["from"] = [ren.get(x, x) for x in b["from"]]
            b["to"] = [ren.get(x, x) for x in b["to"]]
        area["lines"].append(line)
        n += len(line["machines"])
    text = yaml.safe_dump(doc, sort_keys=False)
    return text, parse_plant(text)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def prepare(d: Path, text: str, plant: Plant, hours: float) -> str:
    now = wall_clock()
    start = now - int(hours * 3600e6)
    start -= start % 600_000_000
    store = DuckDBStore.open(d / "telemetry.duckdb")
    try:
        await run_headless(plant, store, 7, (now - start) / 3.6e9, start)
    finally:
        await store.close()
    db = Database(f"sqlite:///{d / 'meta.db'}")
    try:
        pf = Platform(db, wall_clock)
        await pf.start()
        await pf.create_tenant(TENANT, "Benchmark")
        await pf.create_user(TENANT, "bench@bench.example", PASSWORD, [(Role.VIEWER, None)])
        site = await pf.create_site(TENANT, text)
        return str(site["id"])
    finally:
        await db.close()


async def load(
    client: httpx.AsyncClient, url: str, n: int, warmup: int, conc: int, seconds: float
) -> tuple[float, float]:
    for _ in range(warmup):
        (await client.get(url)).raise_for_status()
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    issued = 0

    async def worker() -> None:
        nonlocal issued
        while issued < n and time.perf_counter() < deadline:
            issued += 1
            t = time.perf_counter()
            r = await client.get(url)
            latencies.append(time.perf_counter() - t)
            r.raise_for_status()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(conc)))
    elapsed = time.perf_counter() - t0
    return len(latencies) / elapsed, float(np.percentile(latencies, 99)) * 1e3


async def bench(base: str, site_id: str, plant: Plant, args: argparse.Namespace) -> None:
    limits = httpx.Limits(max_connections=args.concurrency)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as client:
        for _ in range(300):
            try:
                if (await client.get("/api/v1/health")).status_code == 200:
                    break
            except httpx.TransportError:
                await asyncio.sleep(0.1)
        r = await client.post(
            "/api/v1/auth/login", json={"email": "bench@bench.example", "password": PASSWORD}
        )
        r.raise_for_status()
        client.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
        area, line = plant.lines()[0]
        end = wall_clock()
        start = end - int(args.hours * 3600e6)
        urls = {
            "api.last_values_line": (
                f"/api/v1/sites/{site_id}/telemetry/last?prefix={area.id}/{line.id}"
            ),
            "api.kpi_today": f"/api/v1/sites/{site_id}/kpi/summary",
            "api.board": f"/api/v1/sites/{site_id}/board",
            "api.kpi_range": (f"/api/v1/sites/{site_id}/kpi/summary?start={start}&end={end}"),
        }
        for name, url in urls.items():
            rps, p99 = await load(
                client, url, args.requests, args.warmup, args.concurrency, args.seconds
            )
            emit(f"{name}.rps", round(rps, 1), "requests/s")
            emit(f"{name}.p99", round(p99, 2), "ms")
            _, single = await load(client, url, min(300, args.requests), 0, 1, 15.0)
            emit(f"{name}.p99_single", round(single, 2), "ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--machines", type=int, default=100)
    ap.add_argument("--hours", type=float, default=1.0)
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=30.0)
    args = ap.parse_args()
    text, plant = plant_with(args.machines)
    with tempfile.TemporaryDirectory(prefix="andon-bench-api-") as tmp:
        d = Path(tmp)
        site_id = asyncio.run(prepare(d, text, plant, args.hours))
        port = free_port()
        cfg = d / "andon.yaml"
        cfg.write_text(
            yaml.safe_dump(
                {
                    "host": "127.0.0.1",
                    "port": port,
                    "database_url": f"sqlite:///{d / 'meta.db'}",
                    "telemetry_url": f"duckdb://{d / 'telemetry.duckdb'}",
                    "limits": {"api_rps": 0},
                }
            ),
            encoding="utf-8",
        )
        andon = Path(sys.executable).with_name("andon")
        server = subprocess.Popen(
            [str(andon), "serve", "--config", str(cfg)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            asyncio.run(bench(f"http://127.0.0.1:{port}", site_id, plant, args))
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()


if __name__ == "__main__":
    main()

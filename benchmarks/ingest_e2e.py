"""End-to-end ingest: edge buffer → MQTT (Mosquitto, QoS 1) → ingest service → DuckDB.

Two processes, as in a plant: this one runs a private Mosquitto on a free loopback port and
the platform (``IngestService`` with its ledger, ``Ingestor`` validation, ``DuckDBStore`` in a
file); a child process runs the edge (a counting source writing batches to the durable
``EdgeBuffer`` with fsync, and the ``Uplink``). Every batch is stamped with the wall time it
was created; the platform notes when it is stored.

Figures (one JSON object per line on stdout):

* ``ingest_e2e_points_per_s``: points / (last point stored − first batch created), with the
  source unthrottled (``--points`` points in batches of ``--batch``).
* ``ingest_e2e_latency_p50_ms`` / ``ingest_e2e_latency_p99_ms``: sample created → stored, per
  point, with the source paced at ``--rate`` points/s (the floor, by default).

Run: ``.venv/bin/python benchmarks/ingest_e2e.py [--points N] [--batch N] [--rate R]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from andon.connect.counting import DEFAULT_START, counter_batch
from andon.edge.buffer import EdgeBuffer
from andon.edge.uplink import Uplink, UplinkConfig
from andon.edge.wire import Frame
from andon.ingest import Ingestor
from andon.ingest.ledger import DedupLedger
from andon.ingest.service import EdgeCredential, IngestService, hash_token
from andon.store.duckdb_store import DuckDBStore

__all__ = ["main"]

TOKEN = "bench-token"
TENANT = "bench"
SIGNALS = tuple(f"site/area/line/m{i // 20}/s{i}" for i in range(200))


def _machine() -> str:
    return (
        f"{os.cpu_count()} cpu, {platform.machine()}, {platform.system()} {platform.release()}, "
        f"python {platform.python_version()}"
    )


def emit(figure: str, value: float, unit: str) -> None:
    print(
        json.dumps({"figure": figure, "value": value, "unit": unit, "machine": _machine()}),
        flush=True,
    )


# ---------------------------------------------------------------------------------------------
# the edge (child process)
# ---------------------------------------------------------------------------------------------


async def _edge(port: int, workdir: Path, points: int, batch: int, rate: float | None) -> None:
    buf = await EdgeBuffer.open(workdir / "edge.db", max_bytes=1 << 34)
    up = Uplink(buf, UplinkConfig("edge-1", TOKEN, port=port, window=32, ack_timeout_s=30))
    task = asyncio.create_task(up.run())
    t0 = time.monotonic()
    for k in range(0, points, batch):
        k1 = min(points, k + batch)
        if rate:
            delay = t0 + k1 / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        b = counter_batch(SIGNALS, k, k1, DEFAULT_START, 1_000)
        await buf.put("gen", b, str(k1), created_us=time.time_ns() // 1000)
    while (await buf.stats()).acked_points < points:
        await asyncio.sleep(0.01)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await buf.close()


# ---------------------------------------------------------------------------------------------
# the platform (this process)
# ---------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def _run(
    port: int, workdir: Path, points: int, batch: int, rate: float | None
) -> tuple[float, np.ndarray]:
    store = DuckDBStore.open(workdir / "platform.duckdb")
    ing = Ingestor(store)
    ing.register(TENANT, SIGNALS, [])
    ledger = DedupLedger.open(workdir / "ledger.db")
    svc = IngestService(
        ing, ledger, {"edge-1": EdgeCredential(TENANT, hash_token(TOKEN))}, port=port
    )
    stored: list[Frame] = []
    stamps: list[int] = []

    class _Recorder(list[Frame]):
        def extend(self, frames: Iterable[Frame]) -> None:
            now = time.time_ns() // 1000
            for f in frames:
                stored.append(f)
                stamps.append(now)

    svc.on_stored = _Recorder()
    task = asyncio.create_task(svc.run())
    await asyncio.wait_for(svc.connected.wait(), 10)
    edge_dir = workdir / "edge"
    edge_dir.mkdir()
    args = [
        sys.executable,
        __file__,
        "--role",
        "edge",
        "--port",
        str(port),
        "--dir",
        str(edge_dir),
        "--points",
        str(points),
        "--batch",
        str(batch),
    ]
    if rate:
        args += ["--rate", str(rate)]
    proc = await asyncio.create_subprocess_exec(*args)
    await proc.wait()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    total = sum(len(f.batch) for f in stored)
    if total < points or ing.stats.rejected:
        raise RuntimeError(f"stored {total} of {points} points; rejected {ing.stats.rejected}")
    created = np.array([f.created_us for f in stored], dtype=np.int64)
    at = np.array(stamps, dtype=np.int64)
    sizes = np.array([len(f.batch) for f in stored])
    elapsed_s = (at.max() - created.min()) / 1e6
    latency_ms = np.repeat((at - created) / 1e3, sizes)
    await store.close()
    ledger.close()
    return points / elapsed_s, latency_ms


def _with_broker(fn_args: tuple[int, int, float | None]) -> tuple[float, np.ndarray]:
    points, batch, rate = fn_args
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    with tempfile.TemporaryDirectory(prefix="andon-bench-") as d:
        work = Path(d)
        port = _free_port()
        conf = work / "mosquitto.conf"
        conf.write_text(
            f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
            "set_tcp_nodelay true\n"
        )
        broker = subprocess.Popen([exe, "-c", str(conf)], stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), 0.2).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.02)
            return asyncio.run(_run(port, work, points, batch, rate))
        finally:
            broker.send_signal(signal.SIGTERM)
            broker.wait(10)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--role", choices=["bench", "edge"], default="bench")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--dir", type=Path)
    p.add_argument("--points", type=int, default=4_000_000)
    p.add_argument("--batch", type=int, default=20_000)
    p.add_argument("--rate", type=float, default=None)
    a = p.parse_args()
    if a.role == "edge":
        asyncio.run(_edge(a.port, a.dir, a.points, a.batch, a.rate))
        return
    rate, _ = _with_broker((a.points, a.batch, None))
    emit("ingest_e2e_points_per_s", round(rate), "points/s")
    paced = a.rate or 200_000.0
    _, latency = _with_broker((int(paced * 10), a.batch // 4, paced))
    emit("ingest_e2e_latency_p50_ms", round(float(np.percentile(latency, 50)), 1), "ms")
    emit("ingest_e2e_latency_p99_ms", round(float(np.percentile(latency, 99)), 1), "ms")


if __name__ == "__main__":
    main()

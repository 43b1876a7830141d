"""Soak: ``andon serve`` with the demo plant's site and ``--edges`` real edge agents over MQTT
for ``--minutes``, sampled every ``--interval`` seconds for growth (issue 17's acceptance).

Real processes, as a plant runs them: a private Mosquitto (its own port, a password file with
every edge's platform edge key and the ``andon broker`` ACL); ``andon serve`` (SQLite metadata,
DuckDB telemetry with ``--store-memory-limit``, default 32MB: below the store's own default of
256MB so that DuckDB's block cache reaches its bound within the run, the MQTT receiver, the
alert evaluator); ``--edges`` ``andon edge``
processes, each a synthetic source on its share of the demo plant's signals (``--rate``
points/s per edge), uplink over MQTT with its own edge key, health reports to the API. This
process adds a probe edge (an ``EdgeBuffer`` and ``Uplink`` with its own key) that stores one
recognisable value per second on the demo plant's last signal, a ``/live`` SSE reader that
notes when each probe value arrives, and a board reader (``GET /sites/{id}/board``,
``--board-rps`` requests/s).

Sampled every interval: RSS and open file descriptors of ``andon serve`` (the process and its
children) and of the edges (sum and max); ingest → live-feed latency (probe value stored by
the edge → seen on ``/live``) and board latency, p50 and p99 over the interval.

Output: ``--out DIR`` gets ``soak.csv`` (the time series) and ``soak.svg`` (drawn here:
matplotlib is no dependency of andon); stdout gets one JSON line per figure, e.g.
``{"figure": "soak.serve_rss_growth", "value": 1.2, "unit": "MB/h"}``: start, end and max of
each series and its least-squares slope over the second half (after warm-up). The bound:

* ``andon serve`` RSS grows < ``SERVE_RSS_BOUND_MB_H`` MB/h over the second half;
* the edges' RSS (sum) grows < ``EDGE_RSS_BOUND_MB_H`` MB/h per edge over the second half;
* open fds, serve's and the edges' sum, are flat: the second half's fit moves them by less
  than ``FD_BOUND`` over the run's length;
* every probe value reaches ``/live``; nothing is rejected.

The exit status is 1 when a bound is broken (``soak.bounds_ok`` says which).

Run: ``.venv/bin/python benchmarks/soak.py --minutes 30 --edges 20 --out .andon/soak``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import getpass
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
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from andon.api.deps import wall_clock
from andon.edge.buffer import EdgeBuffer
from andon.edge.uplink import Uplink, UplinkConfig
from andon.ingest.broker import edge_password_line, mosquitto_acl, mosquitto_password_line
from andon.model.loader import parse_plant
from andon.model.types import SampleBatch
from andon.platform import Database, KeyKind, Permission, Platform
from andon.platform.service import Principal

__all__ = ["main"]

SERVE_RSS_BOUND_MB_H = 10.0
EDGE_RSS_BOUND_MB_H = 2.0
FD_BOUND = 10
START_TIMEOUT_S = 180.0
TENANT = "soak"
SECRET = "s" * 40
BROKER_USER, BROKER_PASSWORD = "andon-platform", "soak-broker-password"
PAGE = os.sysconf("SC_PAGE_SIZE")
PROBE_BASE = 1_000_000_000.0
"""Probe values are PROBE_BASE + n: no synthetic source reaches them on the probe's signal."""


def _machine() -> str:
    return (
        f"{os.cpu_count()} cpu, {platform.machine()}, {platform.system()} {platform.release()}, "
        f"python {platform.python_version()}, load {os.getloadavg()[0]:.1f}"
    )


def emit(figure: str, value: float | bool | str, unit: str, **extra: Any) -> None:
    doc = {"figure": figure, "value": value, "unit": unit, **extra, "machine": _machine()}
    print(json.dumps(doc), flush=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait_port(port: int, proc: subprocess.Popen[bytes], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"{what} exited ({proc.returncode}) before listening") from None
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what} not listening on {port} after {timeout} s") from None
            time.sleep(0.05)


# ---------------------------------------------------------------------------------------------
# processes: memory and file descriptors from /proc
# ---------------------------------------------------------------------------------------------


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            out += [int(c) for c in (task / "children").read_text().split()]
    return out


def _tree(pid: int) -> list[int]:
    todo, seen = [pid], []
    while todo:
        p = todo.pop()
        seen.append(p)
        todo += _children(p)
    return seen


def rss_mb(pid: int) -> float:
    """Resident set size of one process, MB (0 when it is gone)."""
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE / 1e6
    except (OSError, IndexError):
        return 0.0


def smaps_mb(pid: int) -> tuple[float, float]:
    """Anonymous and file-backed resident memory of one process, MB, from
    ``/proc/PID/smaps_rollup`` ((0, 0) when it is gone): native heap growth shows as anon."""
    anon = file = 0
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key == "Anonymous":
                anon = int(rest.split()[0])
            elif key == "Rss":
                file = int(rest.split()[0])
    except (OSError, IndexError, ValueError):
        return 0.0, 0.0
    return anon / 1e3, max(0, file - anon) / 1e3


def fds(pid: int) -> int:
    """Open file descriptors of one process (0 when it is gone)."""
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


# ---------------------------------------------------------------------------------------------
# set-up: platform rows, broker, andon serve, edges
# ---------------------------------------------------------------------------------------------


@dataclass
class Setup:
    site: str
    edge_keys: list[str]
    probe_key: str
    app_key: str
    signals: list[str]


async def _provision(db_url: str, edges: int) -> Setup:
    """The tenant, the demo plant's site, one edge key per edge (and the probe's) and an app
    key, written before ``andon serve`` starts, as an operator would over the API."""
    yaml = (files("andon.sim") / "plants" / "demo.yaml").read_text(encoding="utf-8")
    pf = Platform(Database(db_url), wall_clock, secret_key=SECRET)
    await pf.start()
    try:
        await pf.create_tenant(TENANT, "Soak")
        site = str((await pf.create_site(TENANT, yaml))["id"])
        admin = Principal("user", "soak", TENANT, tenant_wide=frozenset(Permission))

        async def key(kind: KeyKind, perms: list[Permission]) -> str:
            _, secret = await pf.create_api_key(
                TENANT, admin, name="soak", kind=kind, permissions=perms, site_ids=[site],
                ttl_s=7 * 86_400,
            )  # fmt: skip
            return secret

        edge = [Permission.INGEST_WRITE, Permission.SITE_READ]
        keys = [await key(KeyKind.EDGE, edge) for _ in range(edges)]
        probe = await key(KeyKind.EDGE, edge)
        app = await key(KeyKind.APP, [Permission.TELEMETRY_READ, Permission.KPI_READ])
        return Setup(site, keys, probe, app, parse_plant(yaml).signal_paths())
    finally:
        await pf.db.close()


@contextlib.contextmanager
def _broker(work: Path, keys: list[str], port: int) -> Iterator[int]:
    lines = [mosquitto_password_line(BROKER_USER, BROKER_PASSWORD)]
    (work / "passwd").write_text("\n".join(lines + [edge_password_line(k) for k in keys]) + "\n")
    (work / "acl").write_text(mosquitto_acl(BROKER_USER))
    conf = work / "mosquitto.conf"
    conf.write_text(
        f"user {getpass.getuser()}\nlistener {port} 127.0.0.1\nallow_anonymous false\n"
        f"persistence false\npassword_file {work / 'passwd'}\nacl_file {work / 'acl'}\n"
        "max_queued_messages 100000\n"
    )
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    with (work / "mosquitto.log").open("ab") as log:
        proc = subprocess.Popen([exe, "-c", str(conf)], stdout=log, stderr=log)
    try:
        _wait_port(port, proc, "mosquitto")
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


@contextlib.contextmanager
def _serve(
    work: Path, db_url: str, broker_port: int, memory_limit: str, extra_env: dict[str, str]
) -> Iterator[tuple[int, int]]:
    port = _free_port()
    config = work / "andon.yaml"
    doc = {
        "port": port,
        "database_url": db_url,
        "telemetry_url": f"duckdb://{work / 'telemetry.duckdb'}?memory_limit={memory_limit}",
        "secret_key": SECRET,
        "web": False,
        "limits": {"api_rps": 0, "principal_rps": 0, "ingest_points_per_s": 0},
        "security": {"max_feeds_per_principal": 4},
        "broker": {
            "port": broker_port,
            "username": BROKER_USER,
            "password_env": "ANDON_SOAK_BROKER_PASSWORD",
        },
    }
    config.write_text(json.dumps(doc))
    env = {
        **os.environ,
        "ANDON_SOAK_BROKER_PASSWORD": BROKER_PASSWORD,
        "PYTHONUNBUFFERED": "1",
        **extra_env,
    }
    cmd = [sys.executable, "-m", "andon.cli", "serve", "--config", str(config)]
    with (work / "serve.log").open("ab") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        _wait_port(port, proc, "andon serve")
        yield port, proc.pid
    finally:
        _stop(proc)
        if proc.returncode not in (0, -signal.SIGTERM):
            print(f"andon serve ended with {proc.returncode}", file=sys.stderr)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def _shares(signals: list[str], n: int) -> list[list[str]]:
    """The demo plant's signals but the last (the probe's), dealt round-robin to n edges."""
    pool = signals[:-1]
    return [pool[i::n] or [pool[i % len(pool)]] for i in range(n)]


@contextlib.contextmanager
def _edges(
    work: Path, s: Setup, broker_port: int, api_port: int, rate: float
) -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    try:
        for i, (key, names) in enumerate(
            zip(s.edge_keys, _shares(s.signals, len(s.edge_keys)), strict=True)
        ):
            d = work / f"edge-{i:02d}"
            d.mkdir()
            doc = {
                "edge": {"id": f"soak-{i:02d}"},
                "data_dir": str(d / "data"),
                "uplink": {
                    "host": "127.0.0.1",
                    "port": broker_port,
                    "key": key,
                    "url": f"http://127.0.0.1:{api_port}",
                    "site": s.site,
                },
                "connectors": [
                    {
                        "type": "synthetic",
                        "name": "gen",
                        "signals": names,
                        "batch_points": max(1, round(rate)),
                        "rate_points_s": rate,
                    }
                ],
            }
            (d / "site.yaml").write_text(json.dumps(doc))
            cmd = [sys.executable, "-m", "andon.cli", "edge", "--config", str(d / "site.yaml")]
            with (d / "edge.log").open("ab") as log:
                procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env))
        yield procs
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            _stop(p)


def _edge_acked(work: Path, n: int, first: int = 0) -> tuple[int, int, int]:
    """Points acknowledged, pending and dropped over the status files of edges first..n-1."""
    acked = pending = dropped = 0
    for i in range(first, n):
        with contextlib.suppress(OSError, ValueError, KeyError):
            b = json.loads((work / f"edge-{i:02d}" / "data" / "status.json").read_text())["buffer"]
            acked += int(b["acked_points"])
            pending += int(b["pending_points"])
            dropped += int(b["dropped_points"])
    return acked, pending, dropped


# ---------------------------------------------------------------------------------------------
# the readers: probe → /live, and the board
# ---------------------------------------------------------------------------------------------


@dataclass
class Readers:
    live_ms: list[float] = field(default_factory=list)
    board_ms: list[float] = field(default_factory=list)
    board_errors: int = 0
    probes_sent: int = 0
    probes_seen: int = 0
    probes_superseded: int = 0
    """Probe values a newer one replaced within one coalescing window of the feed."""
    live_reconnects: int = 0
    live_errors: list[str] = field(default_factory=list)
    """Why a ``/live`` stream broke (it is opened again)."""
    live_up: asyncio.Event = field(default_factory=asyncio.Event)
    pending: dict[float, float] = field(default_factory=dict)
    """Probe value → monotonic time it was put in the probe's buffer."""
    edge_totals: tuple[int, int, int] = (0, 0, 0)
    """Points acknowledged, pending and dropped over every edge, at the end."""

    def take(self) -> tuple[list[float], list[float]]:
        live, board = self.live_ms, self.board_ms
        self.live_ms, self.board_ms = [], []
        return live, board


async def _live(client: httpx.AsyncClient, site: str, probe: str, r: Readers) -> None:
    """Read ``/live`` for ever (reconnecting when a stream ends or breaks, counted); note
    each probe value."""
    while True:
        params = {"interval_s": 1.0, "max_ticks": 86_400}
        try:
            async with client.stream("GET", f"/sites/{site}/live", params=params) as resp:
                resp.raise_for_status()
                event = ""
                async for line in resp.aiter_lines():
                    if line.startswith("event: "):
                        event = line[7:]
                    elif line.startswith("data: ") and event == "values":
                        r.live_up.set()
                        now = time.monotonic()
                        for v in json.loads(line[6:]):
                            if v["signal"] == probe and v["value"] in r.pending:
                                r.live_ms.append((now - r.pending.pop(v["value"])) * 1e3)
                                r.probes_seen += 1
                                # older probe values the feed coalesced away (it sends the
                                # newest value of a signal per 0.1 s window): not lost
                                older = [x for x in r.pending if x < v["value"]]
                                for x in older:
                                    del r.pending[x]
                                r.probes_superseded += len(older)
        except httpx.HTTPError as exc:
            r.live_errors.append(f"{type(exc).__name__}: {exc}"[:200])
            await asyncio.sleep(1.0)
        r.live_reconnects += 1


async def _probe(work: Path, key: str, broker_port: int, signal_: str, r: Readers) -> None:
    """One recognisable value a second on ``signal_``, through an edge buffer and uplink."""
    buf = await EdgeBuffer.open(work / "probe.db")
    up = Uplink(buf, UplinkConfig("soak-probe", key, port=broker_port))
    task = asyncio.create_task(up.run())
    try:
        await r.live_up.wait()
        n = 0
        while True:
            n += 1
            value = PROBE_BASE + n
            now_us = time.time_ns() // 1000
            batch = SampleBatch.build((signal_,), [0], [now_us], [value])
            r.pending[value] = time.monotonic()
            await buf.put("probe", batch, created_us=now_us)
            r.probes_sent += 1
            if task.done():
                raise RuntimeError(f"the probe's uplink stopped: {up.stats.last_error}")
            await asyncio.sleep(1.0)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await buf.close()


async def _board(client: httpx.AsyncClient, site: str, rps: float, r: Readers) -> None:
    while True:
        t0 = time.monotonic()
        try:
            resp = await client.get(f"/sites/{site}/board")
            if resp.status_code == 200:
                r.board_ms.append((time.monotonic() - t0) * 1e3)
            else:
                r.board_errors += 1
        except httpx.HTTPError:
            r.board_errors += 1
        await asyncio.sleep(max(0.0, 1.0 / rps - (time.monotonic() - t0)))


# ---------------------------------------------------------------------------------------------
# the run
# ---------------------------------------------------------------------------------------------

COLUMNS = (
    "t_s",
    "serve_rss_mb",
    "serve_anon_mb",
    "serve_file_mb",
    "serve_fds",
    "serve_procs",
    "edges_rss_sum_mb",
    "edges_rss_max_mb",
    "edges_fds_sum",
    "edges_fds_max",
    "edges_alive",
    "live_p50_ms",
    "live_p99_ms",
    "board_p50_ms",
    "board_p99_ms",
    "points_acked",
    "store_mb",
    "load1",
)


async def _started(
    work: Path, edges: list[subprocess.Popen[bytes]], r: Readers, tasks: list[asyncio.Task[None]]
) -> None:
    """Wait (at most ``START_TIMEOUT_S``) until every edge has points acknowledged and a probe
    value has come back on ``/live``."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        through = sum(1 for i in range(len(edges)) if _edge_acked(work, i + 1, i)[0] > 0)
        if through == len(edges) and r.probes_seen > 0:
            return
        for p in edges:
            if p.poll() is not None:
                raise RuntimeError(f"edge process {p.pid} ended ({p.returncode}) at start-up")
        for t in tasks:
            if t.done():
                t.result()
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"after {START_TIMEOUT_S} s only {through} of {len(edges)} edges have points "
                f"acknowledged and {r.probes_seen} probe values came back on /live"
            )
        await asyncio.sleep(0.2)


def _pct(xs: list[float], q: float) -> float:
    return round(float(np.percentile(xs, q)), 1) if xs else float("nan")


def sample(
    t: float,
    serve_pid: int,
    edges: list[subprocess.Popen[bytes]],
    live: list[float],
    board: list[float],
    acked: int,
    store_mb: float,
) -> dict[str, float]:
    tree = _tree(serve_pid)
    maps = [smaps_mb(p) for p in tree]
    e_rss = [rss_mb(p.pid) for p in edges]
    e_fds = [fds(p.pid) for p in edges]
    return {
        "t_s": round(t, 1),
        "serve_rss_mb": round(sum(rss_mb(p) for p in tree), 2),
        "serve_anon_mb": round(sum(m[0] for m in maps), 2),
        "serve_file_mb": round(sum(m[1] for m in maps), 2),
        "serve_fds": sum(fds(p) for p in tree),
        "serve_procs": len(tree),
        "edges_rss_sum_mb": round(sum(e_rss), 2),
        "edges_rss_max_mb": round(max(e_rss), 2),
        "edges_fds_sum": sum(e_fds),
        "edges_fds_max": max(e_fds),
        "edges_alive": sum(1 for p in edges if p.poll() is None),
        "live_p50_ms": _pct(live, 50),
        "live_p99_ms": _pct(live, 99),
        "board_p50_ms": _pct(board, 50),
        "board_p99_ms": _pct(board, 99),
        "points_acked": acked,
        "store_mb": round(store_mb, 2),
        "load1": round(os.getloadavg()[0], 2),
    }


async def _soak(
    a: argparse.Namespace, work: Path, s: Setup, broker_port: int, api_port: int, serve_pid: int
) -> tuple[list[dict[str, float]], Readers]:
    r = Readers()
    rows: list[dict[str, float]] = []
    headers = {"Authorization": f"Bearer {s.app_key}"}
    timeout = httpx.Timeout(60.0, read=120.0)
    url = f"http://127.0.0.1:{api_port}/api/v1"
    out = a.out / "soak.csv"
    with _edges(work, s, broker_port, api_port, a.rate) as edges:
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=timeout) as client:
            tasks = [
                asyncio.create_task(_live(client, s.site, s.signals[-1], r)),
                asyncio.create_task(_probe(work, s.probe_key, broker_port, s.signals[-1], r)),
                asyncio.create_task(_board(client, s.site, a.board_rps, r)),
            ]
            total = a.minutes * 60.0
            progress = Progress(
                TextColumn("soak"),
                BarColumn(),
                TextColumn("{task.fields[info]}"),
                TimeRemainingColumn(),
                console=Console(stderr=True),
            )
            try:
                with progress, out.open("w", newline="") as f:
                    w = csv.DictWriter(f, COLUMNS)
                    w.writeheader()
                    bar = progress.add_task("soak", total=total, info="starting")
                    await _started(work, edges, r, tasks)
                    t0 = time.monotonic()
                    r.take()  # the series starts once every edge and the probe are through
                    nxt = t0
                    while True:
                        nxt += a.interval
                        await asyncio.sleep(max(0.0, nxt - time.monotonic()))
                        for t in tasks:
                            if t.done():
                                t.result()  # raises what stopped a reader
                                raise RuntimeError("a reader ended")
                        live, board = r.take()
                        now = time.monotonic() - t0
                        acked = _edge_acked(work, len(edges))[0]
                        store = sum(f.stat().st_size for f in work.glob("telemetry.duckdb*"))
                        row = sample(now, serve_pid, edges, live, board, acked, store / 1e6)
                        rows.append(row)
                        w.writerow(row)
                        f.flush()
                        info = (
                            f"serve {row['serve_rss_mb']:.0f} MB {row['serve_fds']} fds · "
                            f"edges {row['edges_rss_sum_mb']:.0f} MB · live p50 "
                            f"{row['live_p50_ms']} ms · board p50 {row['board_p50_ms']} ms · "
                            f"{acked} points"
                        )
                        progress.update(bar, completed=min(now, total), info=info)
                        if now >= total:
                            break
            finally:
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
        r.edge_totals = _edge_acked(work, len(edges))
    return rows, r


# ---------------------------------------------------------------------------------------------
# figures and the drawing
# ---------------------------------------------------------------------------------------------


def slope_per_h(rows: list[dict[str, float]], col: str) -> float:
    """Least-squares slope of ``col`` over the second half of the run, per hour."""
    half = rows[len(rows) // 2 :]
    t = np.array([x["t_s"] for x in half]) / 3600.0
    y = np.array([x[col] for x in half], dtype=float)
    if len(half) < 2 or np.ptp(t) == 0:
        return float("nan")
    return float(np.polyfit(t, y, 1)[0])


SERIES = (
    ("serve_rss", "serve_rss_mb", "MB"),
    ("serve_anon", "serve_anon_mb", "MB"),
    ("serve_file", "serve_file_mb", "MB"),
    ("serve_fds", "serve_fds", "fds"),
    ("edges_rss_sum", "edges_rss_sum_mb", "MB"),
    ("edges_rss_max", "edges_rss_max_mb", "MB"),
    ("edges_fds_sum", "edges_fds_sum", "fds"),
    ("edges_fds_max", "edges_fds_max", "fds"),
    ("store_file", "store_mb", "MB"),
)


def figures(rows: list[dict[str, float]], r: Readers, minutes: float, edges: int) -> bool:
    """Print the figures; whether every bound holds."""
    for name, col, unit in SERIES:
        ys = [x[col] for x in rows]
        emit(f"soak.{name}_start", ys[0], unit)
        emit(f"soak.{name}_end", ys[-1], unit)
        emit(f"soak.{name}_max", max(ys), unit)
        emit(f"soak.{name}_growth", round(slope_per_h(rows, col), 2), f"{unit}/h")
    for kind in ("live", "board"):
        p50, p99 = _col(rows, f"{kind}_p50_ms"), _col(rows, f"{kind}_p99_ms")
        note = "median of the interval p50s, the worst interval p99, the last interval p99"
        emit(f"soak.{kind}_latency_p50", _pct(p50, 50), "ms", note=note)
        emit(f"soak.{kind}_latency_p99_max", max(p99, default=float("nan")), "ms", note=note)
        emit(f"soak.{kind}_latency_p99_end", p99[-1] if p99 else float("nan"), "ms", note=note)
    acked, pending, dropped = r.edge_totals
    emit("soak.points_acked", acked, "points", pending=pending, dropped=dropped)
    emit(
        "soak.probes",
        r.probes_seen,
        "values seen on /live",
        sent=r.probes_sent,
        superseded=r.probes_superseded,
        in_flight=len(r.pending),
    )
    emit("soak.board_errors", r.board_errors, "requests")
    emit("soak.live_reconnects", r.live_reconnects, "streams", errors=r.live_errors[:5])
    problems = []
    serve_g = slope_per_h(rows, "serve_rss_mb")
    if not serve_g < SERVE_RSS_BOUND_MB_H:
        problems.append(f"serve RSS grows {serve_g:.1f} MB/h (bound {SERVE_RSS_BOUND_MB_H})")
    edge_g = slope_per_h(rows, "edges_rss_sum_mb") / edges
    if not edge_g < EDGE_RSS_BOUND_MB_H:
        problems.append(
            f"the edges' RSS grows {edge_g:.2f} MB/h per edge (bound {EDGE_RSS_BOUND_MB_H})"
        )
    for col in ("serve_fds", "edges_fds_sum"):
        moved = abs(slope_per_h(rows, col)) * minutes / 60.0
        if not moved < FD_BOUND:
            problems.append(f"{col} moves {moved:.1f} over the run (bound {FD_BOUND})")
    if rows[-1]["edges_alive"] < edges:
        problems.append(f"{edges - rows[-1]['edges_alive']:.0f} edge processes ended")
    unseen = r.probes_sent - r.probes_seen - r.probes_superseded
    if len(r.pending) > 2:  # one a second: more than the last two are not on their way
        problems.append(f"{unseen} probe values not seen on /live")
    if r.board_errors:
        problems.append(f"{r.board_errors} board requests failed")
    if r.live_errors:
        problems.append(f"{len(r.live_errors)} /live streams broke")
    emit("soak.bounds_ok", not problems, "", problems=problems)
    return not problems


def _col(rows: list[dict[str, float]], col: str) -> list[float]:
    """A column's values, without the intervals that had none (NaN)."""
    return [x[col] for x in rows if not np.isnan(x[col])]


def svg(rows: list[dict[str, float]], path: Path, title: str) -> None:
    """The time series as small multiples in one SVG (no plotting library needed)."""
    panels = (
        ("andon serve RSS, anon (MB)", ("serve_rss_mb", "serve_anon_mb")),
        ("andon serve open fds", ("serve_fds",)),
        ("edges RSS (MB): sum", ("edges_rss_sum_mb",)),
        ("edges RSS (MB): max", ("edges_rss_max_mb",)),
        ("edges open fds: sum", ("edges_fds_sum",)),
        ("live latency (ms): p50, p99", ("live_p50_ms", "live_p99_ms")),
        ("board latency (ms): p50, p99", ("board_p50_ms", "board_p99_ms")),
        ("telemetry store file (MB)", ("store_mb",)),
        ("load average (1 min)", ("load1",)),
    )
    w, h, pad, cols = 420, 180, 40, 2
    colours = ("#1f77b4", "#d62728")
    n_rows = (len(panels) + cols - 1) // cols
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w * cols}" height="{h * n_rows + 30}" '
        'font-family="sans-serif" font-size="11">',
        f'<text x="10" y="18" font-size="13">{title}</text>',
    ]
    t = [x["t_s"] / 60.0 for x in rows]
    tmax = max(t[-1], 1e-9)
    for k, (label, cols_) in enumerate(panels):
        x0, y0 = (k % cols) * w, 30 + (k // cols) * h
        ys = [x[c] for c in cols_ for x in rows if not np.isnan(x[c])]
        lo, hi = (min(ys), max(ys)) if ys else (0.0, 1.0)
        lo = min(lo, 0.0) if lo >= 0 and hi > 0 and lo < 0.2 * hi else lo
        hi = hi if hi > lo else lo + 1.0
        pw, ph = w - 2 * pad, h - 2 * pad
        out.append(f'<text x="{x0 + pad}" y="{y0 + 15}">{label}</text>')
        out.append(
            f'<rect x="{x0 + pad}" y="{y0 + pad}" width="{pw}" height="{ph}" fill="none" '
            'stroke="#999"/>'
        )
        for v, yy in ((hi, y0 + pad), (lo, y0 + pad + ph)):
            out.append(f'<text x="{x0 + 2}" y="{yy + 4}">{v:.4g}</text>')
        out.append(f'<text x="{x0 + pad + pw - 40}" y="{y0 + h - 12}">{tmax:.0f} min</text>')
        for c, colour in zip(cols_, colours, strict=False):
            pts = [
                f"{x0 + pad + pw * ti / tmax:.1f},"
                f"{y0 + pad + ph * (1 - (x[c] - lo) / (hi - lo)):.1f}"
                for ti, x in zip(t, rows, strict=True)
                if not np.isnan(x[c])
            ]
            if pts:
                out.append(
                    f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" '
                    f'points="{" ".join(pts)}"/>'
                )
    out.append("</svg>")
    path.write_text("\n".join(out) + "\n", encoding="utf-8")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--minutes", type=float, default=30.0)
    p.add_argument("--edges", type=int, default=20)
    p.add_argument("--out", type=Path, default=Path(".andon/soak"))
    p.add_argument("--rate", type=float, default=50.0, help="points/s per edge")
    p.add_argument("--interval", type=float, default=10.0, help="seconds between samples")
    p.add_argument("--board-rps", type=float, default=2.0, help="board requests per second")
    p.add_argument(
        "--store-memory-limit",
        default="32MB",
        help="DuckDB memory limit of andon serve's store (below the default 256MB so that "
        "the cache reaches its bound within a short run)",
    )
    p.add_argument(
        "--serve-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an environment variable for andon serve only (repeatable), e.g. "
        "MALLOC_ARENA_MAX=2 to compare allocator settings",
    )
    p.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    a = p.parse_args()
    if a.edges < 1 or a.minutes <= 0 or a.interval <= 0:
        p.error("--edges, --minutes and --interval must be positive")
    extra_env = dict(kv.split("=", 1) for kv in a.serve_env if "=" in kv)
    if len(extra_env) != len(a.serve_env):
        p.error("--serve-env takes NAME=VALUE")
    a.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="andon-soak-"))
    try:
        db_url = f"sqlite:///{work / 'platform.db'}"
        s = asyncio.run(_provision(db_url, a.edges))
        keys = [*s.edge_keys, s.probe_key]
        serve = _serve(work, db_url, broker_port := _free_port(), a.store_memory_limit, extra_env)
        with _broker(work, keys, broker_port), serve as served:
            rows, r = asyncio.run(_soak(a, work, s, broker_port, *served))
        svg(
            rows,
            a.out / "soak.svg",
            f"andon soak: {a.edges} edges x {a.rate:g} points/s, {a.minutes:g} min ({_machine()})",
        )
        ok = figures(rows, r, a.minutes, a.edges)
    finally:
        if a.keep:
            print(f"work directory: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()

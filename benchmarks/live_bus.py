"""Latency from ingest to an open live feed, through the live bus (issue 11 item 3).

A real ``andon`` API (uvicorn on loopback, wall clock, in-memory DuckDB store, the bus of
``--bus``) holds ``--feeds`` open ``/sites/{id}/live`` feeds (interval 60 s: between ticks only
the bus brings news). ``--points`` times, every ``--every-ms``, one sample of a new value is
POSTed to ``/sites/{id}/ingest`` with an edge key (cycling over the site's signals, so no two
land on one signal within a coalescing window). Each feed records when each value arrives;
the latency is from just before the POST to the arrival, per feed and point.

Figures (one JSON object per line on stdout), in ms: ``live_latency_p50``,
``live_latency_p99``, ``live_latency_max``; and ``live_delivered`` (fraction of the points every
feed received). The feed coalesces over 0.1 s (``andon.api.live.WINDOW_S``), which bounds the
latency from below.

Run: ``.venv/bin/python benchmarks/live_bus.py [--bus inprocess|nats] [--feeds N]
[--points N] [--every-ms MS]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import tempfile
import threading
import time
from collections.abc import Coroutine
from importlib.resources import files
from pathlib import Path
from typing import Any, TypeVar

import httpx
import numpy as np
import uvicorn

from andon.api import PREFIX, create_app
from andon.model.loader import parse_plant
from andon.platform import Platform, Role
from andon.platform.config import Settings
from andon.store import DuckDBStore
from store_ingest import machine

T = TypeVar("T")
PASSWORD = "a long benchmark password"


def emit(figure: str, value: float, unit: str, **extra: Any) -> None:
    print(
        json.dumps({"figure": figure, "value": value, "unit": unit, "machine": machine(), **extra}),
        flush=True,
    )


class Server:
    """uvicorn in a thread with its own loop, on a free loopback port."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(256)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(
            uvicorn.Config(app, log_level="warning", ws="none", lifespan="on")
        )
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._main, daemon=True)

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self.server.serve(sockets=[self.sock]))

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=60)

    def __enter__(self) -> Server:
        self.thread.start()
        httpx.get(self.url + PREFIX + "/health", timeout=30)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


async def feed(
    client: httpx.AsyncClient,
    path: str,
    headers: dict[str, str],
    got: dict[float, float],
    ready: asyncio.Event,
) -> None:
    async with client.stream(
        "GET", path, headers=headers, params={"interval_s": 60, "max_ticks": 2}
    ) as r:
        event = ""
        async for line in r.aiter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event == "alerts":
                ready.set()  # the first tick is complete
            elif line.startswith("data: ") and event == "values" and ready.is_set():
                now = time.monotonic()
                for v in json.loads(line[6:]):
                    got.setdefault(v["value"], now)


async def drive(args: argparse.Namespace, srv: Server, site: dict[str, Any]) -> list[float]:
    api = srv.url + PREFIX
    plant = parse_plant((files("andon.sim") / "plants" / "demo.yaml").read_text())
    signals = list(plant.signal_paths())
    async with httpx.AsyncClient(base_url=api, timeout=30) as client:
        r = await client.post(
            "/auth/login", json={"email": "admin@bench.example", "password": PASSWORD}
        )
        admin = {"Authorization": f"Bearer {r.json()['access_token']}"}
        r = await client.post(
            "/api-keys",
            headers=admin,
            json={"name": "edge", "kind": "edge", "permissions": ["ingest:write", "site:read"]},
        )
        edge = {"Authorization": f"Bearer {r.json()['secret']}"}
        gots: list[dict[float, float]] = [{} for _ in range(args.feeds)]
        readies = [asyncio.Event() for _ in range(args.feeds)]
        path = f"/sites/{site['id']}/live"
        tasks = [
            asyncio.create_task(feed(client, path, admin, g, e))
            for g, e in zip(gots, readies, strict=True)
        ]
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in readies)), 30)
        sent: dict[float, float] = {}
        t_us = time.time_ns() // 1000
        for i in range(args.points):
            value = float(i + 1_000_000)
            sent[value] = time.monotonic()
            r = await client.post(
                f"/sites/{site['id']}/ingest",
                headers=edge,
                json={
                    "samples": {
                        "names": [signals[i % len(signals)]],
                        "index": [0],
                        "ts": [t_us + i],
                        "value": [value],
                        "quality": [0],
                    }
                },
            )
            r.raise_for_status()
            await asyncio.sleep(args.every_ms / 1000)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(len(g) < len(sent) for g in gots):
            await asyncio.sleep(0.05)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    lat = [(g[v] - t0) * 1000 for g in gots for v, t0 in sent.items() if v in g]
    emit("live_delivered", len(lat) / (len(sent) * args.feeds), "fraction", bus=args.bus)
    return lat


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bus", choices=["inprocess", "nats"], default="inprocess")
    p.add_argument("--nats-url", default="nats://127.0.0.1:4222")
    p.add_argument("--feeds", type=int, default=5)
    p.add_argument("--points", type=int, default=200)
    p.add_argument("--every-ms", type=float, default=50.0)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            database_url=f"sqlite:///{Path(tmp) / 'meta.db'}",
            limits={"api_rps": 0, "auth_per_s": 0, "ingest_points_per_s": 0, "principal_rps": 0},
            monitoring={"alert_interval_s": 0},
            security={"secrets_dir": str(Path(tmp) / "secrets"), "max_feeds_per_principal": 100},
            bus={"kind": args.bus, "url": args.nats_url},
        )
        store = DuckDBStore.open(None)
        with Server(create_app(settings, store=store)) as srv:
            pf: Platform = srv.app.state.services.platform
            srv.run(pf.create_tenant("bench", "Bench"))
            srv.run(
                pf.create_user(
                    "bench", "admin@bench.example", PASSWORD, [(Role.TENANT_ADMIN, None)]
                )
            )
            yaml = (files("andon.sim") / "plants" / "demo.yaml").read_text()
            site = srv.run(pf.create_site("bench", yaml))
            lat = asyncio.run(drive(args, srv, site))
        asyncio.run(store.close())
    a = np.array(lat)
    extra = {"bus": args.bus, "feeds": args.feeds, "points": args.points}
    emit("live_latency_p50", round(float(np.percentile(a, 50)), 1), "ms", **extra)
    emit("live_latency_p99", round(float(np.percentile(a, 99)), 1), "ms", **extra)
    emit("live_latency_max", round(float(a.max()), 1), "ms", **extra)


if __name__ == "__main__":
    main()

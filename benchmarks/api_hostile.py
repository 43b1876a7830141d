"""Latency of ``/health`` and an authenticated board request while the API is attacked.

Sets up as ``benchmarks/api.py`` does (a ``--machines`` plant, ``--hours`` of simulated data,
a SQLite metadata database, ``andon serve`` with one uvicorn worker on loopback), adds an
engineer, then measures twice for ``--seconds`` each:

* ``baseline``: nothing else runs;
* ``attack``: another process floods ``POST /auth/login`` with ``--flood`` concurrent
  anonymous logins (unknown and real emails, wrong passwords, each from a new forwarded
  address so no per-source limit stops it: the worst case for password hashing) while
  ``--uploaders`` clients ``PUT`` the 306-byte nested-alias YAML (387 million values if
  expanded) as the site's model, again and again.

During both, one client asks ``GET /api/v1/health`` and another ``GET /sites/{id}/board``
(as the viewer), each every ``--interval`` seconds. Figures, one JSON line each (as the
other benchmarks): ``api_hostile.<phase>.health.p99`` and ``.board.p99`` (ms), their
``.p50``, and for the attack the answers the attackers got (``logins_per_s``,
``yaml_per_s``, statuses).

Run: ``.venv/bin/python benchmarks/api_hostile.py [--seconds 20] [--flood 32]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from andon.model.clock import wall_clock
from andon.platform import Database, Platform, Role
from api import PASSWORD, TENANT, emit, free_port, plant_with, prepare

__all__ = ["main"]

LAUGHS = (
    "a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
    "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
    "e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
    "g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\nh: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]\n"
    "i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]\n"
)
ENGINEER = "engineer@bench.example"
VIEWER = "bench@bench.example"


async def add_engineer(d: Path) -> None:
    db = Database(f"sqlite:///{d / 'meta.db'}")
    try:
        pf = Platform(db, wall_clock)
        await pf.start()
        await pf.create_user(TENANT, ENGINEER, PASSWORD, [(Role.ENGINEER, None)])
    finally:
        await db.close()


async def _attack(
    base: str, site: str, flood: int, uploaders: int, seconds: float
) -> dict[str, Any]:
    logins: Counter[int] = Counter()
    uploads: Counter[int] = Counter()
    async with httpx.AsyncClient(base_url=base, timeout=120) as client:
        r = await client.post(
            "/api/v1/auth/login",
            json={"email": ENGINEER, "password": PASSWORD},
            headers={"X-Forwarded-For": "198.51.100.1"},
        )
        r.raise_for_status()
        engineer = {"Authorization": f"Bearer {r.json()['access_token']}"}
        deadline = time.perf_counter() + seconds

        async def login_flood(i: int) -> None:
            n = 0
            while time.perf_counter() < deadline:
                n += 1
                email = VIEWER if n % 4 == 0 else f"ghost{i}-{n}@x.example"
                xff = (
                    f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}"
                )
                try:
                    r = await client.post(
                        "/api/v1/auth/login",
                        json={"email": email, "password": "wrong password"},
                        headers={"X-Forwarded-For": xff},
                    )
                    logins[r.status_code] += 1
                except httpx.TransportError:
                    logins[0] += 1

        async def yaml_bomb() -> None:
            while time.perf_counter() < deadline:
                r = await client.put(
                    f"/api/v1/sites/{site}/model", json={"model_yaml": LAUGHS}, headers=engineer
                )
                uploads[r.status_code] += 1

        t0 = time.perf_counter()
        await asyncio.gather(
            *(login_flood(i) for i in range(flood)), *(yaml_bomb() for _ in range(uploaders))
        )
        elapsed = time.perf_counter() - t0
    return {
        "logins_per_s": sum(logins.values()) / elapsed,
        "login_statuses": dict(logins),
        "yaml_per_s": sum(uploads.values()) / elapsed,
        "yaml_statuses": dict(uploads),
    }


def attack(base: str, site: str, flood: int, uploaders: int, seconds: float, out: Any) -> None:
    out.put(asyncio.run(_attack(base, site, flood, uploaders, seconds)))


async def probe(base: str, site: str, seconds: float, interval: float) -> dict[str, list[float]]:
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        r = await client.post(
            "/api/v1/auth/login",
            json={"email": VIEWER, "password": PASSWORD},
            headers={"X-Forwarded-For": "198.51.100.2"},
        )
        r.raise_for_status()
        viewer = {"Authorization": f"Bearer {r.json()['access_token']}"}
        got: dict[str, list[float]] = {"health": [], "board": []}
        deadline = time.perf_counter() + seconds

        async def ask(name: str, url: str, headers: dict[str, str]) -> None:
            while time.perf_counter() < deadline:
                t = time.perf_counter()
                r = await client.get(url, headers=headers)
                got[name].append(time.perf_counter() - t)
                r.raise_for_status()
                await asyncio.sleep(interval)

        await asyncio.gather(
            ask("health", "/api/v1/health", {}),
            ask("board", f"/api/v1/sites/{site}/board", viewer),
        )
    return got


def report(phase: str, got: dict[str, list[float]]) -> None:
    for name, lat in got.items():
        ms = np.array(lat) * 1e3
        emit(f"api_hostile.{phase}.{name}.p99", round(float(np.percentile(ms, 99)), 2), "ms")
        emit(f"api_hostile.{phase}.{name}.p50", round(float(np.percentile(ms, 50)), 2), "ms")
        emit(f"api_hostile.{phase}.{name}.requests", len(ms), "requests")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--machines", type=int, default=30)
    ap.add_argument("--hours", type=float, default=1.0)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--interval", type=float, default=0.05)
    ap.add_argument("--flood", type=int, default=32)
    ap.add_argument("--uploaders", type=int, default=2)
    args = ap.parse_args()
    text, plant = plant_with(args.machines)
    with tempfile.TemporaryDirectory(prefix="andon-bench-hostile-") as tmp:
        d = Path(tmp)
        site = asyncio.run(prepare(d, text, plant, args.hours))
        asyncio.run(add_engineer(d))
        port = free_port()
        cfg = d / "andon.yaml"
        cfg.write_text(
            yaml.safe_dump(
                {
                    "host": "127.0.0.1",
                    "port": port,
                    "database_url": f"sqlite:///{d / 'meta.db'}",
                    "telemetry_url": f"duckdb://{d / 'telemetry.duckdb'}",
                    "trust_proxy_headers": True,
                    "limits": {"api_rps": 0, "principal_rps": 0},
                }
            ),
            encoding="utf-8",
        )
        andon = Path(sys.executable).with_name("andon")
        server = subprocess.Popen(
            [str(andon), "serve", "--config", str(cfg)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(300):
                try:
                    if httpx.get(f"{base}/api/v1/health").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
            asyncio.run(probe(base, site, 2.0, args.interval))  # warm the board's caches
            report("baseline", asyncio.run(probe(base, site, args.seconds, args.interval)))
            out: Any = mp.get_context("spawn").Queue()
            attacker = mp.get_context("spawn").Process(
                target=attack,
                args=(base, site, args.flood, args.uploaders, args.seconds + 2, out),
            )
            attacker.start()
            time.sleep(1.0)  # let the flood build up
            report("attack", asyncio.run(probe(base, site, args.seconds, args.interval)))
            done = out.get(timeout=args.seconds + 120)
            attacker.join(timeout=30)
            emit("api_hostile.attack.logins_per_s", round(done["logins_per_s"], 1), "requests/s")
            emit("api_hostile.attack.yaml_per_s", round(done["yaml_per_s"], 2), "requests/s")
            statuses = {"logins": done["login_statuses"], "yaml": done["yaml_statuses"]}
            print(json.dumps({"attack_statuses": statuses}), flush=True)
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()


if __name__ == "__main__":
    main()

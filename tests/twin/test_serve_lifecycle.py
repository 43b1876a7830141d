"""``andon serve`` as a real process (issue 17): it stops promptly on SIGTERM even while an
idle TLS keep-alive client stays connected; its twin job workers die with it when it is
killed with ``kill -9``; a second ``andon serve`` on the same metadata database leaves the
first one's running jobs alone, and marks them interrupted once the first one is dead."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sqlite3
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from andon.model.clock import wall_clock
from andon.platform import Database, Platform, Role
from tests.api.calls import LINE
from tests.api.world import demo_yaml
from tests.connect.pki import make_ca, tls_leaf
from tests.edge.broker import free_port

SECRET = "s" * 40
ADMIN = "admin@ta.example"
PASSWORD = "a long test password"
DEADLINE_S = 60.0


def _until(what: str, check: Callable[[], Any], timeout: float = DEADLINE_S) -> Any:
    """Poll ``check`` until it returns something truthy, failing after ``timeout`` s."""
    end = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


@dataclass
class Serve:
    """One ``andon serve --config`` process."""

    config: Path
    port: int
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as f:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "andon.cli", "serve", "--config", str(self.config)],
                stdout=f,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )

        def up() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"andon serve exited: {self.log.read_text()[-2000:]}")
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", self.port)) == 0

        _until("andon serve to listen", up)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def _config(tmp: Path, name: str, db_url: str, **extra: Any) -> tuple[Path, int]:
    port = free_port()
    doc = {
        "port": port,
        "database_url": db_url,
        "telemetry_url": f"duckdb://{tmp / f'{name}.duckdb'}",
        "secret_key": SECRET,
        "web": False,
        "monitoring": {"alert_interval_s": 0},
        "limits": {"api_rps": 0, "ingest_points_per_s": 0, "auth_per_s": 0},
        **extra,
    }
    path = tmp / f"{name}.yaml"
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path, port


@pytest.mark.slow
def test_sigterm_stops_serve_promptly_with_an_idle_tls_keep_alive_client(tmp_path: Path) -> None:
    """uvicorn waits for open connections at shutdown; an idle TLS client that never answers
    the close kept ``andon serve`` up for 30 s. The wait is bounded (``shutdown_grace_s``)."""
    ca = make_ca(tmp_path / "pki", "ca")
    leaf = tls_leaf(tmp_path / "pki", ca, "serve")
    config, port = _config(
        tmp_path,
        "tls",
        f"sqlite:///{tmp_path / 'platform.db'}",
        tls={"certfile": str(leaf.cert), "keyfile": str(leaf.key)},
        shutdown_grace_s=2,
    )
    serve = Serve(config, port, tmp_path / "serve.log")
    serve.start()
    try:
        ctx = ssl.create_default_context(cafile=str(ca.cert))
        raw = socket.create_connection(("127.0.0.1", port), timeout=30)
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            tls.sendall(
                b"GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n"
            )
            head = tls.recv(65536)
            assert head.startswith(b"HTTP/1.1 200"), head[:200]
            # idle now, and it never reads again: the server's close is never answered
            t0 = time.monotonic()
            assert serve.proc is not None
            serve.proc.send_signal(signal.SIGTERM)
            code = serve.proc.wait(30)
            took = time.monotonic() - t0
        # uvicorn re-raises the signal it handled once it has stopped
        assert code in (0, -signal.SIGTERM), serve.log.read_text(errors="replace")[-2000:]
        assert took < 6.0, f"andon serve took {took:.1f} s to stop"
    finally:
        serve.close()


async def _provision(db_url: str) -> str:
    """Tenant ``ta`` with the demo plant as a site and an administrator; the site's id."""
    pf = Platform(Database(db_url), wall_clock, secret_key=SECRET)
    await pf.start()
    try:
        await pf.create_tenant("ta", "TA")
        site = (await pf.create_site("ta", demo_yaml()))["id"]
        await pf.create_user("ta", ADMIN, PASSWORD, [(Role.TENANT_ADMIN, None)])
        return str(site)
    finally:
        await pf.db.close()


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie no longer does: nothing may reap it in a container)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _workers(parent: int) -> list[int]:
    """The twin job worker processes ``parent`` spawned (multiprocessing's spawn_main)."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmd = (d / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == parent and b"spawn_main" in cmd:
            out.append(int(d.name))
    return out


def _job(db: Path, job_id: str) -> tuple[str, str | None, int | None]:
    """(status, error, heartbeat_at) of a twin job, read from the metadata database."""
    with sqlite3.connect(db) as con:
        row = con.execute(
            "SELECT status, error, heartbeat_at FROM twin_jobs WHERE id = ?", [job_id]
        ).fetchone()
    assert row is not None
    return str(row[0]), row[1], row[2]


@pytest.mark.slow
def test_job_workers_die_with_serve_and_a_second_serve_spares_live_jobs(tmp_path: Path) -> None:
    """Serve A runs a long twin job in a worker process; serve B starts on the same metadata
    database and leaves the job running (A's heartbeat is fresh); ``kill -9`` of A ends its
    worker at once, and B marks the job interrupted once A's heartbeat is stale."""
    db = tmp_path / "platform.db"
    db_url = f"sqlite:///{db}"
    site = asyncio.run(_provision(db_url))
    twin = {"workers": 1, "heartbeat_s": 0.5}
    a = Serve(*_config(tmp_path, "a", db_url, twin=twin), tmp_path / "a.log")
    b = Serve(*_config(tmp_path, "b", db_url, twin=twin), tmp_path / "b.log")
    a.start()
    try:
        api = httpx.Client(base_url=f"http://127.0.0.1:{a.port}/api/v1", timeout=30)
        r = api.post("/auth/login", json={"email": ADMIN, "password": PASSWORD})
        assert r.status_code == 200, r.text
        auth = {"Authorization": f"Bearer {r.json()['access_token']}"}
        body = {"line": LINE, "hours": 720, "replications": 50}
        r = api.post(f"/sites/{site}/twin/jobs", json=body, headers=auth)
        assert r.status_code == 202, r.text
        job = r.json()["id"]
        api.close()
        workers = _until("A's worker process", lambda: _workers(a.pid))
        _until("the job to run", lambda: _job(db, job)[0] == "running")

        # a second instance on the same database: A's running job is left alone
        b.start()
        t_b = time.time()

        # B has swept for stale jobs at start and at several beats since (every 0.5 s)
        def beaten_past(t: float) -> bool:
            status, error, beat = _job(db, job)
            assert (status, error) == ("running", None), "serve B interrupted a live job"
            return (beat or 0) > t * 1e6

        _until("A's beats past B's start", lambda: beaten_past(t_b + 2.0))

        # kill -9 of A: its worker dies with it, and B marks A's job interrupted
        assert a.proc is not None
        a.proc.send_signal(signal.SIGKILL)
        a.proc.wait(10)
        t_kill = time.monotonic()
        _until("A's workers to die", lambda: not any(_alive(p) for p in workers), timeout=10)
        died_in = time.monotonic() - t_kill
        assert died_in < 5.0, f"workers outlived andon serve by {died_in:.1f} s"
        _until("B to mark the job interrupted", lambda: _job(db, job)[0] == "failed", timeout=15)
        assert _job(db, job)[1] == "interrupted"
        assert b.proc is not None and b.proc.poll() is None
    finally:
        a.close()
        b.close()


def test_a_runner_interrupts_only_jobs_whose_owner_stopped_beating(tmp_path: Path) -> None:
    """The owner rule without processes, on a wall clock the test moves: a second runner's
    start leaves a job of a runner that beats alone, and marks it interrupted once that
    runner has missed three beats; a row without owner (from before owners) goes at start."""
    from andon.platform.twin_jobs import SqlJobStore
    from andon.store import DuckDBStore
    from andon.twin.jobs import TwinJobs

    async def go() -> None:
        pf = Platform(Database(f"sqlite:///{tmp_path / 'm.db'}"), wall_clock, secret_key=SECRET)
        await pf.start()
        telemetry = DuckDBStore.open(None)
        now = [1_800_000_000_000_000]
        try:
            await pf.create_tenant("ta", "TA")
            site = str((await pf.create_site("ta", demo_yaml()))["id"])
            store = SqlJobStore(pf.db)

            def runner() -> TwinJobs:
                return TwinJobs(store, telemetry, wall_clock, heartbeat_s=1.0, wall=lambda: now[0])

            a, b = runner(), runner()

            def row(owner: str | None) -> dict[str, Any]:
                return {
                    "id": os.urandom(16).hex(),
                    "tenant_id": "ta",
                    "site_id": site,
                    "line": LINE,
                    "created_by": "test",
                    "created_at": now[0],
                    "status": "running",
                    "progress": 0.5,
                    "request": {"line": LINE, "hours": 1, "replications": 2},
                    "owner": owner,
                    "heartbeat_at": None if owner is None else now[0],
                }

            live, legacy = row(a.instance), row(None)
            await store.create(live)
            await store.create(legacy)

            async def status(r: dict[str, Any]) -> tuple[str, str | None]:
                got = await store.get("ta", site, r["id"])
                assert got is not None
                return got["status"], got["error"]

            assert await b.start() == 1  # the row without owner only
            assert await status(legacy) == ("failed", "interrupted")
            now[0] += 2_900_000  # A missed two beats and a bit: not yet stale
            assert await b.start() == 0 and await status(live) == ("running", None)
            await store.beat(a.instance, now[0])  # A beats again
            now[0] += 2_900_000
            assert await b.start() == 0 and await status(live) == ("running", None)
            now[0] += 200_000  # three beats (3 s) since A's last: A is dead
            assert await b.start() == 1 and await status(live) == ("failed", "interrupted")
            await b.stop()
        finally:
            await telemetry.close()
            await pf.db.close()

    asyncio.run(go())

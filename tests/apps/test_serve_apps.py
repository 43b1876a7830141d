"""``andon serve`` runs installed apps (settings ``apps``): a real ``andon serve`` process, an
app published with ``andon app publish`` (or ``POST /apps/catalog`` by a platform
administrator) and installed through the API runs sandboxed
(status ``running`` with a pid), and stopping the service stops the app with it (its pid is
gone, not orphaned). ``andon serve --check`` says whether apps can run.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner, Result

from andon.apps.sandbox import check_sandbox
from andon.apps.supervisor import AppSupervisor, InstanceSpec, InstanceState
from andon.cli import app
from andon.commands.platform import platform_app
from andon.model.clock import wall_clock
from andon.platform import Database, Platform, Role
from andon.platform.config import load_settings
from andon.platform.tables import audit_log
from tests.api.appworld import APP_DIRS, PERMS, report_of
from tests.api.world import demo_yaml
from tests.edge.broker import free_port, wait_port

SECRET = "s" * 40
ADMIN = ("admin@ta.example", "a long tenant password")
ROOT = ("root@platform.example", "a long root password")

needs_sandbox = pytest.mark.skipif(not check_sandbox().ok, reason=check_sandbox().reason)


def _cli(*args: str) -> Result:
    """``andon ARGS`` in this process (``andon serve`` itself runs as a process below)."""
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})


def _config(tmp: Path, port: int, **apps: Any) -> Path:
    cfg = tmp / "andon.yaml"
    cfg.write_text(
        json.dumps(
            {
                "port": port,
                "database_url": f"sqlite:///{tmp / 'platform.db'}",
                "telemetry_url": f"duckdb://{tmp / 'telemetry.duckdb'}",
                "secret_key": SECRET,
                "web": False,
                "monitoring": {"alert_interval_s": 0},
                "limits": {"api_rps": 0, "auth_per_s": 0, "principal_rps": 0},
                "apps": {"data_dir": str(tmp / "apps"), "poll_s": 0.2, **apps},
            }
        ),
        encoding="utf-8",
    )
    return cfg


async def _provision(db_url: str) -> str:
    """Tenant ``ta`` with the demo site and its administrator ``ADMIN``; the site's id."""
    pf = Platform(Database(db_url), wall_clock, secret_key=SECRET)
    await pf.start()
    try:
        await pf.create_tenant("platform", "Platform")
        await pf.create_user("platform", *ROOT, [(Role.PLATFORM_ADMIN, None)])
        await pf.create_tenant("ta", "TA")
        site = str((await pf.create_site("ta", demo_yaml()))["id"])
        await pf.create_user("ta", *ADMIN, [(Role.TENANT_ADMIN, None)])
        return site
    finally:
        await pf.db.close()


def _descendants(root: int) -> set[int]:
    """The processes below ``root``, from ``/proc``."""
    kids: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                stat = Path(f"/proc/{name}/stat").read_bytes()
            except OSError:
                continue
            ppid = int(stat[stat.rindex(b")") + 2 :].split()[1])
            kids.setdefault(ppid, []).append(int(name))
    out: set[int] = set()
    todo = list(kids.get(root, []))
    while todo:
        pid = todo.pop()
        out.add(pid)
        todo.extend(kids.get(pid, []))
    return out


def _alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    return stat[stat.rindex(b")") + 2 :].split()[0] != b"Z"


def test_serve_check_reports_apps(tmp_path: Path) -> None:
    off = _cli("serve", "--check", "--config", str(_config(tmp_path, 8080)))
    assert off.exit_code == 0, off.output
    assert "apps off (apps.enabled: false)" in off.output
    on = _cli("serve", "--check", "--config", str(_config(tmp_path, 8080, enabled=True)))
    assert on.exit_code == 0, on.output
    sb = check_sandbox()
    want = "apps run sandboxed" if sb.ok else "apps will be refused"
    assert want in on.output and sb.reason in on.output.replace("\n", ""), on.output
    bad = _cli("serve", "--check", "--config", str(_config(tmp_path, 8080, poll_s=0)))
    assert bad.exit_code == 2
    assert "apps.poll_s" in bad.output, bad.output


def test_publish_refuses_what_it_cannot_publish(tmp_path: Path) -> None:
    cfg = _config(tmp_path, 8080)
    app_dir = APP_DIRS["0.1.0"]
    other = tmp_path / "other.json"
    other.write_text(json.dumps(report_of(APP_DIRS["0.2.0"])), encoding="utf-8")
    got = _cli("app", "publish", str(app_dir), "--report", str(other), "--config", str(cfg))
    assert got.exit_code == 2
    assert "is for 'probe' '0.2.0'" in got.output, got.output
    failed = tmp_path / "failed.json"
    failed.write_text(json.dumps({**report_of(app_dir), "ok": False}), encoding="utf-8")
    got = _cli("app", "publish", str(app_dir), "--report", str(failed), "--config", str(cfg))
    assert got.exit_code == 2
    assert "did not pass its test run" in got.output, got.output
    junk = tmp_path / "junk.json"
    junk.write_text("[1, 2", encoding="utf-8")
    got = _cli("app", "publish", str(app_dir), "--report", str(junk), "--config", str(cfg))
    assert got.exit_code == 2
    assert "junk.json" in got.output, got.output


@needs_sandbox
@pytest.mark.slow
def test_serve_runs_an_installed_app_and_stops_it(tmp_path: Path) -> None:
    port = free_port()
    cfg = _config(tmp_path, port, enabled=True)
    site = asyncio.run(_provision(f"sqlite:///{tmp_path / 'platform.db'}"))
    app_dir = APP_DIRS["0.1.0"]
    report = tmp_path / "report.json"
    report.write_text(json.dumps(report_of(app_dir, precision=0.9, recall=0.8)), encoding="utf-8")

    pub = _cli("app", "publish", str(app_dir), "--report", str(report), "--config", str(cfg))
    assert pub.exit_code == 0, pub.output
    assert "published probe 0.1.0" in pub.output
    again = _cli("app", "publish", str(app_dir), "--report", str(report), "--config", str(cfg))
    assert again.exit_code == 2 and "already published" in again.output, again.output

    log = tmp_path / "serve.log"
    with log.open("ab") as f:
        serve = subprocess.Popen(
            [sys.executable, "-m", "andon.cli", "serve", "--config", str(cfg)],
            stdout=f,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    api = httpx.Client(base_url=f"http://127.0.0.1:{port}/api/v1", timeout=30)
    try:
        wait_port(port, up=True, timeout=60)
        r = api.post("/auth/login", json={"email": ADMIN[0], "password": ADMIN[1]})
        assert r.status_code == 200, r.text
        api.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
        r = api.post(
            "/apps/installations",
            json={"app_id": "probe", "site_ids": [site], "accepted_permissions": PERMS["0.1.0"]},
        )
        assert r.status_code == 201, r.text
        iid = r.json()["id"]
        deadline = time.monotonic() + 60
        while True:
            status = api.get(f"/apps/installations/{iid}").json()["status"]
            if status["state"] == "running" and status["processes"] > 0:
                break
            assert time.monotonic() < deadline, (status, log.read_text(errors="replace")[-3000:])
            time.sleep(0.2)
        assert status["sandboxed"] is True

        # publishing through the API: platform administrators only
        v2 = APP_DIRS["0.2.0"]
        body = {"app_dir": str(v2), "report": report_of(v2, precision=0.8)}
        r = api.post("/apps/catalog", json=body)
        assert r.status_code == 403, r.text
        r = api.post("/auth/login", json={"email": ROOT[0], "password": ROOT[1]})
        root = {"Authorization": f"Bearer {r.json()['access_token']}"}
        r = api.post("/apps/catalog", json={**body, "app_dir": str(tmp_path)}, headers=root)
        assert r.status_code == 422 and "manifest" in r.text, r.text
        r = api.post("/apps/catalog", json=body, headers=root)
        assert r.status_code == 201, r.text
        assert r.json()["version"] == "0.2.0" and r.json()["versions"] == ["0.2.0", "0.1.0"]
        r = api.post("/apps/catalog", json=body, headers=root)
        assert r.status_code == 409, r.text
        # the app's processes: bubblewrap and what it runs, below andon serve
        app_pids = {
            p
            for p in _descendants(serve.pid)
            if b"bwrap" in Path(f"/proc/{p}/cmdline").read_bytes().split(b"\0")[0]
        }
        assert app_pids, "no bubblewrap process below andon serve"
        app_pids |= {d for p in app_pids for d in _descendants(p)}
        assert len(app_pids) >= 2
    finally:
        api.close()
        serve.send_signal(signal.SIGTERM)
        try:
            rc = serve.wait(60)
        except subprocess.TimeoutExpired:
            serve.kill()
            serve.wait(10)
            raise
    # uvicorn re-raises the SIGTERM once it has shut down cleanly
    assert rc in (0, -signal.SIGTERM), log.read_text(errors="replace")[-3000:]
    assert "Application shutdown complete" in log.read_text(errors="replace")
    left = sorted(p for p in app_pids if _alive(p))
    assert not left, f"app processes {left} outlived andon serve"
    text = log.read_text(errors="replace")
    assert "Traceback" not in text, text[-3000:]


TERM = "import time\nprint('up', flush=True)\nwhile True: time.sleep(0.05)\n"


@needs_sandbox
def test_stop_lets_the_run_finish_and_closes_its_pipes(tmp_path: Path) -> None:
    """``stop`` waits for the run to end on its own (the pipes read to their end, the exit
    logged, the transport closed) instead of cancelling it as the process exits; a stop
    during a restart pause ends the pause."""

    async def go() -> None:
        sup = AppSupervisor(run_dir=tmp_path, poll_s=0.1, backoff_s=30.0)
        term = InstanceSpec(
            "t1", "t", "1.0.0", tmp_path, tmp_path / "d1", command=(sys.executable, "-c", TERM)
        )
        crash = InstanceSpec(
            "c1", "c", "1.0.0", tmp_path, tmp_path / "d2", command=(sys.executable, "-c", "1/0")
        )
        try:
            await sup.start(term)
            await sup.start(crash)
            deadline = time.monotonic() + 30
            while not any(line.text == "up" for line in sup.logs("t1")):
                assert time.monotonic() < deadline, sup.logs("t1")
                await asyncio.sleep(0.05)
            st = await sup.stop("t1")
            assert st.state == InstanceState.STOPPED and st.last_exit_reason == "stopped"
            texts = [line.text for line in sup.logs("t1")]
            assert "exited: stopped" in texts  # the run ended itself, not cancelled
            await sup.wait_for("c1", lambda s: s.state == InstanceState.BACKOFF, 30)
            t0 = time.monotonic()
            st = await sup.stop("c1")
            assert time.monotonic() - t0 < 5.0  # not the 30 s pause
            assert st.state == InstanceState.STOPPED and st.restarts == 0
        finally:
            await sup.close()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        asyncio.run(go())
        gc.collect()
    leaks = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert not leaks, leaks


def test_allow_unsandboxed_is_audited_at_each_start(tmp_path: Path) -> None:
    cfg = _config(tmp_path, 8080, enabled=True, allow_unsandboxed=True)
    settings = load_settings(cfg)
    for _ in range(2):
        with TestClient(platform_app(settings)):
            pass

    async def entries() -> list[Any]:
        db = Database(settings.database_url)
        try:
            async with db.begin() as conn:
                q = select(audit_log).where(audit_log.c.action == "apps.allow_unsandboxed")
                return list((await conn.execute(q)).mappings().all())
        finally:
            await db.close()

    rows = asyncio.run(entries())
    assert len(rows) == 2
    assert rows[0]["actor"] == "operator" and rows[0]["tenant_id"] is None

"""`andon demo` serving the dashboard: the plant clock, set-up (tenant, site, users), the live
factory feeding the store on the plant clock, and the command's start, banner and stop."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from queue import Empty, Queue
from zoneinfo import ZoneInfo

import httpx
import pytest

from andon.demo.web import (
    USERS,
    DemoOptions,
    PlantClock,
    builtin_plant_yaml,
    demo_server,
    prepare,
)
from andon.model.types import to_micros
from andon.platform import Permission


def test_plant_clock_stands_until_started_then_runs_at_speed() -> None:
    clock = PlantClock(1_000_000, speed=60.0)
    assert clock() == clock() == 1_000_000
    clock.start(5_000_000)
    w0 = time.monotonic()
    c0 = clock()
    w0b = time.monotonic()
    while time.monotonic() < w0b + 0.05:  # a known stretch of wall time
        pass
    w1 = time.monotonic()
    c1 = clock()
    w1b = time.monotonic()
    assert c0 >= 5_000_000
    lo, hi = 60.0 * (w1 - w0b) * 1e6, 60.0 * (w1b - w0) * 1e6
    assert lo - 1 <= c1 - c0 <= hi + 1
    with pytest.raises(ValueError, match="speed"):
        PlantClock(0, speed=0)


def test_live_demo_serves_plant_time_users_and_fresh_data(tmp_path: Path) -> None:
    options = DemoOptions(builtin_plant_yaml(), tmp_path / "d", speed=60.0, prefill_h=1.0)
    plant = options.plant
    with demo_server(options) as demo:
        site = demo.site
        live_from = site.start + 3_600_000_000
        assert demo.site.clock() >= live_from
        page = httpx.get(f"{demo.url}/", timeout=30)
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]

        clients: dict[str, httpx.Client] = {}
        for user, role in USERS.items():
            c = httpx.Client(base_url=f"{demo.url}/api/v1", timeout=30)
            email = site.email(user)
            r = c.post("/auth/login", json={"email": email, "password": site.passwords[email]})
            r.raise_for_status()
            c.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
            me = c.get("/auth/me").json()
            assert me["tenant_id"] == plant.tenant == site.tenant
            assert (Permission.USER_WRITE.value in me["tenant_wide"]) == (user == "admin"), role
            clients[user] = c
        assert clients["operator"].get("/users").status_code == 403
        sites = clients["engineer"].get("/sites").json()
        assert [s["id"] for s in sites] == [site.site_id]

        # "today" is the plant's production day (Mon 2026-01-05 from its first shift at 06:00
        # in the site's zone), not the wall clock's
        kpi = clients["engineer"].get(f"/sites/{site.site_id}/kpi/summary").json()
        zone = ZoneInfo(plant.site.timezone)
        assert kpi["start"] == to_micros(datetime(2026, 1, 5, 6, tzinfo=zone))
        assert site.start < kpi["end"] <= site.clock()

        # the factory runs live: samples newer than the pre-fill reach the store, and the store
        # trails the plant clock by about one window (60 plant s at 60x) plus a tick
        area, line = plant.lines()[0]
        deadline = time.monotonic() + 15
        while True:
            got = clients["engineer"].get(
                f"/sites/{site.site_id}/telemetry/last", params={"prefix": f"{area.id}/{line.id}"}
            )
            got.raise_for_status()
            rows = got.json()["values"]
            ts = max((v["ts"] for v in rows), default=0)
            if ts > live_from:
                break
            assert time.monotonic() < deadline, f"no live data after the pre-fill: {rows}"
            time.sleep(0.05)
        lag_s = (site.clock() - ts) / 1e6
        assert 0 <= lag_s <= 3 * 60.0
        for c in clients.values():
            c.close()


def test_prepare_refuses_a_data_dir_that_holds_a_demo(tmp_path: Path) -> None:
    (tmp_path / "telemetry.duckdb").write_bytes(b"")
    with pytest.raises(FileExistsError, match=r"telemetry\.duckdb exists"):
        asyncio.run(prepare(DemoOptions(builtin_plant_yaml(), tmp_path)))
    assert not (tmp_path / "platform.db").exists()


def _andon(*args: str) -> list[str]:
    return [sys.executable, "-m", "andon.cli", *args]


def test_demo_options_exclude_each_other() -> None:
    r = subprocess.run(
        _andon("demo", "--headless", "--terminal"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert r.returncode == 2
    assert "exclude each other" in r.stderr


def test_demo_reports_a_busy_port(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        r = subprocess.run(
            _andon("demo", "--port", str(port), "--data-dir", str(tmp_path)),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert r.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in r.stderr


@pytest.mark.slow
def test_demo_command_prints_users_serves_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "COLUMNS": "200"}
    proc = subprocess.Popen(
        _andon("demo", "--port", str(port), "--prefill", "0.5", "--data-dir", str(tmp_path)),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    lines: Queue[str] = Queue()

    def pump() -> None:
        for x in proc.stdout or ():
            lines.put(x)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    passwords: dict[str, str] = {}
    seen: list[str] = []
    try:
        deadline = time.monotonic() + 120
        while len(passwords) < len(USERS):
            try:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except Empty:
                pytest.fail(f"no user table within 120 s: {seen}")
            seen.append(line)
            if m := re.match(r"\s*(\w+)@demo\.andon\s+(\S+)", line):
                passwords[m.group(1)] = m.group(2)
        base = f"http://127.0.0.1:{port}/api/v1"
        r = httpx.post(
            f"{base}/auth/login",
            json={"email": "operator@demo.andon", "password": passwords["operator"]},
            timeout=30,
        )
        assert r.status_code == 200, r.text
        assert httpx.get(f"http://127.0.0.1:{port}/", timeout=30).status_code == 200
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            rc = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    reader.join(timeout=10)
    if proc.stdout is not None:
        proc.stdout.close()
    rest = []
    while not lines.empty():
        rest.append(lines.get())
    assert rc == 0, "".join(seen + rest)
    assert "stopped." in "".join(rest)
    assert (tmp_path / "telemetry.duckdb").exists()

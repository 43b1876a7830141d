"""Issue 18's acceptance run: the demo's plant clock is driven through 38 plant hours (Monday
06:00 to Tuesday 20:00 in Taichung: the 14:00 shift change, the 22:00 end of the last shift,
midnight, the 06:00 start, the Tuesday 14:00 change) while the board, line, machine and energy
endpoints are sampled as a dashboard would, and the board page is read in Chromium at a few
moments. After the run, every sampled figure is compared with the batch KPI for the same range
computed after the fact from the store (``andon.kpi.api``, what ``andon kpi`` prints).

The clock is held at each sample instant and the factory advanced exactly to it (no wall-clock
race between the factory and the pages), so a mismatch is a wrong figure, never a late one."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from playwright.sync_api import sync_playwright

from andon.demo.web import DemoHandle, demo_server
from andon.kpi import api as kpi
from andon.kpi.summary import parts_of
from andon.model.types import Micros, to_micros
from tests.web.browser import CHROMIUM, DESKTOP, launch, login
from tests.web.demos import paused_demo

pytestmark = pytest.mark.slow

HOURS = 38.0
STEP_MIN = 60
ZONE = ZoneInfo("Asia/Taipei")
MONDAY = datetime(2026, 1, 5, tzinfo=ZONE)
# moments around the day's edges, on top of the regular samples (local plant time)
EDGES = [
    MONDAY.replace(hour=13, minute=59),
    MONDAY.replace(hour=14, minute=1),
    MONDAY.replace(hour=21, minute=58),
    MONDAY.replace(hour=22, minute=2),
    MONDAY.replace(hour=23, minute=59),
    MONDAY + timedelta(days=1, minutes=1),
    MONDAY + timedelta(days=1, hours=5, minutes=59),
    MONDAY + timedelta(days=1, hours=6, minutes=1),
    MONDAY + timedelta(days=1, hours=6, minutes=20),
]
BROWSER_AT = {EDGES[1], EDGES[3], EDGES[8]}
REL = 0.005
"""Live and batch figures agree within 0.5 % (or exactly: part counts)."""


def close(a: float | None, b: float | None, rel: float = REL, abs_: float = 1e-6) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return abs(a - b) <= max(abs_, rel * max(abs(a), abs(b)))


def in_unit(x: float | None) -> bool:
    return x is None or -1e-9 <= x <= 1 + 1e-9


@dataclass
class Sample:
    at: Micros
    board: dict[str, Any]
    start: Micros
    end: Micros
    lines: dict[str, dict[str, Any]] = field(default_factory=dict)
    machines: dict[str, dict[str, Any]] = field(default_factory=dict)
    energy: dict[str, Any] = field(default_factory=dict)
    page_parts: dict[str, int] = field(default_factory=dict)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoHandle]:
    # the test runs the alert pass itself at every sample instant
    options = paused_demo(tmp_path_factory.mktemp("long-run"), 0.25, {"alert_interval_s": 0})
    with demo_server(options) as handle:
        yield handle


def _schedule(start: Micros) -> list[Micros]:
    end = start + round(HOURS * 3.6e9)
    regular = range(start + STEP_MIN * 60_000_000, end + 1, STEP_MIN * 60_000_000)
    return sorted({*regular, *(to_micros(e) for e in EDGES)})


class Client:
    """The engineer's API client; signs in again when the plant clock has run past its
    token's lifetime (15 plant hours at the demo's 60x)."""

    def __init__(self, h: DemoHandle) -> None:
        self.h = h
        self.http = httpx.Client(base_url=f"{h.url}/api/v1", timeout=60)
        self.login()

    def login(self) -> None:
        email = self.h.site.email("engineer")
        pw = self.h.site.passwords[email]
        r = self.http.post("/auth/login", json={"email": email, "password": pw})
        r.raise_for_status()
        self.http.headers["Authorization"] = f"Bearer {r.json()['access_token']}"

    def get(self, path: str, params: dict[str, Any] | None = None) -> httpx.Response:
        r = self.http.get(path, params=params)
        if r.status_code == 401:
            self.login()
            r = self.http.get(path, params=params)
        return r.raise_for_status()


@contextmanager
def _client(h: DemoHandle) -> Iterator[Client]:
    c = Client(h)
    try:
        yield c
    finally:
        c.http.close()


def _board(c: Client, base: str, at: Micros) -> dict[str, Any]:
    """The board at a held clock: it answers from its stale-while-revalidate cache at once,
    so ask again until it covers this instant's KPI step (bounded)."""
    for _ in range(400):
        b: dict[str, Any] = c.get(f"{base}/board").json()
        if b["now"] == at and b.get("kpi_fresh", True) and _board_current(b, at):
            return b
    raise AssertionError(f"the board never caught up with {at}: kpi_end {b['kpi_end']}")


def _board_current(b: dict[str, Any], at: Micros) -> bool:
    step = b.get("kpi_step_us")
    if step:
        return bool(b["kpi_end"] == at - at % int(step))
    return bool(b["kpi_end"] >= at - 300_000_000)


def _today_start(b: dict[str, Any]) -> Micros:
    if "kpi_start" in b:
        return int(b["kpi_start"])
    local = datetime.fromtimestamp(b["kpi_end"] / 1e6, ZONE)
    return to_micros(local.replace(hour=0, minute=0, second=0, microsecond=0))


def _summary(problems: list[str]) -> str:
    """The problems by kind: how many, and the first few of each."""
    kinds: dict[str, list[str]] = {}
    for p in problems:
        kinds.setdefault(" ".join(p.split()[2:4]), []).append(p)
    out = [f"{len(problems)} problems"]
    for k, ps in kinds.items():
        out += [f"{k}: {len(ps)}", *ps[:4]]
    return "\n".join(out)


def _page_parts(h: DemoHandle, shots: Path, name: str) -> dict[str, int]:
    with sync_playwright() as pw:
        browser = launch(pw)
        try:
            ctx = browser.new_context(viewport=DESKTOP, locale="en-US")
            page = ctx.new_page()
            page.set_default_timeout(20_000)
            email = h.site.email("engineer")
            login(page, h.url, email, h.site.passwords[email])
            page.wait_for_selector("[data-testid=tile] [data-testid=tile-parts]:not(:empty)")
            out = {}
            for tile in page.get_by_test_id("tile").all():
                text = tile.get_by_test_id("tile-parts").inner_text()
                m = re.search(r"\d[\d,]*", text)
                if m:
                    out[str(tile.get_attribute("data-machine"))] = int(m.group(0).replace(",", ""))
            page.screenshot(path=str(shots / f"long-run-{name}.png"))
            ctx.close()
            return out
        finally:
            browser.close()


def test_live_figures_equal_the_batch_kpis_through_36_plant_hours(
    run: DemoHandle, tmp_path: Path
) -> None:
    h = run
    site = h.site
    plant = site.options.plant
    base = f"/sites/{site.site_id}"
    lines = [f"{plant.site.id}/{a.id}/{ln.id}" for a, ln in plant.lines()]
    machines = [plant.machine_path(a, ln, m) for a, ln, m in plant.machines()]
    samples: list[Sample] = []
    problems: list[str] = []

    def check(ok: bool, local: datetime, *what: Any) -> None:
        if not ok:
            problems.append(f"{local:%a %H:%M} " + " ".join(map(str, what)))

    with _client(h) as c:
        schedule = _schedule(site.start)
        for i, at in enumerate(schedule):
            h.call(site.run.advance((at - site.start) / 1e6), timeout=300)
            site.clock.hold(at)
            evaluator = site.app.state.services.alerts
            h.call(evaluator.step(), timeout=120)
            b = _board(c, base, at)
            s = Sample(at, b, _today_start(b), int(b["kpi_end"]))
            samples.append(s)
            local = datetime.fromtimestamp(at / 1e6, ZONE)
            # nothing goes offline at a shift end (the data is all there)
            off = [m["machine"] for m in b["machines"] if m["state"] == "offline"]
            check(not off, local, "offline on the board", off)
            offline_alerts = [a["machine"] for a in b["alerts"] if a["kind"] == "offline"]
            check(not offline_alerts, local, "offline alerts", offline_alerts)
            for m in b["machines"]:
                check(in_unit(m["oee"]), local, "board OEE", m["machine"], m["oee"])
            if s.end <= s.start:
                continue
            q = {"start": s.start, "end": s.end}
            for ln in lines:
                s.lines[ln] = c.get(f"{base}/lines/kpi", params={**q, "line": ln}).json()
                for k, v in s.lines[ln]["oee"].items():
                    check(in_unit(v), local, "line", ln, k, v)
            # every machine's 15-min trend over the day so far: at the day's edges, every third
            # sample and the last (each trend covers every bucket of the day up to then)
            deep = local in EDGES or i % 3 == 0 or i == len(schedule) - 1
            for m in machines if deep else ():
                got = c.get(f"{base}/machines/kpi", params={**q, "machine": m, "bucket_s": 900})
                s.machines[m] = got.json()
                for bucket in s.machines[m]["trend"]:
                    for k in ("oee", "availability", "performance", "quality"):
                        check(in_unit(bucket[k]), local, "15-min bucket", m, k, bucket[k])
            s.energy = c.get(f"{base}/energy", params=q).json()
            if local in BROWSER_AT:
                s.page_parts = _page_parts(h, tmp_path, local.strftime("%a-%H%M"))

    # after the fact: the batch KPIs of the same ranges, from the store
    assert len(samples) >= 45
    checked = 0
    for s in samples:
        local = datetime.fromtimestamp(s.at / 1e6, ZONE)
        if s.end <= s.start:
            continue
        table = h.call(kpi.oee(site.store, plant, s.start, s.end), timeout=120)
        batch = {r["machine"]: r for r in table.rows()}
        energy = h.call(
            kpi.energy_report(site.store, plant, s.start, s.end, factor=None), timeout=120
        )
        kwh = {r.machine: r.kwh for r in energy.machines}
        for m in s.board["machines"]:
            r = batch.get(m["machine"], {})
            mp = m["machine"]
            good, scrap = parts_of(r)
            check(m["good"] == good, local, "board good", mp, m["good"], good)
            check(m["scrap"] == scrap, local, "board scrap", mp, m["scrap"], scrap)
            check(close(m["oee"], r.get("oee")), local, "board OEE", mp, m["oee"], r.get("oee"))
            checked += 1
        for ln, lk in s.lines.items():
            for mm in lk["machines"]:
                r = batch.get(mm["machine"], {})
                mp = mm["machine"]
                check(
                    close(mm["oee"], r.get("oee")), local, "line OEE", mp, mm["oee"], r.get("oee")
                )
                good = parts_of(r)[0]
                check(mm["good"] == good, local, "line good", mp, mm["good"], good)
            on_board = next(x for x in s.board["lines"] if x["line"] == ln)
            # the board and the line page give one rate for the same line and range
            rate = (on_board["throughput_per_h"], lk["throughput_per_h"])
            check(close(*rate), local, "line rate board vs line page", ln, rate)
        for m, mk in s.machines.items():
            good = parts_of(batch.get(m, {}))[0]
            check(mk["good"] == good, local, "machine good", m, mk["good"], good)
            check(close(mk["kwh"], kwh.get(m)), local, "machine kWh", m, mk["kwh"], kwh.get(m))
        for e in s.energy["by_machine"]:
            want = kwh.get(e["machine"])
            check(close(e["kwh"], want), local, "energy page kWh", e["machine"], e["kwh"], want)
        for m, n in s.page_parts.items():
            on_board = next(x for x in s.board["machines"] if x["machine"] == m)
            check(n == on_board["good"], local, "page parts", m, n, on_board["good"])
    assert not problems, _summary(problems)
    assert checked > 0
    assert sum(1 for s in samples if s.page_parts) == len(BROWSER_AT)
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} missing: run `make services`")

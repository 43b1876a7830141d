"""What the pages show, checked in Debian Chromium against the served demo (issue 18, items 4,
5, 6 and 9, the machine loss breakdown and the shift report): bottleneck bars in their
legend's colours adding up to at most 100 %, one "Unexplained" Pareto row, reason entry
that offers a machine its own failure modes and lists what needs a reason, signal charts with
names, units and axis titles and no "-0", year-first 24-hour dates in English and zh-TW with
the plant's own names translated, and a shift report that fits A4."""

from __future__ import annotations

import re
import time
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from playwright.sync_api import Page

from andon.demo.web import DemoHandle
from andon.model.types import MachineState
from tests.web.browser import login, open_route, page_root

ZONE = ZoneInfo("Asia/Taipei")  # the demo plant's


def _creds(demo: DemoHandle, user: str) -> tuple[str, str]:
    email = demo.site.email(user)
    return email, demo.site.passwords[email]


def _paths(demo: DemoHandle) -> dict[str, str]:
    plant = demo.site.options.plant
    return {m.id: plant.machine_path(a, ln, m) for a, ln, m in plant.machines()}


def _site(demo: DemoHandle) -> str:
    return f"/sites/{demo.site.site_id}"


def _get(api: dict[str, httpx.Client], demo: DemoHandle, path: str, **q: Any) -> Any:
    r = api["engineer"].get(f"{_site(demo)}{path}", params=q)
    assert r.status_code == 200, r.text
    return r.json()


def _stop_after_last(
    demo: DemoHandle,
    api: dict[str, httpx.Client],
    machine: str,
    state: MachineState,
    code: str,
    minutes: float = 5.0,
) -> tuple[int, int]:
    """A stop of ``machine`` right after its last state interval, ``minutes`` plant minutes
    long (the plant clock runs at 60x), ingested the edge's way."""
    now = demo.site.clock()
    st = _get(api, demo, "/states", start=demo.site.start, end=now + 1, machine=machine)
    start = int(max(st["end"]))
    deadline = time.monotonic() + 60
    while demo.site.clock() - start < minutes * 60e6:
        assert time.monotonic() < deadline, "the plant clock does not move"
        time.sleep(0.05)
    end = demo.site.clock()
    body = {"names": [machine], "index": [0], "start": [start], "end": [end]}
    body |= {"state": [int(state)], "reason": [code]}
    r = api["admin"].post(f"{_site(demo)}/ingest", json={"states": body})
    r.raise_for_status()
    return start, end


# ---- item 4: bottleneck history -----------------------------------------------------------


def test_bottleneck_bars_have_their_legend_colours_and_fill_at_most_the_bucket(
    demo: DemoHandle, api: dict[str, httpx.Client], page: Page
) -> None:
    # the grinder down for a while: the longest active period, so a second bottleneck
    _stop_after_last(demo, api, _paths(demo)["SG-01"], MachineState.DOWN, "WHEEL_IMBALANCE", 10)
    login(page, demo.url, *_creds(demo, "engineer"))
    line = _paths(demo)["MC-01"].rsplit("/", 1)[0]
    open_route(page, demo.url, f"line?line={line}")
    card = page.get_by_test_id("bottleneck-history")
    swatch = {
        x.get_attribute("data-machine"): x.locator(".swatch").evaluate(
            "e => getComputedStyle(e).backgroundColor"
        )
        for x in card.locator(".legend-item").all()
    }
    assert len(set(swatch.values())) == len(swatch), f"legend colours repeat: {swatch}"
    bars = card.locator('[data-testid="bottleneck-bucket"] rect').all()
    assert bars, "no bottleneck bars"
    fills = {bar.evaluate("e => getComputedStyle(e).fill") for bar in bars}
    assert len(fills) >= 2 and fills <= set(swatch.values()), (fills, swatch)
    seen = set()
    for bar in bars:  # each bar has its machine's legend colour (shifting: data-machine "")
        m = bar.get_attribute("data-machine")
        fill = bar.evaluate("e => getComputedStyle(e).fill")
        assert fill == swatch[m], f"{m}: bar {fill}, legend {swatch[m]}"
        seen.add(m)
    assert len(seen - {""}) >= 2, f"one bottleneck only: {seen}"
    totals = [float(b.get_attribute("data-total") or 0) for b in card.locator(
        '[data-testid="bottleneck-bucket"]').all()]  # fmt: skip
    assert totals and max(totals) <= 1 + 1e-6, totals


# ---- item 5: reasons and the Pareto --------------------------------------------------------


def test_the_pareto_has_one_unexplained_row(
    demo: DemoHandle, api: dict[str, httpx.Client], page: Page
) -> None:
    robot = _paths(demo)["RB-01"]
    _stop_after_last(demo, api, robot, MachineState.DOWN, "")
    login(page, demo.url, *_creds(demo, "engineer"))
    open_route(page, demo.url, f"line?line={robot.rsplit('/', 1)[0]}")
    page.get_by_test_id("pareto").wait_for()
    rows = page.locator('[data-testid="pareto-row"]')
    unexplained = [
        r for r in rows.all()
        if "unexplained" in (r.get_attribute("data-category"), r.get_attribute("data-reason"))
    ]  # fmt: skip
    assert len(unexplained) == 1, [r.text_content() for r in unexplained]


def test_reason_entry_lists_what_needs_a_reason_and_offers_a_machines_own_modes(
    demo: DemoHandle, api: dict[str, httpx.Client], page: Page
) -> None:
    paths = _paths(demo)
    robot, fsw = paths["RB-01"], paths["FSW-01"]
    starved, _ = _stop_after_last(demo, api, robot, MachineState.STARVED, "", minutes=3)
    down, _ = _stop_after_last(demo, api, robot, MachineState.DOWN, "", minutes=3)
    coded, _ = _stop_after_last(demo, api, fsw, MachineState.DOWN, "PIN_BREAK", minutes=3)

    login(page, demo.url, *_creds(demo, "operator"))
    open_route(page, demo.url, "reasons")
    page.get_by_test_id("stops-filter").click()  # every stop, not only those without a reason
    page.wait_for_selector(page_root("reasons"))
    states = {r.get_attribute("data-start"): r for r in page.get_by_test_id("stop-row").all()}
    assert str(down) in states and str(coded) in states
    assert str(starved) not in states, "a starved spell listed among stops needing a reason"
    for r in page.get_by_test_id("stop-row").all():  # the default: down, no micro-stops
        assert "starved" not in (r.inner_text().lower()) and "blocked" not in r.inner_text().lower()

    page.get_by_test_id("stops-kind").select_option("idle")
    page.wait_for_selector(
        f'{page_root("reasons")} [data-testid="stop-row"][data-start="{starved}"]'
    )
    page.get_by_test_id("stops-kind").select_option("need")
    page.get_by_test_id("stops-machine").select_option(robot)
    page.wait_for_selector(page_root("reasons"))
    shown = {r.get_attribute("data-machine") for r in page.get_by_test_id("stop-row").all()}
    assert shown == {robot}

    row = page.locator(f'[data-testid="stop-row"][data-start="{down}"]')
    row.locator('[data-testid="category-btn"][data-category="equipment"]').click()
    offered = {b.get_attribute("data-reason") for b in row.get_by_test_id("reason-btn").all()}
    assert {"GRIPPER_FAULT", "SERVO_ALARM", "mechanical"} <= offered
    assert "PIN_BREAK" not in offered and "SPINDLE_OVERLOAD" not in offered

    # the operator's answer replaces the machine's code in the Pareto
    page.get_by_test_id("stops-machine").select_option(fsw)
    page.wait_for_selector(page_root("reasons"))
    row = page.locator(f'[data-testid="stop-row"][data-start="{coded}"]')
    row.locator('[data-testid="category-btn"][data-category="equipment"]').click()
    row.locator('[data-testid="reason-btn"][data-reason="CLAMP_FAULT"]').click()
    entered = page.locator(
        f'[data-testid="stop-row"][data-start="{coded}"] [data-testid="stop-entered"]',
        has_text=demo.site.email("operator"),
    )
    entered.wait_for()  # the machine's code showed there before: wait for the operator
    now = demo.site.clock()
    pareto = _get(api, demo, "/kpi/downtime", start=coded, end=now, line=fsw.rsplit("/", 1)[0])
    mine = {(r["category"], r["reason"]) for r in pareto["rows"]}
    assert ("equipment", "CLAMP_FAULT") in mine and ("equipment", "PIN_BREAK") not in mine


# ---- item 6 and the machine's losses: the machine page --------------------------------------


def test_signal_charts_have_names_units_axis_titles_and_the_machines_losses(
    demo: DemoHandle, api: dict[str, httpx.Client], page: Page
) -> None:
    machine = _paths(demo)["MC-01"]
    login(page, demo.url, *_creds(demo, "engineer"))
    open_route(page, demo.url, f"machine?machine={machine}")
    want = {"spindle_speed": ("Spindle speed", "rpm"), "coolant_temp": ("Coolant temperature",
            "°C"), "vibration": ("Vibration", "mm/s"), "power": ("Power", "kW")}  # fmt: skip
    for sid, (name, unit) in want.items():
        trend = page.locator(f'[data-testid="trend"][data-signal="{machine}/{sid}"]')
        title = trend.get_by_test_id("trend-title").inner_text()
        assert title == f"{name} ({unit})", title
        assert trend.get_by_test_id("y-title").text_content() == unit
        assert "Asia/Taipei" in (trend.get_by_test_id("x-title").text_content() or "")
    ticks = page.locator('[data-testid="trend"] text.y-tick').all_text_contents()
    assert ticks and not [x for x in ticks if re.fullmatch(r"[-−]0([.,]0*)?", x.strip())]

    # ticks of a range that crosses zero from below, drawn by the page's own chart code
    drawn = page.evaluate(
        """async () => {
          const c = await import('/static/js/charts.js');
          const svg = c.trendChart({ width: 400, start: 0, end: 3.6e9, label: 'x',
            series: [{ t: [0, 1.8e9, 3.6e9], v: [-0.3, 0.4, 2] }] });
          return [...svg.querySelectorAll('text.y-tick')].map((e) => e.textContent);
        }"""
    )
    assert "0.0" in drawn and not [x for x in drawn if x.startswith(("-0", "−0"))], drawn

    # the loss waterfall of the range: the API's figures, planned busy time = losses + rest
    trend = page.locator('[data-testid="trend"]').first
    start, end = (
        int(trend.get_attribute("data-start") or 0),
        int(trend.get_attribute("data-end") or 0),
    )
    card = page.get_by_test_id("machine-losses")
    bars = card.get_by_test_id("waterfall-bar").all()
    shown = {
        b.get_attribute("data-loss"): float(b.get_attribute("data-seconds") or 0) for b in bars
    }
    body = _get(api, demo, "/machines/kpi", machine=machine, start=start, end=end, bucket_s=1200)
    assert shown == pytest.approx({w["loss"]: w["seconds"] for w in body["waterfall"]}, abs=1e-3)
    names = list(shown)
    assert names[0] == "planned_busy" and names[-1] == "fully_productive"
    assert sum(v for k, v in shown.items() if k != "planned_busy") == pytest.approx(
        shown["planned_busy"], rel=1e-6
    )
    assert shown["planned_busy"] > 0


# ---- item 9: dates and names by language -------------------------------------------------


def _local(us: int, sep: str) -> str:
    d = datetime.fromtimestamp(us / 1e6, ZONE)
    return d.strftime(f"%Y{sep}%m{sep}%d %H:%M:%S")


def _trend_range(page: Page, base: str, machine: str) -> tuple[int, int, str]:
    """The machine page's trend: its range (µs) and the range as the page writes it."""
    open_route(page, base, f"machine?machine={machine}")
    trend = page.locator('[data-testid="trend"]').first
    start = int(trend.get_attribute("data-start") or 0)
    end = int(trend.get_attribute("data-end") or 0)
    return start, end, page.get_by_test_id("trend-range").inner_text()


def test_dates_are_year_first_with_a_24_hour_clock_in_en_and_zh_tw(
    demo: DemoHandle, page: Page
) -> None:
    machine = _paths(demo)["MC-01"]
    login(page, demo.url, *_creds(demo, "engineer"))
    start, end, text = _trend_range(page, demo.url, machine)
    assert text == f"{_local(start, '-')} – {_local(end, '-')}", text
    assert not re.search(r"AM|PM|上午|下午", text)
    # the site's zone, not the browser's: the test browser runs in UTC

    page.get_by_test_id("lang-switcher").select_option("zh-TW")
    page.wait_for_selector('html[lang="zh-TW"]')
    start, end, text = _trend_range(page, demo.url, machine)
    assert text == f"{_local(start, '/')} – {_local(end, '/')}", text


def test_zh_tw_shows_the_plants_own_names_and_codes_translated(
    demo: DemoHandle, api: dict[str, httpx.Client], page: Page
) -> None:
    paths = _paths(demo)
    robot = paths["RB-01"]
    # planned first: a down stop right after another test's down stop would join it
    brk, _ = _stop_after_last(demo, api, robot, MachineState.PLANNED_STOP, "break", minutes=2)
    down, _ = _stop_after_last(demo, api, robot, MachineState.DOWN, "", minutes=2)
    page.goto(f"{demo.url}/#/login")
    page.wait_for_selector(page_root("login"))
    page.get_by_test_id("lang-switcher").select_option("zh-TW")
    page.wait_for_selector('html[lang="zh-TW"]')
    login(page, demo.url, *_creds(demo, "admin"))
    tile = page.locator(f'[data-testid="tile"][data-machine="{paths["MC-01"]}"] .tile-name')
    assert tile.inner_text() == "加工中心 1"
    line = paths["MC-01"].rsplit("/", 1)[0]
    assert page.locator(f'[data-testid="line-card"][data-line="{line}"] h2').inner_text() == (
        "CNC 加工線"
    )
    assert page.evaluate("() => window.andonI18nAudit()") == []

    open_route(page, demo.url, "reasons")
    page.get_by_test_id("stops-filter").click()  # every stop, not only those without a reason
    page.wait_for_selector(page_root("reasons"))
    page.get_by_test_id("stops-kind").select_option("all")
    page.get_by_test_id("stops-machine").select_option(robot)
    page.wait_for_selector(page_root("reasons"))
    planned = page.locator(f'[data-testid="stop-row"][data-start="{brk}"]')
    assert planned.get_by_test_id("stop-code").inner_text() == "機台代碼 排定休息", (
        planned.get_by_test_id("stop-code").inner_text()
    )
    row = page.locator(f'[data-testid="stop-row"][data-start="{down}"]')
    row.locator('[data-testid="category-btn"][data-category="equipment"]').click()
    btn = row.locator('[data-testid="reason-btn"][data-reason="GRIPPER_FAULT"]')
    assert btn.inner_text() == "夾爪真空失壓"
    btn.click()
    page.locator(f'[data-testid="stop-row"][data-start="{down}"] [data-testid="stop-entered"]')\
        .wait_for()  # fmt: skip
    assert page.evaluate("() => window.andonI18nAudit()") == []

    open_route(page, demo.url, "admin")
    action = page.locator('[data-testid="audit-row"] td[data-action="stops.reason"]').first
    assert action.inner_text() == "填寫停機原因"
    for route in (f"line?line={line}", f"machine?machine={paths['MC-01']}", f"report?line={line}"):
        open_route(page, demo.url, route)
        assert page.evaluate("() => window.andonI18nAudit()") == [], route


# ---- the shift report -----------------------------------------------------------------------


def test_shift_report_shows_the_shifts_figures_and_fits_a4(
    demo: DemoHandle, api: dict[str, httpx.Client], page: Page, shots: Path
) -> None:
    line = _paths(demo)["MC-01"].rsplit("/", 1)[0]
    login(page, demo.url, *_creds(demo, "engineer"))
    open_route(page, demo.url, f"line?line={line}")
    page.get_by_test_id("report-link").click()
    page.wait_for_selector(page_root("report"))
    assert page.locator(page_root("report")).get_attribute("data-line") == line
    # the shift of the pre-filled data (the plant clock has run on, with the factory paused)
    at = demo.site.start + 2 * 3600 * 1_000_000
    open_route(page, demo.url, f"report?line={line}&shift={at}")
    root = page.locator(page_root("report"))
    start, end = (
        int(root.get_attribute("data-start") or 0),
        int(root.get_attribute("data-end") or 0),
    )
    ranges = _get(api, demo, "/kpi/ranges", at=end)
    assert ranges["shift"]["start"] == start
    kpi = _get(api, demo, "/lines/kpi", line=line, start=start, end=end)
    oee = page.get_by_test_id("report-oee").locator(".v").inner_text()
    assert float(oee.replace("%", "").strip()) == pytest.approx(100 * kpi["oee"]["oee"], abs=0.06)
    assert (
        int(page.get_by_test_id("report-output").locator(".v").inner_text().replace(",", ""))
        == (kpi["good_out"])
    )
    losses = [b.get_attribute("data-loss") for b in page.get_by_test_id("waterfall-bar").all()]
    assert losses == [w["loss"] for w in kpi["waterfall"]]
    assert page.locator('[data-testid="report-pareto"] [data-testid="pareto-row"]').count() <= 8

    # the same page by its path form, and the shift before this one
    page.goto(f"{demo.url}/#/report/{line}?shift={start - 1}")
    page.wait_for_selector(page_root("report"))
    prev = page.locator(page_root("report"))
    assert prev.get_attribute("data-line") == line
    assert int(prev.get_attribute("data-end") or 0) <= start

    # printed: no shell, the report as wide as A4's printable width at most, on white
    open_route(page, demo.url, f"report?line={line}&shift={at}")
    page.emulate_media(media="print")
    assert not page.locator(".topbar").is_visible()
    assert not page.get_by_test_id("report-print").is_visible()
    a4_px = 186 / 25.4 * 96  # 210 mm less two 12 mm margins, at 96 px per inch
    widths = page.evaluate(
        """() => [document.querySelector('[data-page="report"]'),
                  ...document.querySelectorAll('[data-page="report"] svg')]
                 .map((e) => e.getBoundingClientRect().width)"""
    )
    assert max(widths) <= a4_px + 1, widths
    bg = page.evaluate("() => getComputedStyle(document.body).backgroundColor")
    assert bg == "rgb(255, 255, 255)"
    pdf = page.pdf(format="A4", print_background=True)
    pages = len(re.findall(rb"/Type\s*/Page[^s]", pdf))
    assert 1 <= pages <= 2, f"{pages} A4 pages"
    (shots / "report-a4.pdf").write_bytes(pdf)


# ---- goal lines on the line page (targets per line) ----------------------------------------


def _scale(chart: Any) -> tuple[float, float]:
    """``(a, b)`` of the chart's value axis, y = a + b·value, from its tick labels."""
    ticks: list[tuple[float, float]] = chart.evaluate(
        """(svg) => [...svg.querySelectorAll('text.y-tick')].map((el) => [
             parseFloat(el.textContent.replace(/[^0-9.\\-]/g, '')),
             parseFloat(el.getAttribute('y')) - 4])"""
    )
    (v0, y0), (v1, y1) = ticks[0], ticks[-1]
    b = (y1 - y0) / (v1 - v0)
    return y0 - b * v0, b


def _goal(chart: Any) -> tuple[float, float, str, str]:
    """The goal line's value attribute, its y, its label and its dash pattern."""
    g = chart.locator('[data-testid="goal-line"]')
    assert g.count() == 1
    line = g.locator("line")
    dash = line.evaluate("(el) => getComputedStyle(el).strokeDasharray")
    return (
        float(g.get_attribute("data-value") or "nan"),
        float(line.get_attribute("y1") or "nan"),
        g.locator("text").text_content() or "",
        dash,
    )


def test_the_line_page_draws_the_managers_targets_as_goal_lines(
    demo: DemoHandle, api: dict[str, httpx.Client], page: Page
) -> None:
    line = _paths(demo)["MC-01"].rsplit("/", 1)[0]
    # a manager (board:manage) sets the line's targets
    target = {"line": line, "oee": 0.85, "per_hour": 45}
    assert api["admin"].put(f"{_site(demo)}/targets", json=target).status_code == 200
    login(page, demo.url, *_creds(demo, "engineer"))
    before = demo.site.clock()
    open_route(page, demo.url, f"line?line={line}")
    after = demo.site.clock()
    card = page.get_by_test_id("line-trend")
    oee, rate = card.get_by_test_id("trend-oee"), card.get_by_test_id("trend-rate")
    # each goal line at its value on its chart's own scale, dashed, labelled with the value
    for chart, want, text in ((oee, 0.85, r"\b85\s?%"), (rate, 45.0, r"\b45\b")):
        value, y, label, dash = _goal(chart)
        assert value == pytest.approx(want)
        a, b = _scale(chart)
        scale = 100 if chart is oee else 1  # the OEE axis is labelled in percent
        assert y == pytest.approx(a + b * want * scale, abs=1.0), (label, y)
        assert re.search(text, label) and "Target" in label, label
        assert dash not in ("", "none"), dash
    assert "/h" in _goal(rate)[2]
    assert oee.get_by_test_id("y-title").text_content() == "OEE"
    assert rate.get_by_test_id("y-title").text_content() == "Good parts / h"
    # the points are the API's buckets (today: one an hour) as far as the plant clock had
    # run while the page loaded (it runs at 60x), OEE in [0, 1]
    start = int(_get(api, demo, "/kpi/ranges", at=before)["today"]["start"])
    assert "60 min" in card.locator("p.muted").inner_text()
    counts = []
    for end in (before, after):
        trend = _get(api, demo, "/lines/kpi", line=line, start=start, end=end, bucket_s=3600)
        assert all(0 <= p["oee"] <= 1 for p in trend["trend"] if p["oee"] is not None)
        counts.append(sum(p["oee"] is not None for p in trend["trend"]))
    assert 0 < counts[0] <= oee.locator("circle.dot").count() <= counts[1]
    # a per-shift target alone: the goal line is the kiosk plan's rate (decision 0614)
    target = {"line": line, "oee": 0.6, "per_shift": 300}
    assert api["admin"].put(f"{_site(demo)}/targets", json=target).status_code == 200
    k = api["admin"].get(f"{_site(demo)}/kiosk", params={"line": line}).json()["lines"][0]
    page.reload()  # the same route: a fresh document, so its ready flag is the new render's
    page.wait_for_selector(page_root("line"))
    assert _goal(oee)[0] == pytest.approx(0.6)
    assert _goal(rate)[0] == pytest.approx(k["shift"]["per_hour"], rel=1e-6)

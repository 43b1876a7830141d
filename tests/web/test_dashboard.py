"""The dashboard in a real browser (headless Debian Chromium) against a real server on
loopback with virtual-factory data: log in, the live board, reason entry and the Pareto,
trend zoom, a twin scenario, zh-TW completeness, role-aware pages, keyboard and colour-free
state, and screenshots of every page."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, ViewportSize

from andon.demo.web import DemoHandle
from andon.kpi.reasons import ReasonTree
from andon.model.types import MachineState
from andon.web import STATIC_DIR
from tests.web.browser import DESKTOP, TABLET, login, open_route, page_root, screenshot

PAGES = ["board", "line", "machine", "reasons", "energy", "twin", "admin", "report"]


def _creds(demo: DemoHandle, user: str) -> tuple[str, str]:
    email = demo.site.email(user)
    return email, demo.site.passwords[email]


def _machines(demo: DemoHandle) -> list[str]:
    plant = demo.site.options.plant
    return [plant.machine_path(a, ln, m) for a, ln, m in plant.machines()]


def _site(demo: DemoHandle) -> str:
    return f"/sites/{demo.site.site_id}"


def _number(text: str) -> float:
    m = re.search(r"-?[\d,]*\.?\d+", text)
    assert m, f"no number in {text!r}"
    return float(m.group(0).replace(",", ""))


def _tile(machine: str) -> str:
    return f'[data-testid="tile"][data-machine="{machine}"]'


# ---- log in and the board ------------------------------------------------------------------


def test_login_shows_every_machine_with_its_state(
    demo: DemoHandle, api: dict[str, httpx.Client], page: Page
) -> None:
    page.goto(f"{demo.url}/#/board")  # no session: the login page answers any route
    page.wait_for_selector(page_root("login"))
    page.get_by_test_id("login-email").fill(demo.site.email("engineer"))
    page.get_by_test_id("login-password").fill("not the password")
    page.get_by_test_id("login-submit").click()
    page.wait_for_selector('[data-testid="login-error"]:not([hidden])')
    assert page.get_by_test_id("login-error").inner_text().strip()

    login(page, demo.url, *_creds(demo, "engineer"))
    tiles = page.locator('[data-testid="tile"]')
    shown = {
        t.get_attribute("data-machine") or "": t.get_attribute("data-state") for t in tiles.all()
    }
    assert sorted(shown) == sorted(_machines(demo))
    board = api["engineer"].get(f"{_site(demo)}/board").json()
    assert shown == {m["machine"]: m["state"] for m in board["machines"]}
    for line in demo.site.options.plant.lines():
        path = f"{demo.site.options.plant.site.id}/{line[0].id}/{line[1].id}"
        card = page.locator(f'[data-testid="line-card"][data-line="{path}"]')
        assert card.locator('[data-testid="tile"]').count() == len(line[1].machines)


def test_tile_shows_an_ingested_state_change_within_2s(
    demo: DemoHandle, api: dict[str, httpx.Client], page: Page
) -> None:
    login(page, demo.url, *_creds(demo, "engineer"))
    page.wait_for_selector('[data-testid="conn-status"][data-status="live"]')
    machine = _machines(demo)[0]
    tile = page.locator(_tile(machine))
    before = tile.get_attribute("data-state")
    label_before = tile.get_by_test_id("tile-state").inner_text()
    tile.evaluate("el => { el.__probe = 1; }")  # live updates patch this node in place
    new = MachineState.DOWN if before != "down" else MachineState.PLANNED_STOP

    begin = _last_end(demo, api, machine)  # the new interval follows the machine's last one
    t0 = time.perf_counter()
    _ingest_state(demo, api, machine, begin, demo.site.clock(), new, "web-test")
    page.wait_for_function(
        "([sel, s]) => document.querySelector(sel)?.dataset.state === s",
        arg=[_tile(machine), new.label],
        polling="raf",
        timeout=10_000,
    )
    took = time.perf_counter() - t0
    print(f"tile {machine}: {before} -> {new.label} shown {took * 1000:.0f} ms after ingest")
    assert took < 2.0
    assert tile.evaluate("el => el.__probe") == 1
    assert tile.get_by_test_id("tile-state").inner_text() != label_before


def _seconds(shown: str) -> float:
    """A duration as the board shows it in English ("1 h 05 min", "4 min 10 s", "12 s")."""
    unit = {"d": 86_400, "h": 3600, "min": 60, "s": 1}
    parts = re.findall(r"(\d+)\s*(d|h|min|s)\b", shown)
    assert parts, f"not a duration: {shown!r}"
    return float(sum(int(n) * unit[u] for n, u in parts))


def test_time_in_state_runs_at_the_plant_clock_rate(demo: DemoHandle, page: Page) -> None:
    login(page, demo.url, *_creds(demo, "engineer"))
    since_el = page.locator('[data-testid="tile"] [data-testid="tile-since"]').first
    since = int(since_el.get_attribute("data-since") or 0)
    first = _seconds(since_el.inner_text())
    # at 60 plant seconds per wall second, two plant minutes pass in about two wall seconds
    deadline = time.monotonic() + 10
    while (shown := _seconds(since_el.inner_text())) < first + 120:
        assert time.monotonic() < deadline, (
            f"time in state went from {first:.0f} s to {shown:.0f} s in 10 wall seconds: "
            "it does not run at the plant clock's rate"
        )
        page.wait_for_timeout(100)
    expected = (demo.site.clock() - since) / 1e6
    assert abs(shown - expected) <= 100, (shown, expected)  # ticks are 60 plant s apart


def test_state_is_text_and_icon_not_colour_only_with_aa_contrast(
    demo: DemoHandle, page: Page
) -> None:
    login(page, demo.url, *_creds(demo, "engineer"))
    rows: list[dict[str, Any]] = page.evaluate(
        """() => {
          const lum = (c) => {
            const [r, g, b] = c.match(/[\\d.]+/g).slice(0, 3).map(Number).map((v) => {
              v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
            return 0.2126 * r + 0.7152 * g + 0.0722 * b;
          };
          const opaque = (c) => {
            const m = c.match(/[\\d.]+/g);
            return m && (m.length < 4 || +m[3] === 1);
          };
          const bg = (el) => {
            for (let e = el; e; e = e.parentElement) {
              const c = getComputedStyle(e).backgroundColor;
              if (opaque(c)) return c;
            }
            return 'rgb(255, 255, 255)';
          };
          return [...document.querySelectorAll('[data-testid="tile"]')].map((tile) => {
            const s = tile.querySelector('[data-testid="tile-state"]');
            const fg = getComputedStyle(s).color, back = bg(s);
            const [a, b] = [lum(fg), lum(back)].sort((x, y) => y - x);
            return { state: tile.dataset.state, text: s.innerText.trim(),
                     icon: !!s.querySelector('svg, [aria-hidden="true"]'),
                     contrast: (a + 0.05) / (b + 0.05), fg, back };
          });
        }"""
    )
    assert len(rows) == len(_machines(demo))
    text_of: dict[str, set[str]] = {}
    for row in rows:
        assert row["text"], row
        assert row["icon"], row
        assert row["contrast"] >= 4.5, row
        text_of.setdefault(row["state"], set()).add(row["text"])
    assert all(len(v) == 1 for v in text_of.values()), text_of  # one label per state
    labels = [next(iter(v)) for v in text_of.values()]
    assert len(set(labels)) == len(labels)  # and each state its own


def test_keyboard_reaches_tiles_with_visible_focus(demo: DemoHandle, page: Page) -> None:
    login(page, demo.url, *_creds(demo, "engineer"))
    page.keyboard.press("Tab")
    first = page.evaluate("() => document.activeElement.dataset.testid || ''")
    assert first == "skip-link"
    for _ in range(80):
        on_tile = page.evaluate("() => document.activeElement.dataset.testid === 'tile'")
        if on_tile:
            break
        page.keyboard.press("Tab")
    else:
        pytest.fail("80 presses of Tab never reached a machine tile")
    focus: dict[str, Any] = page.evaluate(
        """() => { const el = document.activeElement, s = getComputedStyle(el);
                   return { visible: el.matches(':focus-visible'), outline: s.outlineStyle,
                            width: parseFloat(s.outlineWidth), shadow: s.boxShadow,
                            machine: el.dataset.machine }; }"""
    )
    assert focus["visible"]
    assert (focus["outline"] != "none" and focus["width"] > 0) or focus["shadow"] != "none"
    page.keyboard.press("Enter")
    page.wait_for_selector(page_root("machine"))
    assert page.locator('[data-testid="machine-picker"]').input_value() == focus["machine"]


# ---- reasons and the Pareto --------------------------------------------------------------


def _pareto(page: Page) -> dict[tuple[str, str], float]:
    """The Pareto shown on a line page: seconds by (category, reason)."""
    rows = page.locator('[data-testid="pareto-row"]').all()
    return {
        (r.get_attribute("data-category") or "", r.get_attribute("data-reason") or ""): float(
            r.get_attribute("data-seconds") or 0
        )
        for r in rows
    }


def _last_end(demo: DemoHandle, api: dict[str, httpx.Client], machine: str) -> int:
    now = demo.site.clock()
    r = api["engineer"].get(
        f"{_site(demo)}/states",
        params={"start": demo.site.start, "end": now + 1, "machine": machine},
    )
    r.raise_for_status()
    return int(max(r.json()["end"]))


def _ingest_state(
    demo: DemoHandle,
    api: dict[str, httpx.Client],
    machine: str,
    start: int,
    end: int,
    state: MachineState,
    reason: str,
) -> None:
    """One state interval through the edge's way in (``POST .../ingest``)."""
    body = {"names": [machine], "index": [0], "start": [start], "end": [end]}
    body |= {"state": [int(state)], "reason": [reason]}
    r = api["admin"].post(f"{_site(demo)}/ingest", json={"states": body})
    r.raise_for_status()
    assert r.json()["states"] == 1


def _unexplained_stop(
    demo: DemoHandle, api: dict[str, httpx.Client], machine: str
) -> tuple[int, int]:
    """A ``down`` stop without a reason, of at least five plant minutes, right after the
    machine's last interval (the demo's factory gives every fault a code)."""
    start = _last_end(demo, api, machine)
    deadline = time.monotonic() + 30
    while demo.site.clock() - start < 300_000_000:  # the plant clock runs at 60x
        assert time.monotonic() < deadline, "the plant clock does not move"
        time.sleep(0.05)
    end = demo.site.clock()
    _ingest_state(demo, api, machine, start, end, MachineState.DOWN, "")
    return start, end


def test_operator_assigns_a_reason_and_the_pareto_shows_it(
    demo: DemoHandle, api: dict[str, httpx.Client], browser: Browser, page: Page
) -> None:
    machine = _machines(demo)[-1]
    line = machine.rsplit("/", 1)[0]
    start, end = _unexplained_stop(demo, api, machine)
    duration = (end - start) / 1e6

    login(page, demo.url, *_creds(demo, "operator"))  # tokens are per tab: one page
    open_route(page, demo.url, f"line?line={line}")
    page.wait_for_selector('[data-testid="pareto"]')
    pareto_before = _pareto(page)

    open_route(page, demo.url, "reasons")
    row = page.locator(
        f'[data-testid="stop-row"][data-machine="{machine}"][data-start="{start}"]'
        '[data-explained="0"]'
    )
    category_btn = row.locator('[data-testid="category-btn"]').first
    category = category_btn.get_attribute("data-category") or ""
    category_btn.click()  # first tap: the category; second: the reason
    reason_btn = row.locator('[data-testid="reason-btn"]:visible').first
    reason = reason_btn.get_attribute("data-reason") or ""
    reason_btn.click()
    done = page.locator(
        f'[data-testid="stop-row"][data-machine="{machine}"][data-start="{start}"]'
        '[data-explained="1"]'
    )
    done.wait_for()
    operator_email = demo.site.email("operator")
    assert operator_email in done.get_by_test_id("stop-entered").inner_text()

    open_route(page, demo.url, f"line?line={line}")
    page.wait_for_selector(
        f'[data-testid="pareto-row"][data-category="{category}"][data-reason="{reason}"]'
    )
    after = _pareto(page)
    before = pareto_before.get((category, reason), 0.0)
    assert after[(category, reason)] - before == pytest.approx(duration, abs=1.0)
    entered = api["operator"].get(
        f"{_site(demo)}/stops", params={"start": start, "end": start + 1, "machine": machine}
    )
    got = next(s for s in entered.json()["stops"] if s["start"] == start)
    assert (got["category"], got["reason"]) == (category, reason)
    assert got["entered_by"] and got["entered_by_name"] == operator_email

    # someone else sees who entered it by their email, not by a user id
    other = browser.new_context(viewport=DESKTOP, locale="en-US")
    other.set_default_timeout(15_000)
    try:
        theirs = other.new_page()
        login(theirs, demo.url, *_creds(demo, "engineer"))
        open_route(theirs, demo.url, "reasons")
        theirs.get_by_test_id("stops-filter").click()  # all stops, not only unexplained
        theirs.wait_for_selector(page_root("reasons"))
        shown = theirs.locator(
            f'[data-testid="stop-row"][data-machine="{machine}"][data-start="{start}"] '
            '[data-testid="stop-entered"]'
        ).inner_text()
        assert operator_email in shown and "user:" not in shown, shown
    finally:
        other.close()


def test_default_reasons_are_translated_and_plant_reasons_keep_their_label(
    demo: DemoHandle, api: dict[str, httpx.Client], page: Page
) -> None:
    zh = json.loads((STATIC_DIR / "i18n" / "zh-TW.json").read_text(encoding="utf-8"))
    tree = api["operator"].get(f"{_site(demo)}/reasons/tree").json()["categories"]
    default = ReasonTree.default().categories
    plant_own = [
        (c["id"], r) for c in tree for r in c["reasons"] if r["id"] not in default.get(c["id"], {})
    ]
    assert plant_own, "the demo plant has failure modes of its own"
    machine = _machines(demo)[1]
    start, _ = _unexplained_stop(demo, api, machine)

    page.goto(f"{demo.url}/#/login")
    page.wait_for_selector(page_root("login"))
    page.get_by_test_id("lang-switcher").select_option("zh-TW")
    page.wait_for_selector('html[lang="zh-TW"]')
    login(page, demo.url, *_creds(demo, "operator"))
    open_route(page, demo.url, "reasons")
    row = page.locator(f'[data-testid="stop-row"][data-machine="{machine}"][data-start="{start}"]')
    for c in tree:
        # the machine is offered the generic reasons and its own failure modes only
        offered = [r for r in c["reasons"] if r.get("machines") is None or machine in r["machines"]]
        btn = row.locator(f'[data-testid="category-btn"][data-category="{c["id"]}"]')
        if not offered:
            assert btn.count() == 0
            continue
        btn.click()
        if c["id"] in default:
            assert btn.inner_text() == zh[f"reasoncat.{c['id']}"]
        for r in offered:
            rb = row.locator(f'[data-testid="reason-btn"][data-reason="{r["id"]}"]')
            if r["id"] in default.get(c["id"], {}):
                assert rb.inner_text() == zh[f"reasons.{c['id']}.{r['id']}"]
                assert rb.get_attribute("translate") is None
            else:  # a plant's own reason: its zh-TW label from the model, marked as data
                assert rb.inner_text() == r.get("label_i18n", {}).get("zh-TW", r["label"])
                assert rb.get_attribute("translate") == "no"
    assert page.evaluate("() => window.andonI18nAudit()") == []


# ---- machine trends ------------------------------------------------------------------------


def test_trend_zoom_changes_the_range_and_fetches_again(demo: DemoHandle, page: Page) -> None:
    login(page, demo.url, *_creds(demo, "engineer"))
    machine = _machines(demo)[0]
    open_route(page, demo.url, f"machine?machine={machine}")
    trend = page.locator('[data-testid="trend"]').first
    trend.wait_for()
    s0, e0 = int(trend.get_attribute("data-start") or 0), int(trend.get_attribute("data-end") or 0)
    assert e0 > s0
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url) if "/telemetry/" in r.url else None)
    page.locator('[data-testid="trend-zoom"] [data-zoom="in"]').click()
    page.wait_for_function(
        "([s, e]) => { const t = document.querySelector('[data-testid=\"trend\"]');"
        " return t && (+t.dataset.start !== s || +t.dataset.end !== e); }",
        arg=[s0, e0],
    )
    s1, e1 = int(trend.get_attribute("data-start") or 0), int(trend.get_attribute("data-end") or 0)
    assert s0 <= s1 < e1 <= e0 and (e1 - s1) < (e0 - s0)
    page.wait_for_function(
        "() => document.querySelector('[data-testid=\"trend\"]')?.closest('[data-ready=\"1\"]')"
    )
    assert requests, "zooming made no new telemetry request"


# ---- twin ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_twin_scenario_runs_and_shows_the_result(
    demo: DemoHandle, api: dict[str, httpx.Client], page: Page, shots: Path
) -> None:
    login(page, demo.url, *_creds(demo, "engineer"))
    open_route(page, demo.url, "twin")
    buf = page.locator('[data-testid="twin-buffer"]').first
    buf.fill(str(int(float(buf.input_value() or "0")) + 5))
    page.get_by_test_id("twin-hours").fill("8")
    page.get_by_test_id("twin-replications").fill("3")
    page.get_by_test_id("twin-run").click()
    result = page.get_by_test_id("twin-result")
    result.wait_for(timeout=90_000)
    assert page.get_by_test_id("twin-progress").get_attribute("data-status") == "done"
    job = api["engineer"].get(f"{_site(demo)}/twin/jobs/{result.get_attribute('data-job')}")
    job.raise_for_status()
    res = job.json()["result"]
    for col in ("today", "scenario"):
        shown = _number(
            page.locator(f'[data-testid="twin-{col}"] [data-testid="twin-throughput"]').inner_text()
        )
        # per planned production hour, as the board gives a line's rate
        assert shown == pytest.approx(res[col]["per_planned_h"], rel=0.01, abs=0.1)
        assert page.locator(f'[data-testid="twin-{col}"] [data-testid="twin-ci"]').inner_text()
    assert re.search(r"\d", page.get_by_test_id("twin-money").inner_text())
    screenshot(page, shots, "twin-result")


# ---- roles ---------------------------------------------------------------------------------


def test_operator_cannot_reach_admin(
    demo: DemoHandle, api: dict[str, httpx.Client], page: Page
) -> None:
    login(page, demo.url, *_creds(demo, "operator"))
    assert page.locator('[data-testid="nav-link"][data-route="admin"]').count() == 0
    page.goto(f"{demo.url}/#/admin")
    page.wait_for_selector('[data-page="forbidden"] [data-testid="forbidden"]')
    assert page.locator('[data-page="admin"]').count() == 0
    for path in ("/users", "/api-keys", "/audit"):
        assert api["operator"].get(path).status_code == 403, path
        assert api["admin"].get(path).status_code == 200, path


# ---- languages -----------------------------------------------------------------------------


def test_zh_tw_has_no_untranslated_string_on_any_page(
    demo: DemoHandle, page: Page, shots: Path
) -> None:
    page.goto(f"{demo.url}/#/login")
    page.wait_for_selector(page_root("login"))
    page.get_by_test_id("lang-switcher").select_option("zh-TW")
    page.wait_for_selector('html[lang="zh-TW"]')
    untranslated: dict[str, Any] = {}
    if found := page.evaluate("() => window.andonI18nAudit()"):
        untranslated["login"] = found
    login(page, demo.url, *_creds(demo, "admin"))
    assert page.evaluate("() => document.documentElement.lang") == "zh-TW"
    for name in PAGES:
        open_route(page, demo.url, name)
        if found := page.evaluate("() => window.andonI18nAudit()"):
            untranslated[name] = found
    open_route(page, demo.url, "board")
    screenshot(page, shots, "board-zh-TW", live=True)
    assert untranslated == {}


# ---- screenshots ---------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("size", [DESKTOP, TABLET], ids=["desktop", "tablet"])
def test_screenshots_of_every_page(
    demo: DemoHandle,
    api: dict[str, httpx.Client],
    browser: Browser,
    shots: Path,
    size: ViewportSize,
) -> None:
    _unexplained_stop(demo, api, _machines(demo)[-2])  # something for the reasons page
    # targets for the first line: the line page's goal lines
    plant = demo.site.options.plant
    area, ln = plant.lines()[0]
    target = {"line": f"{plant.site.id}/{area.id}/{ln.id}", "oee": 0.85, "per_hour": 45}
    assert api["admin"].put(f"/sites/{demo.site.site_id}/targets", json=target).status_code == 200
    context = browser.new_context(viewport=size, locale="en-US")
    context.set_default_timeout(20_000)
    try:
        page = context.new_page()
        page.goto(f"{demo.url}/#/login")
        page.wait_for_selector(page_root("login"))
        written = [screenshot(page, shots, "login")]
        login(page, demo.url, *_creds(demo, "admin"))
        for name in PAGES:
            open_route(page, demo.url, name)
            written.append(screenshot(page, shots, name, live=name == "board"))
        for path in written:
            assert path.stat().st_size > 10_000, path  # a rendered page, not a blank one
    finally:
        context.close()


# ---- administration ------------------------------------------------------------------------


def _confirm(page: Page, opener: Any) -> None:
    """Open a confirmation with ``opener``: Escape first (nothing happens, focus returns),
    then open it again and confirm with the keyboard."""
    opener.click()
    dialog = page.get_by_test_id("confirm-dialog")
    dialog.wait_for()
    assert page.evaluate("() => document.activeElement.dataset.testid") == "confirm-cancel"
    page.keyboard.press("Escape")
    dialog.wait_for(state="detached")
    opener.click()
    dialog.wait_for()
    page.get_by_test_id("confirm-ok").focus()
    page.keyboard.press("Enter")
    dialog.wait_for(state="detached")


def test_admin_adds_an_operator_who_sees_no_admin_link_then_deletes_them(
    demo: DemoHandle, api: dict[str, httpx.Client], browser: Browser, page: Page
) -> None:
    email, password = f"new-op-{time.monotonic_ns()}@demo.andon", "a long enough secret 1"
    login(page, demo.url, *_creds(demo, "admin"))
    open_route(page, demo.url, "admin")
    page.get_by_test_id("new-user-email").fill(email)
    page.get_by_test_id("new-user-password").fill(password)
    page.get_by_test_id("new-user-role").select_option("operator")
    page.get_by_test_id("new-user-site").select_option(demo.site.site_id)
    page.get_by_test_id("new-user-submit").click()
    row = page.locator(f'[data-testid="user-row"][data-email="{email}"]')
    row.wait_for()
    users = {u["email"]: u for u in api["admin"].get("/users").json()}
    grants = [(g["role"], g["site_id"]) for g in users[email]["grants"]]
    assert grants == [("operator", demo.site.site_id)]

    other = browser.new_context(viewport=DESKTOP, locale="en-US")
    other.set_default_timeout(15_000)
    try:
        theirs = other.new_page()
        login(theirs, demo.url, email, password)
        assert theirs.locator('[data-testid="nav-link"][data-route="board"]').count() == 1
        assert theirs.locator('[data-testid="nav-link"][data-route="admin"]').count() == 0
    finally:
        other.close()

    _confirm(page, row.get_by_test_id("user-delete"))
    row.wait_for(state="detached")
    assert email not in {u["email"] for u in api["admin"].get("/users").json()}
    r = httpx.post(
        f"{demo.url}/api/v1/auth/login", json={"email": email, "password": password}, timeout=30
    )
    assert r.status_code == 401


def test_admin_creates_an_app_key_shown_once_that_works_until_revoked(
    demo: DemoHandle, page: Page
) -> None:
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=demo.url)
    name = f"web-test-{time.monotonic_ns()}"
    login(page, demo.url, *_creds(demo, "admin"))
    open_route(page, demo.url, "admin")
    page.get_by_test_id("new-key-name").fill(name)
    page.get_by_test_id("new-key-kind").select_option("app")
    boxes = page.locator('[data-testid="new-key-permission"]')
    assert boxes.count() >= 1 and all(b.is_checked() for b in boxes.all())
    page.get_by_test_id("new-key-ttl").fill("7")
    page.get_by_test_id("new-key-submit").click()

    panel = page.get_by_test_id("key-secret-panel")
    panel.wait_for()
    assert panel.get_by_test_id("key-secret-warning").inner_text().strip()
    secret = page.get_by_test_id("key-secret").input_value()
    assert secret.startswith("andon_")
    page.get_by_test_id("key-copy").click()
    page.wait_for_function(
        "() => document.querySelector('[data-testid=\"key-copied\"]')?.textContent.trim()"
    )
    assert page.evaluate("() => navigator.clipboard.readText()") == secret

    def sites_with_key() -> int:
        r = httpx.get(
            f"{demo.url}/api/v1/sites", headers={"Authorization": f"Bearer {secret}"}, timeout=30
        )
        return r.status_code

    assert sites_with_key() == 200
    page.get_by_test_id("key-secret-done").click()
    panel.wait_for(state="detached")
    assert secret not in page.content()  # shown once: gone from the page

    row = page.locator(f'[data-testid="key-row"][data-name="{name}"]')
    assert row.get_attribute("data-revoked") == "0"
    _confirm(page, row.get_by_test_id("key-revoke"))
    page.locator(f'[data-testid="key-row"][data-name="{name}"][data-revoked="1"]').wait_for()
    assert sites_with_key() == 401

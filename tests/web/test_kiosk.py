"""Kiosk mode in a real browser: a board device paired by link survives a browser restart
with no user session, the tiles fill a 1920x1080 and a 3840x2160 screen without scrolling
(screenshots of both), targets set in the kiosk settings show as plan versus actual, and a
revoked device falls back to the pairing form."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, ViewportSize

from andon.demo.web import DemoHandle
from tests.web.browser import login, page_root, screenshot

FHD: ViewportSize = {"width": 1920, "height": 1080}
UHD: ViewportSize = {"width": 3840, "height": 2160}


def _site(demo: DemoHandle) -> str:
    return f"/sites/{demo.site.site_id}"


def _machines(demo: DemoHandle) -> list[str]:
    plant = demo.site.options.plant
    return [plant.machine_path(a, ln, m) for a, ln, m in plant.machines()]


def _register(demo: DemoHandle, api: dict[str, httpx.Client], name: str) -> tuple[str, str]:
    """A new board device: ``(device id, pairing code)``."""
    r = api["admin"].post(f"{_site(demo)}/board-devices", json={"name": name})
    assert r.status_code == 201, r.text
    return r.json()["device"]["id"], f"{demo.site.site_id}.{r.json()['secret']}"


def _kiosk(page: Page) -> None:
    page.wait_for_selector(page_root("kiosk"), timeout=20_000)
    errors = page.locator('[data-page="kiosk"] [data-testid="page-error"]')
    assert errors.count() == 0, errors.first.inner_text()


def _layout(page: Page) -> dict[str, Any]:
    got: dict[str, Any] = page.evaluate(
        """async () => {
          await document.fonts.ready;
          const r = (el) => el.getBoundingClientRect();
          const lines = r(document.querySelector('[data-testid="kiosk-lines"]'));
          const tiles = [...document.querySelectorAll('[data-testid="kiosk-tile"]')].map(r);
          const fig = getComputedStyle(document.querySelector('[data-testid="kiosk-oee"]'));
          return {
            scrollH: document.documentElement.scrollHeight,
            scrollW: document.documentElement.scrollWidth,
            innerH: innerHeight, innerW: innerWidth,
            linesArea: lines.width * lines.height,
            tileArea: tiles.reduce((s, t) => s + t.width * t.height, 0),
            tilesInside: tiles.every(
              (t) => t.bottom <= innerHeight + 0.5 && t.right <= innerWidth + 0.5),
            figPx: parseFloat(fig.fontSize),
            nav: document.querySelectorAll('nav, [data-testid="nav"]').length,
            figsApart: [...document.querySelectorAll('.kfigs')].every((f) => {
              const rs = [...f.children].map(r);
              return rs.every((x, i) => i === 0 || rs[i - 1].right <= x.left + 0.5);
            }),
            idsWhole: [...document.querySelectorAll('.ktile-id, .ktile-state')].every(
              (el) => el.scrollWidth <= el.clientWidth),
          };
        }"""
    )
    return got


@contextmanager
def _screen(
    browser: Browser, size: ViewportSize = FHD, locale: str = "en-US", **options: Any
) -> Iterator[tuple[BrowserContext, Page]]:
    """A fresh browser context (a TV's browser) with one page, closed afterwards."""
    ctx = browser.new_context(viewport=size, locale=locale, **options)
    try:
        yield ctx, ctx.new_page()
    finally:
        ctx.close()


def test_a_paired_device_survives_a_restart_and_fills_both_screens(
    demo: DemoHandle, api: dict[str, httpx.Client], browser: Browser, shots: Path
) -> None:
    _, code = _register(demo, api, "Hall TV")
    plant = demo.site.options.plant
    area, line = plant.lines()[0]
    target = {"line": f"{plant.site.id}/{area.id}/{line.id}", "oee": 0.85, "per_hour": 50}
    assert api["admin"].put(f"{_site(demo)}/targets", json=target).status_code == 200
    with _screen(browser) as (ctx, page):
        page.goto(f"{demo.url}/#/kiosk?pair={code}")
        _kiosk(page)
        # the credential left the address bar at once, and stays in the browser's storage
        assert "pair=" not in page.url
        assert code.split(".", 1)[1] in (page.evaluate("localStorage.getItem('andon.kiosk')") or "")
        state = ctx.storage_state()
    # a "reboot": a fresh browser context with the same storage and no user session
    sizes: dict[str, dict[str, Any]] = {}
    for size in (FHD, UHD):
        with _screen(browser, size, storage_state=state) as (_, page):
            page.goto(f"{demo.url}/#/kiosk")
            _kiosk(page)
            page.wait_for_selector('[data-testid="kiosk-conn"][data-status="live"]')
            tiles = page.locator('[data-testid="kiosk-tile"]')
            assert sorted(t.get_attribute("data-machine") or "" for t in tiles.all()) == sorted(
                _machines(demo)
            )
            lay = _layout(page)
            # full screen, no navigation, nothing to scroll, tiles on screen and large
            assert lay["nav"] == 0
            assert lay["scrollH"] <= lay["innerH"] and lay["scrollW"] <= lay["innerW"]
            assert lay["tilesInside"]
            # big numbers side by side, machine ids and states not cut off
            assert lay["figsApart"] and lay["idsWhole"]
            assert lay["linesArea"] >= 0.75 * lay["innerW"] * lay["innerH"]
            assert lay["tileArea"] >= 0.25 * lay["innerW"] * lay["innerH"]
            sizes[str(size["width"])] = lay
            screenshot(page, shots, "kiosk")
    # the same layout, twice as large on the 4K screen
    assert sizes["3840"]["figPx"] == pytest.approx(2 * sizes["1920"]["figPx"], rel=0.02)
    assert sizes["1920"]["figPx"] >= 60  # readable across a room


def test_targets_from_the_kiosk_settings_show_plan_versus_actual(
    demo: DemoHandle, api: dict[str, httpx.Client], page: Page
) -> None:
    plant = demo.site.options.plant
    area, line = plant.lines()[0]
    path = f"{plant.site.id}/{area.id}/{line.id}"
    login(page, demo.url, demo.site.email("admin"), demo.site.passwords[demo.site.email("admin")])
    page.goto(f"{demo.url}/#/kiosk")
    _kiosk(page)
    page.get_by_test_id("kiosk-settings").click()
    page.locator(f'[data-testid="target-per_hour"][data-line="{path}"]').fill("40")
    page.locator(f'[data-testid="target-oee"][data-line="{path}"]').fill("85")
    page.get_by_test_id("target-save").click()
    # saved: the kiosk renders afresh, without the settings panel
    page.wait_for_selector('[data-testid="kiosk-settings-panel"]', state="detached")
    _kiosk(page)
    panel = f'[data-testid="kiosk-line"][data-line="{path}"]'
    k = api["admin"].get(f"{_site(demo)}/kiosk", params={"line": path}).json()["lines"][0]
    assert k["target"]["per_hour"] == 40 and k["target"]["oee"] == pytest.approx(0.85)
    shown_plan = page.locator(f'{panel} [data-testid="kiosk-plan"]').inner_text()
    shown_actual = page.locator(f'{panel} [data-testid="kiosk-actual"]').inner_text()
    assert int(shown_actual.replace(",", "")) == k["shift"]["actual"]
    # the plant clock runs at 60x: a wall second adds 2/3 of a part to the plan at 40/h
    assert abs(int(shown_plan.replace(",", "")) - k["shift"]["plan"]) <= 2
    assert page.locator(f'{panel} [data-testid="kiosk-progress"] .kbar-goal').is_visible()


def test_a_revoked_device_returns_to_the_pairing_form(
    demo: DemoHandle, api: dict[str, httpx.Client], browser: Browser
) -> None:
    device, code = _register(demo, api, "to revoke")
    with _screen(browser) as (_, page):
        page.goto(f"{demo.url}/#/kiosk?pair={code}")
        _kiosk(page)
        page.wait_for_selector('[data-testid="kiosk-conn"][data-status="live"]')
        r = api["admin"].delete(f"{_site(demo)}/board-devices/{device}")
        assert r.status_code == 200
        page.wait_for_selector('[data-testid="kiosk-why"]', timeout=15_000)
        assert page.evaluate("localStorage.getItem('andon.kiosk')") is None
        page.get_by_test_id("kiosk-pair-code").fill("not a code")
        page.get_by_test_id("kiosk-pair-go").click()
        assert page.locator('[data-testid="kiosk-pair"] .error').is_visible()


def test_the_line_page_shows_buffer_levels_and_the_lines_targets(
    demo: DemoHandle, api: dict[str, httpx.Client], page: Page
) -> None:
    plant = demo.site.options.plant
    area, line = plant.lines()[0]
    path = f"{plant.site.id}/{area.id}/{line.id}"
    target = {"line": path, "oee": 0.85, "per_hour": 45}
    assert api["admin"].put(f"{_site(demo)}/targets", json=target).status_code == 200
    login(page, demo.url, demo.site.email("admin"), demo.site.passwords[demo.site.email("admin")])
    page.goto(f"{demo.url}/#/line?line={path}")
    page.wait_for_selector(page_root("line"), timeout=20_000)
    flow = api["admin"].get(f"{_site(demo)}/lines/flow", params={"line": path}).json()
    shown = {
        g.get_attribute("data-buffer"): g.get_attribute("data-level")
        for g in page.locator('[data-testid="flow-buffer"]').all()
    }
    # every buffer has a level (it showed "–" for all), the API's (the factory is paused)
    assert shown == {b["buffer"]: str(b["level"]) for b in flow["buffers"]}
    assert all(b["level"] is not None for b in flow["buffers"])
    assert "85" in page.get_by_test_id("goal-oee").inner_text()
    assert "45" in page.get_by_test_id("goal-rate").inner_text()


def test_the_kiosk_is_translated_in_zh_tw(
    demo: DemoHandle, api: dict[str, httpx.Client], browser: Browser
) -> None:
    _, code = _register(demo, api, "zh TV")
    with _screen(browser, locale="zh-TW") as (_, page):
        page.goto(f"{demo.url}/#/login")
        page.evaluate("localStorage.setItem('andon.lang', 'zh-TW')")
        page.goto(f"{demo.url}/#/kiosk?pair={code}")
        _kiosk(page)
        assert page.evaluate("window.andonI18nAudit()") == []
        assert "良品數" in page.get_by_test_id("kiosk-lines").inner_text()

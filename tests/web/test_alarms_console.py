"""The alarm console in Chromium against the served demo: cleanroom particles ingested above
ISO class 7 raise a signal alarm (the demo plant's limit, evaluated by the server's own
background evaluator); an operator acknowledges and shelves it with a reason on the console,
the board hides it and counts it, and the shelving is audited; the page has no untranslated
text in zh-TW."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
from playwright.sync_api import Page

from andon.demo.web import DemoHandle
from tests.web.browser import login, open_route, page_root, screenshot

S = 1_000_000


def _creds(demo: DemoHandle, user: str) -> tuple[str, str]:
    email = demo.site.email(user)
    return email, demo.site.passwords[email]


def test_operator_acknowledges_and_shelves_a_particle_alarm(
    demo: DemoHandle, api: dict[str, httpx.Client], page: Page, shots: Path
) -> None:
    admin = api["admin"]
    site = f"/sites/{demo.site.site_id}"
    plant = demo.site.options.plant
    sig = f"{plant.site.id}/cleanroom/particles"
    now = admin.get(f"{site}/board").json()["now"]
    # 500 000 particles/m³ from two plant minutes ago to an hour ahead (the plant clock runs
    # at 60x; the evaluator judges each sample once the clock passes it)
    ts = [now - 120 * S + i * 10 * S for i in range(372)]
    body = {
        "samples": {
            "names": [sig],
            "index": [0] * len(ts),
            "ts": ts,
            "value": [500_000.0] * len(ts),
            "quality": [0] * len(ts),
        }
    }
    r = admin.post(f"{site}/ingest", json=body)
    assert r.status_code == 200, r.text

    deadline = time.monotonic() + 90
    alarm = None
    while alarm is None:
        got = admin.get(f"{site}/alarms", params={"kind": "high"}).json()["alarms"]
        alarm = next((a for a in got if a["signal"] == sig), None)
        if alarm is None:
            assert time.monotonic() < deadline, "no particle alarm from the evaluator"
            time.sleep(1)
    assert alarm["threshold"] == 352_000 and alarm["value"] == 500_000

    login(page, demo.url, *_creds(demo, "operator"))
    board_row = page.locator(f'[data-testid="alert-row"][data-alert="{alarm["id"]}"]')
    board_row.wait_for()
    shown = board_row.inner_text()
    assert "particles above its high limit: 500,000 (limit 352,000)" in shown, shown
    open_route(page, demo.url, "alarms")
    row = page.locator(f'[data-testid="alarm-row"][data-alert="{alarm["id"]}"]')
    row.wait_for()
    text = row.get_by_test_id("alarm-text").inner_text()
    assert "Above the high limit" in text and "352,000" in text and "particles/m³" in text
    row.get_by_test_id("alarm-ack").click()
    page.locator(
        f'[data-testid="alarm-row"][data-alert="{alarm["id"]}"][data-acked="1"]'
    ).wait_for()
    row.get_by_test_id("alarm-shelve").click()
    row.get_by_test_id("shelve-reason").fill("filter change in progress")
    row.get_by_test_id("shelve-confirm").click()
    row.wait_for(state="detached")  # the default view lists active alarms only
    page.get_by_test_id("alarms-state").select_option("shelved")
    shelved = page.locator(
        f'[data-testid="alarm-row"][data-alert="{alarm["id"]}"][data-shelved="1"]'
    )
    shelved.wait_for()
    assert "filter change in progress" in shelved.get_by_test_id("alarm-shelf").inner_text()
    page.get_by_test_id("alarms-kind").select_option("low")  # filters combine
    page.locator('[data-testid="alarms-empty"]:not([hidden])').wait_for()
    page.get_by_test_id("alarms-kind").select_option("high")
    page.get_by_test_id("alarms-since").select_option("8h")
    shelved.wait_for()
    page.get_by_test_id("alarms-state").select_option("all")
    page.get_by_test_id("alarms-kind").select_option("")
    shelved.wait_for()
    screenshot(page, shots, "alarms")

    open_route(page, demo.url, "board")
    page.get_by_test_id("board-shelved").wait_for()
    assert page.locator(f'[data-testid="alert-row"][data-alert="{alarm["id"]}"]').count() == 0
    audit = admin.get("/audit", params={"action": "alerts.shelve"}).json()
    mine = [x for x in audit if x["object"] == f"alert:{alarm['id']}"]
    assert mine and mine[0]["detail"]["after"]["shelve_reason"] == "filter change in progress"
    assert mine[0]["actor"].startswith("user:")

    # the console in Traditional Chinese leaves nothing untranslated
    page.get_by_test_id("lang-switcher").select_option("zh-TW")
    page.wait_for_selector('html[lang="zh-TW"]')
    open_route(page, demo.url, "alarms?state=all")
    page.wait_for_selector(f"{page_root('alarms')} [data-testid='alarm-row']")
    assert page.evaluate("() => window.andonI18nAudit()") == []


def test_engineer_overrides_a_signals_limits_and_puts_the_models_back(
    demo: DemoHandle, api: dict[str, httpx.Client], page: Page
) -> None:
    sig = f"{demo.site.options.plant.site.id}/cleanroom/humidity"
    login(page, demo.url, *_creds(demo, "engineer"))
    open_route(page, demo.url, "alarms")
    row = page.locator(f'[data-testid="limit-row"][data-signal="{sig}"]')
    assert row.get_attribute("data-source") == "model"
    row.get_by_test_id("limit-edit").click()
    row.get_by_test_id("limit-high").fill("58")
    row.get_by_test_id("limit-on_delay_s").fill("30")
    row.get_by_test_id("limit-save").click()
    edited = page.locator(f'[data-testid="limit-row"][data-signal="{sig}"][data-source="engineer"]')
    edited.wait_for()
    assert edited.locator('[data-field="high"]').inner_text() == "58"
    got = {
        x["signal"]: x
        for x in api["engineer"].get(f"/sites/{demo.site.site_id}/alarms/limits").json()
    }
    assert got[sig]["alarms"] == {
        "high": 58,
        "low": 35,
        "deadband": 1.5,
        "on_delay_s": 30,
        "off_delay_s": 120,
    }
    # a limit that makes no sense is refused with the server's reason, nothing changes
    edited.get_by_test_id("limit-edit").click()
    edited.get_by_test_id("limit-low").fill("60")
    edited.get_by_test_id("limit-save").click()
    page.get_by_text("must be below").wait_for()
    edited.get_by_test_id("limit-reset").click()
    page.locator(f'[data-testid="limit-row"][data-signal="{sig}"][data-source="model"]').wait_for()
    audit = api["admin"].get("/audit", params={"action": "alarms.limits.put"}).json()
    assert [x["detail"]["after"] for x in audit if x["object"] == f"signal:{sig}"][-2:] in (
        [
            None,
            {"high": 58.0, "low": 35.0, "deadband": 1.5, "on_delay_s": 30.0, "off_delay_s": 120.0},
        ],
        [
            {"high": 58.0, "low": 35.0, "deadband": 1.5, "on_delay_s": 30.0, "off_delay_s": 120.0},
            None,
        ],
    )

"""The Apps and Findings pages in Chromium against the served demo (issue 14 items 5-6): the
tenant admin sees the catalog with the permissions an app asks for and its claims beside
what its test run measured, installs it on the site through the dialog (accepting the
permissions), a finding of the instance appears in the inbox with its evidence drawn over
its window, is confirmed with a comment (what the SDK's ``feedback.list`` returns, read
through the repository), and the app is uninstalled; both pages leave nothing untranslated
in zh-TW."""

from __future__ import annotations

from typing import Any

import httpx
from playwright.sync_api import Page

from andon.apps.catalog import Catalog, Who, grant_of
from andon.apps.repository import SqlAppRepository
from andon.demo.web import DemoHandle
from andon.sdk import Finding
from tests.api.appworld import APP_DIRS, report_of
from tests.web.browser import login, open_route, page_root


def _catalog(demo: DemoHandle) -> Catalog:
    svc = demo.site.app.state.services
    pf = svc.platform
    return Catalog(pf.db, pf.audit, SqlAppRepository(pf.db, svc.clock), svc.clock)


def test_install_review_a_finding_and_uninstall(
    demo: DemoHandle, api: dict[str, httpx.Client], page: Page
) -> None:
    cat = _catalog(demo)
    for version, figure in (("0.1.0", 0.75), ("0.2.0", 0.7)):
        d = APP_DIRS[version]
        demo.call(cat.publish(d, report_of(d, precision=figure, recall=0.9), Who("cli")))
    email = demo.site.email("admin")
    login(page, demo.url, email, demo.site.passwords[email])

    open_route(page, demo.url, "apps")
    card = page.locator('[data-testid="catalog-app"][data-app="probe"]')
    assert "Spindle probe" in card.inner_text() and "0.2.0" in card.inner_text()
    perms = card.get_by_test_id("permissions").locator("li")
    assert sorted(perms.evaluate_all("(xs) => xs.map((x) => x.dataset.perm)")) == [
        "feedback:read",
        "findings:write",
        "states:read",
        "telemetry:read",
    ]
    precision = card.locator('[data-testid="claim-row"][data-metric="precision"] td')
    assert [x.strip() for x in precision.all_inner_texts()] == ["Precision", "80%", "70%"]
    assert (
        card.locator('[data-testid="claim-row"][data-metric="recall"]').get_attribute("data-ok")
        == "1"
    )
    card.get_by_test_id("install").click()
    dialog = page.get_by_test_id("install-dialog")
    assert dialog.get_by_test_id("install-ok").is_disabled()  # until the permissions are accepted
    dialog.locator('[data-setting="threshold"]').fill("3.5")
    dialog.get_by_test_id("install-accept").check()
    dialog.get_by_test_id("install-ok").click()
    row = page.locator('[data-testid="installation-row"][data-app="probe"]')
    row.wait_for()
    assert row.get_attribute("data-status") == "not running"  # the demo runs no supervisor
    row.get_by_test_id("instance-logs-open").click()
    assert "not run here" in page.get_by_test_id("instance-logs").inner_text()
    iid = row.get_attribute("data-installation")
    assert iid is not None
    inst = api["admin"].get(f"/apps/installations/{iid}").json()
    assert inst["settings"]["threshold"] == 3.5 and inst["site_ids"] == [demo.site.site_id]

    # the instance reports a finding (as its gateway would) over the pre-filled data
    plant = demo.site.options.plant
    machine = next(p for p in plant.signal_paths() if p.endswith("/vibration")).rsplit("/", 1)[0]
    signal = f"{machine}/vibration"
    t0 = demo.site.start + 3_600_000_000
    grant = grant_of(demo.call(cat.installation(demo.site.tenant, iid)))
    finding = Finding(type="spindle_wear", site=demo.site.site_id, machine=machine,
                      start_us=t0, end_us=t0 + 1_200_000_000, score=0.82,
                      title="Spindle vibration rising", explanation="RMS up 40 % in 20 min",
                      signals=(signal,), evidence={"rms_rise_pct": 40})  # fmt: skip
    repo = cat.repository
    fid = demo.call(repo.add_finding(grant, finding, t0 + 1_300_000_000))

    open_route(page, demo.url, "findings")
    frow = page.locator(f'[data-testid="finding-row"][data-finding="{fid}"]')
    assert frow.get_attribute("data-verdict") == "open"
    frow.click()
    detail = page.locator(f'[data-testid="finding-detail"][data-finding="{fid}"]')
    chart = detail.locator(f'[data-testid="evidence-chart"][data-signal="{signal}"]')
    chart.wait_for()
    assert int(chart.get_attribute("data-points") or 0) > 100
    assert chart.get_by_test_id("chart-mark").count() == 1
    assert "rms_rise_pct" in detail.get_by_test_id("finding-evidence").inner_text()
    detail.get_by_test_id("finding-comment").fill("bearing worn, replaced")
    detail.get_by_test_id("finding-confirm").click()
    page.locator(
        f'[data-testid="finding-detail"][data-finding="{fid}"][data-verdict="confirmed"]'
    ).wait_for()
    frow.wait_for(state="detached")  # the inbox lists open findings by default
    fb: list[Any] = demo.call(repo.feedback_since(grant.instance_id, 0))
    assert [(x.finding_id, x.verdict, x.comment) for x in fb] == [
        (fid, "confirmed", "bearing worn, replaced")
    ]
    assert fb[0].by.startswith("user:")

    # both pages, in Traditional Chinese, leave nothing untranslated
    page.get_by_test_id("lang-switcher").select_option("zh-TW")
    page.wait_for_selector('html[lang="zh-TW"]')
    open_route(page, demo.url, f"findings?verdict=all&finding={fid}")
    page.locator(f'[data-testid="finding-detail"][data-finding="{fid}"]').wait_for()
    assert page.evaluate("() => window.andonI18nAudit()") == []
    open_route(page, demo.url, "apps")
    assert page.evaluate("() => window.andonI18nAudit()") == []
    page.get_by_test_id("lang-switcher").select_option("en")
    page.wait_for_selector('html[lang="en"]')

    open_route(page, demo.url, "apps")
    row = page.locator(f'[data-testid="installation-row"][data-installation="{iid}"]')
    row.get_by_test_id("uninstall").click()
    row.get_by_test_id("uninstall-confirm").click()
    row.wait_for(state="detached")
    assert page.locator(f"{page_root('apps')} [data-testid='installed-empty']").is_visible()
    assert api["admin"].get(f"/apps/installations/{iid}").json()["state"] == "uninstalled"
    # the finding and its verdict stay (decision 0902)
    kept = api["operator"].get(f"/sites/{demo.site.site_id}/findings/{fid}").json()
    assert kept["verdict"] == "confirmed"

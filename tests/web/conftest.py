"""Per test module: a served demo (the built-in plant, two pre-filled plant hours, then the
factory paused so only the tests change the data, while the plant clock runs at 60x so that
stops the tests ingest are minutes long) and one headless Chromium. Module scope, not session:
Playwright's sync API keeps an event loop running in the main thread while it is open, which
would break ``asyncio.run`` in the tests that follow."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from andon.demo.web import DemoHandle, demo_server
from tests.web.browser import CHROMIUM, DESKTOP, launch
from tests.web.demos import paused_demo


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoHandle]:
    # the data stops at the end of the pre-fill: keep machines from going offline
    options = paused_demo(tmp_path_factory.mktemp("web-demo"), 2.0, {"stale_after_s": 1e9})
    with demo_server(options) as handle:
        yield handle


@pytest.fixture(scope="module")
def api(demo: DemoHandle) -> Iterator[dict[str, httpx.Client]]:
    """An API client per demo user (``admin``, ``engineer``, ``operator``), logged in."""
    clients: dict[str, httpx.Client] = {}
    try:
        for email, password in demo.site.passwords.items():
            c = httpx.Client(base_url=f"{demo.url}/api/v1", timeout=60)
            r = c.post("/auth/login", json={"email": email, "password": password})
            r.raise_for_status()
            c.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
            clients[email.split("@")[0]] = c
        yield clients
    finally:
        for c in clients.values():
            c.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} missing: run `make services` (scripts/services-chromium.sh)")
    with sync_playwright() as pw:
        b = launch(pw)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport=DESKTOP, locale="en-US")
    context.set_default_timeout(15_000)
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture(scope="session")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where screenshots go: ``$ANDON_SCREENSHOTS`` (``make screenshots``: docs/screenshots)
    or a temporary directory."""
    env = os.environ.get("ANDON_SCREENSHOTS")
    if env:
        d = Path(env)
        d.mkdir(parents=True, exist_ok=True)
        return d
    return tmp_path_factory.mktemp("screenshots")

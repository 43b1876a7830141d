"""Browser helpers of the dashboard tests: Debian's Chromium through Playwright (never a
downloaded browser), logging in through the form, hash routes, and screenshots.

Pages are driven only through the hooks of docs/web/testids.md; a page is ready when its root
has ``data-ready="1"`` (never "network idle": the live stream never idles)."""

from __future__ import annotations

import os
import re
from pathlib import Path

from playwright.sync_api import Browser, Page, Playwright, ViewportSize

__all__ = [
    "CHROMIUM",
    "DESKTOP",
    "TABLET",
    "launch",
    "login",
    "open_route",
    "page_root",
    "screenshot",
]

CHROMIUM = Path("/usr/bin/chromium")
"""Installed by scripts/services-chromium.sh (``make services``)."""

DESKTOP: ViewportSize = {"width": 1920, "height": 1080}
TABLET: ViewportSize = {"width": 820, "height": 1180}

os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")


def launch(pw: Playwright) -> Browser:
    return pw.chromium.launch(executable_path=str(CHROMIUM), headless=True)


def page_root(name: str) -> str:
    return f'[data-page="{name}"][data-ready="1"]'


def open_route(page: Page, base: str, route: str, timeout_ms: float = 20_000) -> None:
    """Go to ``#/<route>`` (e.g. ``line?line=...``) and wait until its page has rendered its
    first data; fails if the page shows its error hook."""
    name = re.split(r"[?]", route, maxsplit=1)[0]
    page.goto(f"{base}/#/{route}")
    page.wait_for_selector(page_root(name), timeout=timeout_ms)
    errors = page.locator(f'[data-page="{name}"] [data-testid="page-error"]')
    assert errors.count() == 0, f"#/{route}: {errors.first.inner_text()}"


def login(page: Page, base: str, email: str, password: str) -> None:
    """Sign in through the form and wait for the board (the default page after login)."""
    page.goto(f"{base}/#/login")
    page.wait_for_selector(page_root("login"))
    page.get_by_test_id("login-email").fill(email)
    page.get_by_test_id("login-password").fill(password)
    page.get_by_test_id("login-submit").click()
    page.wait_for_selector(page_root("board"), timeout=20_000)


def screenshot(page: Page, directory: Path, name: str, live: bool = False) -> Path:
    """``<name>-<width>x<height>.png`` of the full page in ``directory``; with ``live``, once
    the live stream is connected (the board)."""
    if live:
        page.wait_for_selector('[data-testid="conn-status"][data-status="live"]')
    size = page.viewport_size or DESKTOP
    path = directory / f"{name}-{size['width']}x{size['height']}.png"
    page.screenshot(path=str(path), full_page=True)
    return path

"""The dashboard's account pages in Chromium, against ``andon serve``'s app (API and pages)
with a local SMTP server and the test OpenID Connect provider: the login page offers "Sign
in with <provider>" and "Forgot password?" only when they are configured; a mailed reset
link opens the reset page, which sets the password once; single sign-on goes to the
provider and back to a signed-in dashboard. One email has accounts in two tenants."""

from __future__ import annotations

import json
import re
import socket
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from playwright.sync_api import Page, expect

from andon.api import PREFIX
from andon.commands.platform import platform_app
from andon.platform import Platform, Role
from andon.platform.config import Settings
from tests.api.live import LiveServer, live_server
from tests.oidc.harness import CLIENT_ID, CLIENT_SECRET, free_port, provider
from tests.web.browser import page_root

PASSWORD = "the first long password"
EMAIL = "sam@shared.example"


@dataclass
class Inbox:
    messages: list[Message] = field(default_factory=list)
    cond: threading.Condition = field(default_factory=threading.Condition)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.cond:
            self.messages.append(message_from_bytes(envelope.original_content))
            self.cond.notify_all()
        return "250 OK"

    def wait_for(self, n: int, timeout: float = 15.0) -> list[Message]:
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.messages) >= n, timeout), self.messages
            return list(self.messages)


@dataclass
class Served:
    live: LiveServer
    inbox: Inbox
    ids: dict[str, str]
    """tenant → the id of its account of ``EMAIL``"""

    @property
    def url(self) -> str:
        return self.live.url


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp: Path = tmp_path_factory.mktemp("account-pages")
    inbox = Inbox()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        smtp_port = probe.getsockname()[1]
    smtp = Controller(inbox, hostname="127.0.0.1", port=smtp_port)
    smtp.start()
    issuer_port = free_port()
    settings = Settings(
        database_url=f"sqlite:///{tmp / 'meta.db'}",
        telemetry_url=f"duckdb://{tmp / 'telemetry.duckdb'}",
        limits={"api_rps": 0, "auth_per_s": 0, "ingest_points_per_s": 0},
        monitoring={"alert_interval_s": 0},
        security={
            "smtp": {"host": "127.0.0.1", "port": smtp_port, "from_addr": "andon@andon.example"},
            "oidc": {
                "issuer": f"http://127.0.0.1:{issuer_port}",
                "name": "Test IdP",
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "redirect_uri": "http://127.0.0.1:9/",  # set below, once the port is known
                "tenant": "ta",
            },
        },
    )
    try:
        with live_server(platform_app(settings)) as live:
            # the first request waits for the start-up (the lifespan builds the services)
            assert httpx.get(live.url + PREFIX + "/health", timeout=30).status_code == 200
            # the served address is known only now: links and the sign-on come back to it
            settings.security.public_url = live.url
            assert settings.security.oidc is not None
            settings.security.oidc.redirect_uri = f"{live.url}/"
            pf: Platform = live.app.state.services.platform
            ids = {}
            for t in ("tb", "ta"):  # tb's account of the address is the older
                live.run(pf.create_tenant(t, t.upper()))
                u = live.run(pf.create_user(t, EMAIL, PASSWORD, [(Role.VIEWER, None)]))
                ids[t] = str(u["id"])
            with provider(f"{live.url}/", {"sam": EMAIL}, issuer_port):
                yield Served(live, inbox, ids)
    finally:
        smtp.stop()


def _signed_in_as(page: Page, served: Served) -> tuple[str, str]:
    """(tenant, user id) of the session the page holds, asked of the API."""
    page.wait_for_function("() => sessionStorage.getItem('andon.session') !== null")
    session = json.loads(page.evaluate("() => sessionStorage.getItem('andon.session')"))
    me = httpx.get(
        served.url + PREFIX + "/auth/me",
        headers={"Authorization": f"Bearer {session['access']}"},
        timeout=30,
    )
    assert me.status_code == 200, me.text
    return me.json()["tenant_id"], me.json()["id"]


def _login_page(page: Page, served: Served, route: str = "login") -> None:
    page.goto(f"{served.url}/#/{route}")
    page.wait_for_selector(page_root("login"))


def test_the_login_page_offers_only_what_is_configured(page: Page, served: Served) -> None:
    _login_page(page, served)
    assert page.get_by_test_id("login-sso").inner_text() == "Sign in with Test IdP"
    assert page.get_by_test_id("login-forgot").is_visible()
    # the same page where the server has neither: no button, no link
    page.route(
        f"**{PREFIX}/auth/options",
        lambda route: route.fulfill(json={"password_reset": False, "sso": None}),
    )
    page.reload()
    page.wait_for_selector(page_root("login"))
    assert page.get_by_test_id("login-sso").count() == 0
    assert page.get_by_test_id("login-forgot").count() == 0
    assert page.get_by_test_id("login-submit").is_visible()


def test_a_mailed_link_opens_the_reset_page_which_sets_the_password_once(
    page: Page, served: Served
) -> None:
    _login_page(page, served)
    page.get_by_test_id("login-forgot").click()
    page.wait_for_selector(page_root("forgot"))
    n = len(served.inbox.messages)
    page.get_by_test_id("forgot-email").fill(EMAIL)
    page.get_by_test_id("forgot-tenant").fill("ta")  # only ta's account, though tb's is older
    page.get_by_test_id("forgot-submit").click()
    page.get_by_test_id("forgot-sent").wait_for()
    body = served.inbox.wait_for(n + 1)[n].get_payload(decode=True)
    assert isinstance(body, bytes)
    found = re.search(r"(\S+/#/reset\?\S+)", body.decode())
    assert found, body
    link = found.group(1)
    assert link.startswith(served.url + "/#/reset?")
    assert urllib.parse.parse_qs(link.split("?", 1)[1])["tenant"] == ["ta"]

    page.goto(link)
    page.wait_for_selector(page_root("reset"))
    assert "token" not in page.url  # out of the address bar (and the history) at once
    assert "ta" in page.get_by_test_id("reset-tenant").inner_text()
    new = "the second long password"
    page.get_by_test_id("reset-password").fill(new)
    page.get_by_test_id("reset-again").fill(new + "!")
    page.get_by_test_id("reset-submit").click()
    expect(page.get_by_test_id("reset-error")).to_contain_text("differ")
    page.get_by_test_id("reset-again").fill(new)
    page.get_by_test_id("reset-submit").click()
    page.get_by_test_id("reset-done").wait_for()

    page.get_by_test_id("reset-signin").click()  # to the login page, the tenant filled in
    page.wait_for_selector(page_root("login"))
    assert page.get_by_test_id("login-tenant").input_value() == "ta"
    page.get_by_test_id("login-email").fill(EMAIL)
    page.get_by_test_id("login-password").fill(new)
    page.get_by_test_id("login-submit").click()
    assert _signed_in_as(page, served) == ("ta", served.ids["ta"])

    # the link works once
    page.evaluate("() => sessionStorage.clear()")
    page.goto("about:blank")
    page.goto(link)
    page.wait_for_selector(page_root("reset"))
    page.get_by_test_id("reset-password").fill("a third long password")
    page.get_by_test_id("reset-again").fill("a third long password")
    page.get_by_test_id("reset-submit").click()
    expect(page.get_by_test_id("reset-error")).to_contain_text("not valid")


def test_single_sign_on_round_trip_through_the_provider(page: Page, served: Served) -> None:
    _login_page(page, served)
    page.get_by_test_id("login-sso").click()
    # the provider's own pages (oidc-provider's development login and consent forms)
    page.wait_for_url(re.compile(r"^http://127\.0\.0\.1:\d+/interaction/"))
    page.locator('input[name="login"]').fill("sam")
    page.locator('input[name="password"]').fill("anything")
    page.locator('button[type="submit"]').click()
    page.wait_for_url(re.compile(r"/interaction/"))
    page.locator('button[type="submit"]').click()  # consent
    # back on the dashboard, signed in as tenant ta's account of the provider's email
    assert _signed_in_as(page, served) == ("ta", served.ids["ta"])
    page.wait_for_function("() => !location.search.includes('code=')")

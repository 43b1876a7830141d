"""Against a real server (uvicorn on loopback, wall clock, real sleeps) and a real SMTP server
(aiosmtpd): revocation reaches an open live feed within a second, one principal holds at most
``max_feeds_per_principal`` feeds, a password is reset through a mailed one-time link, the
secrets are 0600 files and the audit head is exported to the anchor file."""

from __future__ import annotations

import asyncio
import re
import socket
import stat
import threading
import time
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

from andon.api import PREFIX, create_app
from andon.platform import Platform, Role
from andon.platform.audit import read_anchors
from andon.platform.config import Settings
from andon.platform.secretfiles import AUDIT_KEY, JWT_KEY
from andon.store import DuckDBStore
from tests.api.live import LiveServer, live_server
from tests.api.world import PASSWORD, demo_yaml

FEEDS = 2


@dataclass
class _Inbox:
    """What the local SMTP server received (aiosmtpd handler)."""

    messages: list[Message] = field(default_factory=list)
    cond: threading.Condition = field(default_factory=threading.Condition)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.cond:
            self.messages.append(message_from_bytes(envelope.original_content))
            self.cond.notify_all()
        return "250 OK"

    def wait_for(self, n: int, timeout: float = 10.0) -> list[Message]:
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.messages) >= n, timeout), self.messages
            return list(self.messages)


@dataclass
class Env:
    live: LiveServer
    inbox: _Inbox
    secrets: Path
    anchor: Path
    tenant: str
    site_id: str
    admin: dict[str, str]

    @property
    def platform(self) -> Platform:
        pf: Platform = self.live.app.state.services.platform
        return pf

    def url(self, path: str) -> str:
        return self.live.url + PREFIX + path

    def user(self, role: Role = Role.VIEWER) -> tuple[str, str]:
        email = f"u{time.monotonic_ns()}@{self.tenant}.example"
        u = self.live.run(self.platform.create_user(self.tenant, email, PASSWORD, [(role, None)]))
        return str(u["id"]), email


def _login(env: Env, email: str, password: str = PASSWORD) -> dict[str, Any]:
    r = httpx.post(env.url("/auth/login"), json={"email": email, "password": password})
    assert r.status_code == 200, r.text
    tokens: dict[str, Any] = r.json()
    return tokens


def _bearer(tokens: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    tmp = tmp_path_factory.mktemp("account")
    inbox = _Inbox()
    with socket.socket() as probe:  # a free port (aiosmtpd's start-up check connects to it)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    smtp = Controller(inbox, hostname="127.0.0.1", port=port)
    smtp.start()
    settings = Settings(
        database_url=f"sqlite:///{tmp / 'meta.db'}",
        limits={"api_rps": 0, "auth_per_s": 0, "ingest_points_per_s": 0},
        monitoring={"alert_interval_s": 0},
        security={
            "secrets_dir": str(tmp / "secrets"),
            "audit_anchor_file": str(tmp / "anchors" / "audit-head.jsonl"),
            "audit_anchor_interval_s": 0.2,
            "max_feeds_per_principal": FEEDS,
            "public_url": "https://andon.example/",
            "smtp": {"host": "127.0.0.1", "port": port, "from_addr": "andon@andon.example"},
        },
    )
    store = DuckDBStore.open(None)
    try:
        with live_server(create_app(settings, store=store)) as live:
            assert httpx.get(live.url + PREFIX + "/health", timeout=30).status_code == 200
            pf: Platform = live.app.state.services.platform
            live.run(pf.create_tenant("ta", "TA"))
            live.run(
                pf.create_user("ta", "admin@ta.example", PASSWORD, [(Role.TENANT_ADMIN, None)])
            )
            site = live.run(pf.create_site("ta", demo_yaml()))
            env = Env(
                live, inbox, tmp / "secrets", tmp / "anchors" / "audit-head.jsonl", "ta", "", {}
            )
            env.site_id = str(site["id"])
            env.admin = _bearer(_login(env, "admin@ta.example"))
            yield env
    finally:
        smtp.stop()
        asyncio.run(store.close())


def _open_feed(
    env: Env, client: httpx.Client, headers: dict[str, str]
) -> tuple[httpx.Response, Iterator[str]]:
    """A live feed ticking every 30 s, read up to its first event."""
    req = client.build_request(
        "GET",
        env.url(f"/sites/{env.site_id}/live"),
        headers=headers,
        params={"interval_s": 30, "max_ticks": 100},
    )
    r = client.send(req, stream=True)
    if r.status_code != 200:
        r.read()
        r.close()
        return r, iter(())
    lines = r.iter_lines()
    assert next(lines).startswith("event: ")
    return r, lines


def _until_end(lines: Iterator[str]) -> str:
    for line in lines:
        if line == "event: end":
            return next(lines)
    raise AssertionError("the feed closed without event: end")


@pytest.mark.parametrize("how", ["logout", "disable"])
def test_revocation_reaches_an_open_live_feed_within_a_second(env: Env, how: str) -> None:
    uid, email = env.user()
    tokens = _login(env, email)
    with httpx.Client(timeout=10) as client:
        r, lines = _open_feed(env, client, _bearer(tokens))
        assert r.status_code == 200
        if how == "logout":
            out = httpx.post(
                env.url("/auth/logout"), json={"refresh_token": tokens["refresh_token"]}
            )
            assert out.status_code == 204
        else:
            out = httpx.put(
                env.url(f"/users/{uid}/status"), headers=env.admin, json={"disabled": True}
            )
            assert out.status_code == 200
        t0 = time.monotonic()  # the revocation has happened: the answer came back
        assert "credentials no longer valid" in _until_end(lines)
        took = time.monotonic() - t0
        r.close()
    assert took < 1.0, f"the feed ended {took:.2f} s after the revocation"


def test_one_principal_holds_at_most_the_configured_number_of_feeds(env: Env) -> None:
    _, email = env.user()
    headers = _bearer(_login(env, email))
    with httpx.Client(timeout=10) as client:
        held = [_open_feed(env, client, headers) for _ in range(FEEDS)]  # lines kept: open
        feeds = [f for f, _ in held]
        assert [f.status_code for f in feeds] == [200] * FEEDS
        over, _ = _open_feed(env, client, headers)
        assert over.status_code == 429
        assert over.headers["retry-after"]
        other = _bearer(_login(env, env.user()[1]))  # another user is not affected
        theirs, _ = _open_feed(env, client, other)
        assert theirs.status_code == 200
        theirs.close()
        feeds.pop().close()
        held.pop()
        deadline = time.monotonic() + 5
        while True:  # the server lets the slot go when it sees the client leave
            again, _ = _open_feed(env, client, headers)
            if again.status_code == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert again.status_code == 200
        again.close()
        for f in feeds:
            f.close()


def _link(msg: Message) -> dict[str, str]:
    """The reset link's fragment parameters (token, tenant): ``<public url>/#/reset?...``."""
    body = msg.get_payload(decode=True)
    assert isinstance(body, bytes)
    m = re.search(r"https://andon\.example/#/reset\?(\S+)", body.decode())
    assert m, body
    return dict(urllib.parse.parse_qsl(m.group(1)))


def _link_token(msg: Message) -> str:
    return _link(msg)["token"]


def test_a_password_is_reset_through_a_mailed_one_time_link(env: Env) -> None:
    uid, email = env.user()
    before = _login(env, email)
    n = len(env.inbox.messages)
    unknown = httpx.post(env.url("/auth/reset-request"), json={"email": "nobody@ta.example"})
    known = httpx.post(env.url("/auth/reset-request"), json={"email": email})
    assert unknown.status_code == known.status_code == 202
    assert unknown.json() == known.json()  # nothing tells which accounts exist
    msgs = env.inbox.wait_for(n + 1)
    assert len(msgs) == n + 1 and msgs[-1]["To"] == email
    token = _link_token(msgs[-1])
    new = "a brand new passphrase"
    r = httpx.post(env.url("/auth/reset"), json={"token": token, "new_password": new})
    assert r.status_code == 204, r.text
    assert httpx.get(env.url("/auth/me"), headers=_bearer(before)).status_code == 401
    assert _login(env, email, new)
    assert (
        httpx.post(env.url("/auth/login"), json={"email": email, "password": PASSWORD}).status_code
        == 401
    )
    again = httpx.post(env.url("/auth/reset"), json={"token": token, "new_password": PASSWORD})
    assert again.status_code == 401  # one use only
    rows = env.live.run(env.platform.audit.query(env.tenant, actor=f"user:{uid}", limit=1000))
    got = [(r.action, r.result) for r in rows if r.action.startswith("auth.reset")]
    assert got == [("auth.reset.request", "ok"), ("auth.reset", "ok"), ("auth.reset", "failed")]


def test_secrets_are_0600_files_and_the_audit_head_is_exported(env: Env) -> None:
    for name in (JWT_KEY, AUDIT_KEY):
        assert stat.S_IMODE((env.secrets / name).stat().st_mode) == 0o600
    deadline = time.monotonic() + 5
    head = env.live.run(env.platform.audit.head())
    while not any(seq >= head[0] for seq, _ in read_anchors(env.anchor)):
        assert time.monotonic() < deadline, "the audit head was not exported"
        time.sleep(0.05)
    assert stat.S_IMODE(env.anchor.stat().st_mode) == 0o600
    assert env.live.run(env.platform.audit.verify(anchor_file=env.anchor)).ok


def test_one_address_in_two_tenants_gets_a_link_per_account(env: Env) -> None:
    email = f"r{time.monotonic_ns()}@both.example"
    if "tb" not in {t["id"] for t in env.live.run(env.platform.list_tenants())}:
        env.live.run(env.platform.create_tenant("tb", "TB"))
    ids = {}
    for t in ("tb", "ta"):  # tb's account is the older one
        u = env.live.run(env.platform.create_user(t, email, PASSWORD, [(Role.VIEWER, None)]))
        ids[t] = str(u["id"])
    n = len(env.inbox.messages)
    r = httpx.post(env.url("/auth/reset-request"), json={"email": email})
    assert r.status_code == 202
    msgs = env.inbox.wait_for(n + 2)[n:]
    links = [_link(m) for m in msgs]
    assert [(m["To"], lk["tenant"]) for m, lk in zip(msgs, links, strict=True)] == [
        (email, "tb"),
        (email, "ta"),
    ]
    assert "(tb)" in str(msgs[0]["Subject"]) and "(ta)" in str(msgs[1]["Subject"])
    new = "the tb account's new passphrase"
    ok = httpx.post(env.url("/auth/reset"), json={"token": links[0]["token"], "new_password": new})
    assert ok.status_code == 204, ok.text
    # the link reset tb's account only; ta's keeps its password
    assert _login_in(env, email, new, "tb") == ids["tb"]
    assert _login_in(env, email, PASSWORD, "ta") == ids["ta"]
    # naming the tenant mails that account only: ta's link comes first though tb's is older
    r = httpx.post(env.url("/auth/reset-request"), json={"email": email, "tenant": "ta"})
    assert r.status_code == 202
    assert _link(env.inbox.wait_for(n + 3)[n + 2])["tenant"] == "ta"


def _login_in(env: Env, email: str, password: str, tenant: str) -> str:
    body = {"email": email, "password": password, "tenant": tenant}
    r = httpx.post(env.url("/auth/login"), json=body)
    assert r.status_code == 200, r.text
    me = httpx.get(env.url("/auth/me"), headers=_bearer(r.json()))
    assert me.json()["tenant_id"] == tenant
    return str(me.json()["id"])

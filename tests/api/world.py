"""A running API app with two tenants that each hold a site (same site key), users of every
role, an edge key and an app key; tenant A's store holds two hours of virtual-factory data."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any, TypeVar

from fastapi import FastAPI
from fastapi.testclient import TestClient

from andon.api import PREFIX, create_app
from andon.demo.run import default_start, run_headless
from andon.model.loader import parse_plant
from andon.platform import Platform, Role
from andon.platform.config import Settings
from andon.store import DuckDBStore
from tests.platform.dbs import database_url

__all__ = [
    "PASSWORD",
    "Clock",
    "Tenant",
    "World",
    "demo_yaml",
    "make_world",
    "site_yaml",
    "sse_events",
]

T = TypeVar("T")
PASSWORD = "a long test password"
H = dict[str, str]


def demo_yaml() -> str:
    return (files("andon.sim") / "plants" / "demo.yaml").read_text(encoding="utf-8")


def site_yaml(key: str) -> str:
    """The demo plant under another site key."""
    return demo_yaml().replace("id: tc1", f"id: {key}", 1)


@dataclass
class Clock:
    """The app's clock; live feeds "sleep" on it without waiting (moving it only when
    ``advance_on_sleep``)."""

    now: int
    advance_on_sleep: bool = False

    def __call__(self) -> int:
        return self.now

    async def sleep(self, seconds: float) -> None:
        if self.advance_on_sleep:
            self.now += int(seconds * 1_000_000)


def bearer(token: str) -> H:
    return {"Authorization": f"Bearer {token}"}


def sse_events(text: str) -> list[tuple[str, Any]]:
    """A server-sent-event body as ``(event, data)`` pairs, in order."""
    out = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        out.append((lines["event"], json.loads(lines["data"])))
    return out


@dataclass
class Tenant:
    id: str
    site_id: str
    site_key: str
    admin: H
    admin_id: str
    edge: H
    edge_key_id: str
    app: H
    app_key_id: str
    viewer_id: str
    viewer_grant_id: str
    board: H = field(default_factory=dict)
    """A board device's key (``board:read`` at the site only)."""
    board_key_id: str = ""


@dataclass
class World:
    backend: str
    app: FastAPI
    client: TestClient
    clock: Clock
    root: H
    a: Tenant
    b: Tenant
    start: int
    end: int
    _n: list[int] = field(default_factory=lambda: [0])

    @property
    def platform(self) -> Platform:
        pf: Platform = self.app.state.services.platform
        return pf

    def run(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run a coroutine function on the app's event loop."""
        portal = self.client.portal
        assert portal is not None
        return portal.call(fn, *args)

    def unique(self, stem: str) -> str:
        self._n[0] += 1
        return f"{stem}{self._n[0]}"

    def call(
        self, method: str, path: str, headers: H | None = None, body: Any = None, **params: Any
    ) -> Any:
        return self.client.request(
            method, PREFIX + path, headers=headers or {}, json=body, params=params or None
        )

    def login(self, email: str, password: str = PASSWORD) -> H:
        r = self.call("POST", "/auth/login", body={"email": email, "password": password})
        assert r.status_code == 200, r.text
        return bearer(r.json()["access_token"])

    def user(self, tenant: str, roles: list[tuple[Role, str | None]]) -> tuple[str, H]:
        email = f"{self.unique('u')}@{tenant}.example"
        u = self.run(self.platform.create_user, tenant, email, PASSWORD, roles)
        return str(u["id"]), self.login(email)

    def denials(self, tenant: str) -> int:
        async def count() -> int:
            rows = await self.platform.audit.query(tenant, result="denied", limit=1_000_000)
            return len(rows)

        return self.run(count)


def _tenant(w: World, tid: str) -> Tenant:
    r = w.call(
        "POST",
        "/tenants",
        w.root,
        {
            "id": tid,
            "name": tid.upper(),
            "admin_email": f"admin@{tid}.example",
            "admin_password": PASSWORD,
        },
    )
    assert r.status_code == 201, r.text
    admin_id = r.json()["admin"]["id"]
    admin = w.login(f"admin@{tid}.example")
    r = w.call("POST", "/sites", admin, {"model_yaml": demo_yaml()})
    assert r.status_code == 201, r.text
    site = r.json()
    keys = {}
    for kind, perms in (
        ("edge", ["ingest:write", "site:read"]),
        ("app", ["site:read", "telemetry:read", "state:read", "kpi:read", "tenant:read"]),
    ):
        r = w.call("POST", "/api-keys", admin, {"name": kind, "kind": kind, "permissions": perms})
        assert r.status_code == 201, r.text
        keys[kind] = (r.json()["key"]["id"], bearer(r.json()["secret"]))
    viewer_id, _ = w.user(tid, [(Role.VIEWER, site["id"])])
    grant = w.run(w.platform.get_user, tid, viewer_id)["grants"][0]["id"]
    r = w.call("POST", f"/sites/{site['id']}/board-devices", admin, {"name": "TV"})
    assert r.status_code == 201, r.text
    board = (bearer(r.json()["secret"]), r.json()["device"]["id"])
    return Tenant(
        tid,
        site["id"],
        site["key"],
        admin,
        admin_id,
        keys["edge"][1],
        keys["edge"][0],
        keys["app"][1],
        keys["app"][0],
        viewer_id,
        grant,
        *board,
    )


@contextmanager
def make_world(backend: str, tmp: Path, **settings: Any) -> Iterator[World]:
    plant = parse_plant(demo_yaml()).model_copy(update={"tenant": "ta"})
    start = default_start(plant)
    hours = 2.0
    end = start + int(hours * 3_600_000_000)
    store = DuckDBStore.open(None)
    asyncio.run(run_headless(plant, store, 7, hours, start))
    clock = Clock(end)
    # alert passes run when a test calls them (services.alerts.step()), not in real time
    settings.setdefault("monitoring", {"alert_interval_s": 0})
    with database_url(backend, tmp) as url:
        cfg = Settings(database_url=url, **settings)
        app = create_app(cfg, store=store, clock=clock, sleep=clock.sleep)
        try:
            with TestClient(app, client=("192.0.2.7", 50000)) as client:
                w0 = World(backend, app, client, clock, {}, None, None, start, end)  # type: ignore[arg-type]
                pf = w0.platform
                w0.run(pf.create_tenant, "platform", "Platform")
                w0.run(
                    pf.create_user,
                    "platform",
                    "root@platform.example",
                    PASSWORD,
                    [(Role.PLATFORM_ADMIN, None)],
                )
                w0.root = w0.login("root@platform.example")
                w0.a = _tenant(w0, "ta")
                w0.b = _tenant(w0, "tb")
                yield w0
        finally:
            asyncio.run(store.close())

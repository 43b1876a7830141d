"""Availability under attack (issue 13): hostile YAML and JSON bodies, proxy headers, login
throttling instead of lockout, anonymous floods, per-principal budgets, a stepped clock, site
deletion by a one-site engineer, strict sample values and the ingest reply's row refusals."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from starlette.middleware.errors import ServerErrorMiddleware

from andon.api import PREFIX, create_app
from andon.api.middleware import SecurityHeaders
from andon.platform import Platform, Role
from andon.platform.config import Settings
from andon.platform.tables import audit_log
from andon.store import DuckDBStore
from tests.api.calls import SIGNAL
from tests.api.world import PASSWORD, Clock, World, bearer, site_yaml

LAUGHS = (
    "a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
    "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
    "e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
    "g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\nh: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]\n"
    "i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]\n"
)
"""306 bytes, 9^9 (387 million) values once its aliases are expanded."""

HOSTILE_YAML = {
    "laughs": (LAUGHS, "once aliases are expanded"),
    "self_alias": ("site: &a {id: x, areas: [*a]}\n", "alias refers to a node that contains it"),
    "deep": ("site: " + "[" * 3000 + "]" * 3000 + "\n", "nested deeper than"),
    "huge_int": ("site: {id: x, n: " + "9" * 100_000 + "}\n", "cannot read this value"),
    "year_99999": ("site: {id: x, t: !!timestamp 99999-01-01}\n", "not a valid timestamp"),
    "nul_escape": ('site: {id: "tc\\0x"}\n', "NUL characters"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_YAML))
def test_hostile_yaml_is_a_fast_422_naming_the_problem(world: World, case: str) -> None:
    text, why = HOSTILE_YAML[case]
    a = world.a
    t0 = time.perf_counter()
    for method, path in (("POST", "/sites"), ("PUT", f"/sites/{a.site_id}/model")):
        r = world.call(method, path, a.admin, {"model_yaml": text})
        assert r.status_code == 422, (method, r.text)
        assert why in r.json()["detail"], r.text
    assert time.perf_counter() - t0 < 10.0  # unbounded: 32 s, hours one level deeper
    assert world.call("GET", f"/sites/{a.site_id}", a.admin).status_code == 200


def test_lone_surrogates_and_nan_are_422_with_security_headers(world: World) -> None:
    a = world.a
    raw = {"Content-Type": "application/json", **a.admin}
    for body in (
        b'{"model_yaml": "site: {id: \\ud800}"}',  # valid JSON, unstorable text
        b'{"model_yaml": "x\\udc00y"}',
        b'{"model_yaml": 5, "extra": "\\ud800"}',  # fails validation while echoing it
    ):
        r = world.client.post(f"{PREFIX}/sites", content=body, headers=raw)
        assert r.status_code == 422, (body, r.text)
        assert r.headers["x-content-type-options"] == "nosniff"
    pair = b'{"model_yaml": "site: {id: \\ud83d\\ude00}"}'  # a surrogate pair is one character
    assert world.client.post(f"{PREFIX}/sites", content=pair, headers=raw).status_code == 422
    assert "surrogate" not in world.client.post(f"{PREFIX}/sites", content=pair, headers=raw).text
    job = b'{"line": "tc1/machining/L1", "hours": NaN, "replications": 2}'
    r = world.client.post(f"{PREFIX}/sites/{a.site_id}/twin/jobs", content=job, headers=raw)
    assert r.status_code == 422, r.text
    assert "hours" in r.text


def test_sample_values_are_numbers_only_and_row_refusals_are_reported(world: World) -> None:
    a = world.a
    t = world.end - 1_000_000
    for bad in ("12", True):
        body = {
            "samples": {"names": [SIGNAL], "index": [0], "ts": [t], "value": [bad], "quality": [0]}
        }
        r = world.call("POST", f"/sites/{a.site_id}/ingest", a.edge, body)
        assert r.status_code == 422, (bad, r.text)
    machine = "tc1/machining/L1/NOPE-1"
    body = {
        "states": {
            "names": [machine],
            "index": [0, 0],
            "start": [t - 10, t - 5],
            "end": [t - 5, t],
            "state": [1, 1],
            "reason": ["", ""],
        },
        "parts": {
            "names": [machine],
            "index": [0],
            "ts": [t],
            "product": ["p"],
            "good": [1],
            "scrap": [0],
        },
    }
    r = world.call("POST", f"/sites/{a.site_id}/ingest", a.edge, body)
    assert r.status_code == 200, r.text
    assert r.json()["rejected"] == {"unknown_machine": 3}
    assert (r.json()["states"], r.json()["parts"]) == (0, 0)


def test_an_engineer_granted_one_site_cannot_delete_it(world: World) -> None:
    a = world.a
    r = world.call("POST", "/sites", a.admin, {"model_yaml": site_yaml(world.unique("del"))})
    assert r.status_code == 201, r.text
    site = r.json()["id"]
    _, one_site = world.user(a.id, [(Role.ENGINEER, site)])
    assert (
        world.call("PUT", f"/sites/{site}/model", one_site, {"model_yaml": "x: 1"}).status_code
        == 422
    )
    assert world.call("DELETE", f"/sites/{site}", one_site).status_code == 403
    assert world.call("GET", f"/sites/{site}", one_site).status_code == 200
    _, everywhere = world.user(a.id, [(Role.ENGINEER, None)])
    assert world.call("DELETE", f"/sites/{site}", everywhere).status_code == 204


def test_tokens_survive_a_clock_ahead_of_the_wall(world: World) -> None:
    """The token's "issued at" is the platform clock's: a clock ahead of the wall (or a wall
    clock stepped back) must not refuse every token."""
    now = world.clock.now
    try:
        world.clock.now = time.time_ns() // 1000 + 3_600_000_000
        _, headers = world.user(world.a.id, [(Role.VIEWER, None)])
        assert world.call("GET", "/auth/me", headers).status_code == 200
    finally:
        world.clock.now = now


# ---- one small app with proxy headers and tight limits -----------------------------------------


class Small:
    def __init__(self, app: Any, client: TestClient, clock: Clock) -> None:
        self.app, self.client, self.clock = app, client, clock

    @property
    def platform(self) -> Platform:
        pf: Platform = self.app.state.services.platform
        return pf

    def run(self, fn: Any, *args: Any) -> Any:
        portal = self.client.portal
        assert portal is not None
        return portal.call(fn, *args)

    def call(
        self, method: str, path: str, headers: dict[str, str] | None = None, body: Any = None
    ) -> Any:
        return self.client.request(method, PREFIX + path, headers=headers or {}, json=body)

    def login(self, email: str, password: str = PASSWORD, via: str | None = None) -> Any:
        headers = {"X-Forwarded-For": via} if via else {}
        return self.call("POST", "/auth/login", headers, {"email": email, "password": password})

    def audit_rows(self) -> int:
        """Every audit row, of any tenant or none."""

        async def count() -> int:
            async with self.platform.db.begin() as conn:
                return int(
                    (await conn.execute(select(func.count()).select_from(audit_log))).scalar_one()
                )

        return int(self.run(count))


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Small]:
    tmp: Path = tmp_path_factory.mktemp("small")
    settings = Settings(
        database_url=f"sqlite:///{tmp / 'meta.db'}",
        trust_proxy_headers=True,
        limits={
            "auth_per_s": 1,
            "auth_burst": 200,
            "anonymous_per_s": 1,
            "anonymous_burst": 5,
            "principal_rps": 1,
            "principal_burst": 5,
            "api_rps": 0,
        },
    )
    clock = Clock(1_700_000_000_000_000)
    store = DuckDBStore.open(None)
    app = create_app(settings, store=store, clock=clock, sleep=clock.sleep)
    with TestClient(app, client=("192.0.2.7", 50000)) as client:
        s = Small(app, client, clock)
        pf = s.platform
        s.run(pf.create_tenant, "platform", "Platform")
        s.run(
            pf.create_user,
            "platform",
            "root@platform.example",
            PASSWORD,
            [(Role.PLATFORM_ADMIN, None)],
        )
        s.run(pf.create_tenant, "ta", "TA")
        s.run(pf.create_user, "ta", "v1@ta.example", PASSWORD, [(Role.VIEWER, None)])
        s.run(pf.create_user, "ta", "v2@ta.example", PASSWORD, [(Role.VIEWER, None)])
        yield s


def test_the_client_is_the_rightmost_forwarded_entry_not_the_leftmost(small: Small) -> None:
    r = small.login("root@platform.example", via="6.6.6.6, 203.0.113.9")
    assert r.status_code == 200, r.text
    rows = small.run(lambda: small.platform.audit.query("platform", action="auth.login"))
    assert [x.source for x in rows if x.result == "ok"][
        -1
    ] == "203.0.113.9"  # what our proxy saw, not what the client wrote


def test_another_source_cannot_lock_out_the_platform_admin(small: Small) -> None:
    for i in range(small.platform.max_failed_logins):
        # the attacker writes a fresh leftmost entry each time: it does not dodge anything
        r = small.login("root@platform.example", "guess", via=f"10.9.9.{i}, 198.51.100.66")
        assert r.status_code == 401
    assert small.login("root@platform.example", via="198.51.100.66").status_code == 401
    assert small.login("root@platform.example", via="203.0.113.10").status_code == 200
    assert small.platform.throttle.throttled >= 1


def test_anonymous_requests_are_limited_per_source_and_audited_once(small: Small) -> None:
    before = small.audit_rows()
    via = {"X-Forwarded-For": "198.51.100.77"}
    got = [small.call("GET", "/sites", via).status_code for _ in range(12)]
    assert got[:5] == [401] * 5 and set(got[5:]) == {429}
    assert small.audit_rows() == before + 1
    assert small.app.state.services.anonymous.suppressed >= 4
    other = {"X-Forwarded-For": "198.51.100.78"}
    assert small.call("GET", "/sites", other).status_code == 401  # its own bucket
    bad = {"X-Forwarded-For": "198.51.100.79", "Authorization": "Bearer nonsense"}
    assert [small.call("GET", "/sites", bad).status_code for _ in range(7)][-1] == 429


def test_one_principal_cannot_spend_the_tenant_budget(small: Small) -> None:
    v1 = bearer(small.login("v1@ta.example", via="203.0.113.20").json()["access_token"])
    v2 = bearer(small.login("v2@ta.example", via="203.0.113.21").json()["access_token"])
    got = [small.call("GET", "/auth/me", v1).status_code for _ in range(8)]
    assert got[:5] == [200] * 5 and got[-1] == 429
    assert small.call("GET", "/auth/me", v2).status_code == 200
    small.clock.now += 2_000_000
    assert small.call("GET", "/auth/me", v1).status_code == 200


def test_a_clock_stepped_back_keeps_retry_after_sane(small: Small) -> None:
    v2 = bearer(small.login("v2@ta.example", via="203.0.113.22").json()["access_token"])
    small.clock.now += 10_000_000
    small.clock.now -= 3_600_000_000  # an hour back
    try:
        got = [small.call("GET", "/auth/me", v2) for _ in range(8)]
        assert got[0].status_code == 200 and got[-1].status_code == 429
        assert 1 <= int(got[-1].headers["retry-after"]) <= 2
        small.clock.now += 2_000_000
        assert small.call("GET", "/auth/me", v2).status_code == 200
    finally:
        small.clock.now += 3_600_000_000


def test_a_500_carries_the_security_headers() -> None:
    async def broken(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("a bug")

    # as in the app: the server's error middleware outside, ours inside it
    app = ServerErrorMiddleware(SecurityHeaders(broken, hsts=True))
    r = TestClient(app, raise_server_exceptions=False).get("/api/v1/broken")
    assert r.status_code == 500
    assert r.json() == {"detail": "internal server error"}
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["content-security-policy"].startswith("default-src 'none'")
    assert "strict-transport-security" in r.headers

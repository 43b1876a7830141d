"""One email, accounts in several tenants (issue 13): a tenant admin adding an address that
another tenant uses gets 201, not a 409 that would tell them so; logins and reset requests
name the tenant when they need to, and nobody unauthenticated or in another tenant can tell
whether an email has an account in a tenant (same status, same body, one argon2 hash per
login). Migration 0007 and the single sign-on states are checked on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from fastapi.testclient import TestClient
from sqlalchemy import insert, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from andon.api import PREFIX, create_app
from andon.platform import Database, Platform, Role, database
from andon.platform.config import Settings
from andon.platform.oidc import PENDING_S, OidcError, SignInStates
from andon.platform.tables import password_resets, role_grants, sessions, tenants, users
from andon.store import DuckDBStore
from tests.api.world import PASSWORD, Clock, bearer
from tests.platform.dbs import BACKENDS, database_url

H = dict[str, str]
OTHER = "another long password"
SHARED = "shared@both.example"


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with database_url(request.param, tmp_path) as url:
        yield url


# ---- migration 0007 ------------------------------------------------------------------------


def _upgrade_to(conn: Connection, target: str) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(database._MIGRATIONS))
    cfg.attributes["connection"] = conn
    command.upgrade(cfg, target)


def _user(uid: str, tenant: str, email: str) -> dict[str, Any]:
    return {
        "id": uid,
        "tenant_id": tenant,
        "email": email,
        "password_hash": "h",
        "failed_logins": 0,
        "locked_until": 0,
        "disabled": False,
        "created_at": 1,
    }


def test_0007_makes_emails_unique_per_tenant_and_keeps_every_row(db_url: str) -> None:
    async def go() -> None:
        db = Database(db_url)
        try:
            async with db.begin() as conn:
                await conn.run_sync(_upgrade_to, "0006")
                for t in ("ta", "tb"):
                    await conn.execute(insert(tenants).values(id=t, name=t, created_at=1))
                await conn.execute(insert(users).values(**_user("u1", "ta", SHARED)))
                # rows that hang on the user by ON DELETE CASCADE: the rebuild keeps them
                await conn.execute(
                    insert(role_grants).values(
                        id="g1", tenant_id="ta", user_id="u1", site_id=None, role="viewer"
                    )
                )
                await conn.execute(
                    insert(sessions).values(id="s1", tenant_id="ta", user_id="u1", created_at=1)
                )
                await conn.execute(
                    insert(password_resets).values(
                        id="r1",
                        tenant_id="ta",
                        user_id="u1",
                        token_hash="x" * 64,
                        created_at=1,
                        expires_at=2,
                    )
                )
            async with db.begin() as conn:
                await conn.run_sync(_upgrade_to, "0007")
            async with db.begin() as conn:
                rev = await conn.run_sync(
                    lambda c: MigrationContext.configure(c).get_current_revision()
                )
                assert rev == "0007"
                assert (await conn.execute(select(role_grants.c.id))).scalars().all() == ["g1"]
                assert (await conn.execute(select(sessions.c.id))).scalars().all() == ["s1"]
                assert (await conn.execute(select(password_resets.c.id))).scalars().all() == ["r1"]
                if db.dialect == "sqlite":  # switched off for the rebuild, and on again
                    assert (await conn.execute(text("PRAGMA foreign_keys"))).scalar() == 1
                await conn.execute(insert(users).values(**_user("u2", "tb", SHARED)))
            with pytest.raises(IntegrityError):
                async with db.begin() as conn:
                    await conn.execute(insert(users).values(**_user("u3", "tb", SHARED)))
            async with db.begin() as conn:
                got = (await conn.execute(select(users.c.id).order_by(users.c.id))).scalars()
                assert got.all() == ["u1", "u2"]
        finally:
            await db.close()

    asyncio.run(go())


# ---- single sign-on states shared by workers -----------------------------------------------


def test_a_sign_in_started_by_one_worker_is_finished_by_another_once(db_url: str) -> None:
    clock = Clock(1_000_000_000_000)

    async def go() -> None:
        first = Database(db_url)
        await first.migrate()
        await first.close()
        one, two = Database(db_url), Database(db_url)  # two workers: two engines, one database
        try:
            a, b = SignInStates(one, clock), SignInStates(two, clock)
            await a.put("state-1", "nonce-1", "verifier-1")
            assert await b.take("state-1") == ("nonce-1", "verifier-1")
            for worker in (a, b):  # a replay, at either worker
                with pytest.raises(OidcError, match="unknown or already used"):
                    await worker.take("state-1")
            # two callbacks with one state at the same moment: exactly one wins
            await a.put("state-2", "n", "v")
            got = await asyncio.gather(a.take("state-2"), b.take("state-2"), return_exceptions=True)
            assert sorted(type(g).__name__ for g in got) == ["OidcError", "tuple"]
            await a.put("state-3", "n", "v")
            clock.now += PENDING_S * 1_000_000
            with pytest.raises(OidcError, match="expired"):
                await b.take("state-3")
            async with one.begin() as conn:  # nothing of the state itself is stored
                rows = (await conn.execute(text("SELECT * FROM oidc_states"))).all()
            assert all("state-" not in str(r) for r in rows)
        finally:
            await one.close()
            await two.close()

    asyncio.run(go())


# ---- the API: create, login, reset across tenants -----------------------------------------


@dataclass
class Env:
    client: TestClient
    platform: Platform
    admins: dict[str, H]
    ids: dict[str, str]
    """``<tenant>:<email>`` → user id"""

    def call(self, method: str, path: str, headers: H | None = None, body: Any = None) -> Any:
        return self.client.request(method, PREFIX + path, headers=headers or {}, json=body)

    def create(self, tenant: str, email: str, password: str) -> str:
        u = self.client.portal.call(  # type: ignore[union-attr]
            self.platform.create_user, tenant, email, password, [(Role.VIEWER, None)]
        )
        self.ids[f"{tenant}:{email}"] = str(u["id"])
        return str(u["id"])


@pytest.fixture(scope="module", params=BACKENDS)
def env(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    tmp = tmp_path_factory.mktemp("tenants")
    store = DuckDBStore.open(None)
    try:
        with database_url(request.param, tmp) as url:
            settings = Settings(
                database_url=url,
                limits={"api_rps": 0, "auth_per_s": 0, "principal_rps": 0, "anonymous_per_s": 0},
                monitoring={"alert_interval_s": 0},
                max_failed_logins_per_source=1000,
                security={
                    # nothing listens there: the mails fail, after the answer, audited
                    "smtp": {"host": "127.0.0.1", "port": 9, "from_addr": "a@andon.example"},
                },
            )
            with TestClient(create_app(settings, store=store), client=("192.0.2.9", 1)) as c:
                pf: Platform = c.app.state.services.platform  # type: ignore[attr-defined]
                e = Env(c, pf, {}, {})
                for t in ("ta", "tb", "tc"):
                    c.portal.call(pf.create_tenant, t, t.upper())  # type: ignore[union-attr]
                    c.portal.call(  # type: ignore[union-attr]
                        pf.create_user,
                        t,
                        f"admin@{t}.example",
                        PASSWORD,
                        [(Role.TENANT_ADMIN, None)],
                    )
                    r = e.call(
                        "POST",
                        "/auth/login",
                        body={"email": f"admin@{t}.example", "password": PASSWORD},
                    )
                    assert r.status_code == 200, r.text
                    e.admins[t] = bearer(r.json()["access_token"])
                e.create("ta", SHARED, PASSWORD)  # the older account of the address
                yield e
    finally:
        asyncio.run(store.close())


def _counting_hashes(env: Env) -> list[int]:
    """Count argon2 verifications (the platform's one entry to them) from now on."""
    calls = [0]
    real = Platform.verify_password

    async def counted(password: str, digest: str) -> bool:
        calls[0] += 1
        return await real(env.platform, password, digest)

    env.platform.verify_password = counted  # type: ignore[method-assign]
    return calls


def _login(env: Env, email: str, password: str, tenant: str | None = None) -> Any:
    body = {"email": email, "password": password}
    if tenant is not None:
        body["tenant"] = tenant
    return env.call("POST", "/auth/login", body=body)


def _me(env: Env, r: Any) -> dict[str, Any]:
    assert r.status_code == 200, r.text
    me = env.call("GET", "/auth/me", bearer(r.json()["access_token"]))
    assert me.status_code == 200, me.text
    out: dict[str, Any] = me.json()
    return out


def test_a_tenant_admin_adds_an_email_another_tenant_uses_with_201(env: Env) -> None:
    r = env.call("POST", "/users", env.admins["tb"], {"email": SHARED.upper(), "password": OTHER})
    assert r.status_code == 201, r.text
    env.ids[f"tb:{SHARED}"] = r.json()["id"]
    assert r.json()["email"] == SHARED
    # its own tenant's duplicate is still refused: that is the admin's own business
    again = env.call("POST", "/users", env.admins["tb"], {"email": SHARED, "password": OTHER})
    assert again.status_code == 409 and "in this tenant" in again.text
    # neither admin sees the other's account of the address
    for t, other in (("ta", "tb"), ("tb", "ta")):
        listed = env.call("GET", "/users", env.admins[t]).json()
        assert [u["id"] for u in listed if u["email"] == SHARED] == [env.ids[f"{t}:{SHARED}"]]
        foreign = env.call("GET", f"/users/{env.ids[f'{other}:{SHARED}']}", env.admins[t])
        assert foreign.status_code == 404


def test_logins_with_and_without_the_tenant(env: Env) -> None:
    if f"tb:{SHARED}" not in env.ids:
        env.create("tb", SHARED, OTHER)
    hashes = _counting_hashes(env)
    # without a tenant the oldest account is the one tried: tb's arrival changed nothing
    assert _me(env, _login(env, SHARED, PASSWORD))["tenant_id"] == "ta"
    assert _me(env, _login(env, SHARED, OTHER, "tb"))["tenant_id"] == "tb"
    assert _me(env, _login(env, SHARED.upper(), PASSWORD, "TA"))["tenant_id"] == "ta"
    refused = [
        _login(env, SHARED, OTHER),  # tb's password, no tenant: ta's account is tried
        _login(env, SHARED, OTHER, "ta"),
        _login(env, SHARED, PASSWORD, "tb"),
        _login(env, SHARED, PASSWORD, "tc"),  # a tenant without that email
        _login(env, SHARED, PASSWORD, "nosuchtenant"),
        _login(env, "nobody@both.example", PASSWORD),
        _login(env, "nobody@both.example", PASSWORD, "ta"),
    ]
    assert {(r.status_code, r.text, r.headers["www-authenticate"]) for r in refused} == {
        (401, '{"detail":"login failed"}', "Bearer")
    }
    assert hashes[0] == 3 + len(refused)  # one argon2 hash per attempt, whatever the case
    assert _login(env, SHARED, PASSWORD, "../ta").status_code == 422  # malformed, not looked up


@pytest.mark.slow  # ~20 s on loaded cores: 16 argon2 hashes
def test_nobody_outside_a_tenant_can_tell_whether_an_email_is_in_it(env: Env) -> None:
    """The matrix: for addresses with an account in ta only, tb only, both or neither,
    every answer an anonymous caller or tc's admin gets is the same."""
    cases = {
        "only-ta": ("ta",),
        "only-tb": ("tb",),
        "both": ("ta", "tb"),
        "none": (),
    }
    for name, where in cases.items():
        for t in where:
            env.create(t, f"{name}@matrix.example", PASSWORD)
    hashes = _counting_hashes(env)
    seen: dict[str, set[tuple[Any, ...]]] = {}

    def saw(what: str, *answer: Any) -> None:
        seen.setdefault(what, set()).add(answer)

    for name in cases:
        email = f"{name}@matrix.example"
        for tenant in (None, "ta", "tb"):
            r = _login(env, email, "not the password", tenant)
            saw(f"login {tenant}", r.status_code, r.text, r.headers.get("www-authenticate"))
            body: dict[str, str] = {"email": email}
            if tenant is not None:
                body["tenant"] = tenant
            r = env.call("POST", "/auth/reset-request", body=body)
            saw(f"reset {tenant}", r.status_code, r.text)
        # another tenant's admin: creating the address in tc answers alike every time
        r = env.call("POST", "/users", env.admins["tc"], {"email": email, "password": PASSWORD})
        got = r.json()
        saw(
            "create in tc",
            r.status_code,
            tuple(sorted(got)),
            got["email"] == email,
            len(got["grants"]),
        )
        r = env.call("GET", "/users", env.admins["tc"])
        saw("list in tc", r.status_code, sum(u["email"] == email for u in r.json()))
    assert {k: len(v) for k, v in seen.items()} == dict.fromkeys(seen, 1), seen
    assert hashes[0] == len(cases) * 3  # one per login attempt

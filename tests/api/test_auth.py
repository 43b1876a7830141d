"""Logins, lockout, token lifetimes, API-key scopes and revocation, mass assignment."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from andon.api import endpoints
from andon.platform import Role
from tests.api.calls import NO_TARGET, prepare
from tests.api.world import PASSWORD, World, bearer, site_yaml


@pytest.fixture
def clock_restored(world: World) -> Iterator[World]:
    """Tests that move the clock put it back, so shared tokens stay valid."""
    now = world.clock.now
    try:
        yield world
    finally:
        world.clock.now = now


def _audit(world: World, tenant: str, action: str) -> list[tuple[str, str]]:
    rows = world.run(lambda: world.platform.audit.query(tenant, action=action, limit=100_000))
    return [(r.result, r.actor) for r in rows]


def test_login_success_and_failure_are_audited(world: World) -> None:
    uid, _ = world.user(world.a.id, [(Role.VIEWER, None)])
    email = world.run(world.platform.get_user, world.a.id, uid)["email"]
    before = _audit(world, world.a.id, "auth.login")
    r = world.call("POST", "/auth/login", body={"email": email, "password": "wrong password!"})
    assert r.status_code == 401
    assert r.json() == {"detail": "login failed"}
    after = _audit(world, world.a.id, "auth.login")
    assert after[len(before) :] == [("failed", f"user:{uid}")]
    unknown = world.call("POST", "/auth/login", body={"email": "ghost@x.example", "password": "x"})
    assert unknown.status_code == 401
    assert unknown.json() == r.json()  # nothing tells an unknown account from a wrong password


def test_repeated_failures_throttle_that_source_not_the_account(clock_restored: World) -> None:
    """No account lockout (anyone could lock anyone out): the source that keeps failing
    waits, the account still logs in from elsewhere, and the wait ends by itself."""
    world = clock_restored
    uid, _ = world.user(world.a.id, [(Role.VIEWER, None)])
    email = world.run(world.platform.get_user, world.a.id, uid)["email"]
    limit = world.platform.max_failed_logins
    for _ in range(limit):
        r = world.call("POST", "/auth/login", body={"email": email, "password": "not it at all"})
        assert r.status_code == 401
    right = {"email": email, "password": PASSWORD}
    assert world.call("POST", "/auth/login", body=right).status_code == 401  # this source waits
    assert ("failed", f"user:{uid}") in _audit(world, world.a.id, "auth.login")
    elsewhere = world.run(world.platform.login, email, PASSWORD, "198.51.100.4")
    assert elsewhere[1] == uid
    world.clock.now += world.platform.lockout_s * 1_000_000 + 1
    assert world.call("POST", "/auth/login", body=right).status_code == 200


def test_refresh_rotates_and_logout_spends(world: World) -> None:
    uid, _ = world.user(world.a.id, [(Role.VIEWER, None)])
    email = world.run(world.platform.get_user, world.a.id, uid)["email"]
    tokens = world.call("POST", "/auth/login", body={"email": email, "password": PASSWORD}).json()
    r = world.call("POST", "/auth/refresh", body={"refresh_token": tokens["refresh_token"]})
    assert r.status_code == 200
    fresh = r.json()
    me = world.call("GET", "/auth/me", bearer(fresh["access_token"])).json()
    assert (me["id"], me["tenant_id"], me["kind"]) == (uid, world.a.id, "user")
    assert world.call("POST", "/auth/logout", body={"refresh_token": fresh["refresh_token"]})
    spent = world.call("POST", "/auth/refresh", body={"refresh_token": fresh["refresh_token"]})
    assert spent.status_code == 401


def test_access_tokens_expire(clock_restored: World) -> None:
    world = clock_restored
    _, headers = world.user(world.a.id, [(Role.VIEWER, None)])
    assert world.call("GET", "/auth/me", headers).status_code == 200
    world.clock.now += world.platform.access_ttl_s * 1_000_000
    r = world.call("GET", "/auth/me", headers)
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"


def test_forged_and_malformed_credentials_are_refused(world: World) -> None:
    import jwt

    forged = jwt.encode(
        {"sub": world.a.admin_id, "tid": world.a.id, "typ": "access", "exp": 2**40},
        "not the secret at all, but long enough",
        algorithm="HS256",
    )
    for token in (
        forged,
        "garbage",
        "andon_" + "0" * 32 + "_nope",
        world.a.edge["Authorization"][7:] + "x",
    ):
        r = world.call("GET", "/auth/me", bearer(token))
        assert r.status_code == 401, token


def test_unauthenticated_calls_get_401_everywhere(world: World) -> None:
    for ep in endpoints():
        if ep.name in NO_TARGET:
            continue
        path, query, body = prepare(world, ep, world.a, fresh=False)
        r = world.call(ep.method, path, None, body, **query)
        assert r.status_code == 401, (ep.name, r.status_code)
        assert r.headers["www-authenticate"] == "Bearer"


def test_revoked_and_expired_keys_stop_working(clock_restored: World) -> None:
    world = clock_restored
    a = world.a
    r = world.call(
        "POST",
        "/api-keys",
        a.admin,
        {"name": "short", "kind": "app", "permissions": ["site:read"], "ttl_days": 1},
    )
    assert r.status_code == 201
    key_id, headers = r.json()["key"]["id"], bearer(r.json()["secret"])
    assert world.call("GET", "/sites", headers).status_code == 200
    listed = world.call("GET", f"/api-keys/{key_id}", a.admin).json()
    assert "secret" not in listed and r.json()["secret"] not in str(listed)
    world.clock.now += 86_400 * 1_000_000
    assert world.call("GET", "/sites", headers).status_code == 401
    world.clock.now -= 86_400 * 1_000_000
    assert world.call("DELETE", f"/api-keys/{key_id}", a.admin).json()["revoked_at"] is not None
    assert world.call("GET", "/sites", headers).status_code == 401
    assert ("ok", f"user:{a.admin_id}") in _audit(world, a.id, "keys.revoke")


def test_key_scopes_limit_kind_creator_and_sites(world: World) -> None:
    a = world.a
    edge_reads = {"name": "x", "kind": "edge", "permissions": ["telemetry:read"]}
    assert world.call("POST", "/api-keys", a.admin, edge_reads).status_code == 422
    app_admin = {"name": "x", "kind": "app", "permissions": ["audit:read"]}
    assert world.call("POST", "/api-keys", a.admin, app_admin).status_code == 422
    other = world.call("POST", "/sites", a.admin, {"model_yaml": site_yaml(world.unique("k"))})
    other_id = other.json()["id"]
    scoped = world.call(
        "POST",
        "/api-keys",
        a.admin,
        {
            "name": "one site",
            "kind": "app",
            "permissions": ["site:read", "telemetry:read"],
            "site_ids": [a.site_id],
        },
    ).json()
    h = bearer(scoped["secret"])
    assert world.call("GET", f"/sites/{a.site_id}", h).status_code == 200
    assert world.call("GET", f"/sites/{other_id}", h).status_code == 403
    assert [s["id"] for s in world.call("GET", "/sites", h).json()] == [a.site_id]
    # a key for a site of another tenant cannot be made
    foreign = {
        "name": "x",
        "kind": "app",
        "permissions": ["site:read"],
        "site_ids": [world.b.site_id],
    }
    assert world.call("POST", "/api-keys", a.admin, foreign).status_code == 404


def test_no_mass_assignment_of_tenant_or_role(world: World) -> None:
    a = world.a
    extras: list[dict[str, object]] = [
        {"tenant_id": world.b.id},
        {"role": "tenant-admin"},
        # grants are a field of their own, checked like POST /users/{id}/grants
        # (tests/api/test_users.py); a grant may not carry a tenant either
        {"grants": [{"role": "viewer", "tenant_id": world.b.id}]},
    ]
    for extra in extras:
        body = {"email": f"{world.unique('m')}@x.example", "password": PASSWORD, **extra}
        assert world.call("POST", "/users", a.admin, body).status_code == 422
    key = {"name": "x", "kind": "app", "permissions": ["site:read"], "tenant_id": world.b.id}
    assert world.call("POST", "/api-keys", a.admin, key).status_code == 422
    grant = world.call("POST", f"/users/{a.viewer_id}/grants", a.admin, {"role": "platform-admin"})
    assert grant.status_code == 422
    # a model file naming another tenant still lands in the caller's tenant
    text = site_yaml(world.unique("m")).replace("tenant: demo", f"tenant: {world.b.id}")
    site = world.call("POST", "/sites", a.admin, {"model_yaml": text}).json()
    assert world.call("GET", f"/sites/{site['id']}", a.admin).status_code == 200
    assert world.call("GET", f"/sites/{site['id']}", world.b.admin).status_code == 404

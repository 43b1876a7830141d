"""Creating a user with roles in one call: every grant is checked first, so a bad one (another
tenant's site, platform-admin) creates nothing."""

from __future__ import annotations

from tests.api.world import PASSWORD, World


def test_user_created_with_grants_in_one_step(world: World) -> None:
    w = world
    admin = w.a.admin
    email = f"{w.unique('g')}@{w.a.id}.example"
    body = {
        "email": email,
        "password": PASSWORD,
        "grants": [{"role": "operator", "site_id": w.a.site_id}],
    }
    r = w.call("POST", "/users", admin, body)
    assert r.status_code == 201, r.text
    assert [(g["role"], g["site_id"]) for g in r.json()["grants"]] == [("operator", w.a.site_id)]
    assert w.call("GET", "/auth/me", w.login(email)).status_code == 200

    def count() -> int:
        return len(w.call("GET", "/users", admin).json())

    before = count()
    other = {**body, "email": f"{w.unique('x')}@{w.a.id}.example"}
    foreign = {**other, "grants": [{"role": "viewer", "site_id": w.b.site_id}]}
    assert w.call("POST", "/users", admin, foreign).status_code == 404
    boss = {**other, "grants": [{"role": "platform-admin"}]}
    r = w.call("POST", "/users", admin, boss)
    assert r.status_code == 422 and "platform-admin" in r.text
    assert count() == before

"""Sessions end when they should: refresh-token reuse ends the whole session, logout ends
the access token at once, disabling a user ends every session, and a password change ends
the others. Each is audited under the account's tenant."""

from __future__ import annotations

from typing import Any

from andon.platform import Role
from tests.api.world import PASSWORD, World, bearer


def _login(world: World, email: str, password: str = PASSWORD) -> dict[str, Any]:
    r = world.call("POST", "/auth/login", body={"email": email, "password": password})
    assert r.status_code == 200, r.text
    tokens: dict[str, Any] = r.json()
    return tokens


def _new_user(world: World) -> tuple[str, str]:
    uid, _ = world.user(world.a.id, [(Role.VIEWER, None)])
    return uid, world.run(world.platform.get_user, world.a.id, uid)["email"]


def _audit(world: World, action: str) -> list[tuple[str, str, dict[str, Any]]]:
    rows = world.run(lambda: world.platform.audit.query(world.a.id, action=action, limit=100_000))
    return [(r.result, r.actor, r.detail) for r in rows]


def _me(world: World, tokens: dict[str, Any]) -> int:
    code: int = world.call("GET", "/auth/me", bearer(tokens["access_token"])).status_code
    return code


def test_reusing_a_spent_refresh_token_ends_its_whole_session(world: World) -> None:
    uid, email = _new_user(world)
    first = _login(world, email)
    other = _login(world, email)  # a second login: another session, not affected
    rotated = world.call("POST", "/auth/refresh", body={"refresh_token": first["refresh_token"]})
    assert rotated.status_code == 200
    fresh = rotated.json()
    before = len(_audit(world, "auth.refresh"))
    # the spent token comes back (a stolen copy, or the thief's): the family is revoked
    reuse = world.call("POST", "/auth/refresh", body={"refresh_token": first["refresh_token"]})
    assert reuse.status_code == 401
    assert _me(world, fresh) == 401
    again = world.call("POST", "/auth/refresh", body={"refresh_token": fresh["refresh_token"]})
    assert again.status_code == 401
    assert _me(world, other) == 200
    rows = _audit(world, "auth.refresh")[before:]
    assert [(r, a) for r, a, _ in rows] == [("failed", f"user:{uid}"), ("failed", f"user:{uid}")]
    assert "reused" in rows[0][2]["why"]
    assert rows[1][2]["why"] == "session revoked"


def test_a_refresh_token_naming_no_account_is_audited_without_a_tenant(world: World) -> None:
    r = world.call("POST", "/auth/refresh", body={"refresh_token": "0" * 32 + ".nope"})
    assert r.status_code == 401
    rows = world.run(
        lambda: world.platform.audit.query("ta", action="auth.refresh", result="failed")
    )
    assert all(row.actor.startswith("user:") for row in rows)


def test_logout_ends_the_access_token_at_once(world: World) -> None:
    uid, email = _new_user(world)
    tokens = _login(world, email)
    assert _me(world, tokens) == 200
    r = world.call("POST", "/auth/logout", body={"refresh_token": tokens["refresh_token"]})
    assert r.status_code == 204
    assert _me(world, tokens) == 401
    assert ("ok", f"user:{uid}") in [(r, a) for r, a, _ in _audit(world, "auth.logout")]


def test_a_disabled_user_is_refused_at_once_and_can_be_enabled(world: World) -> None:
    uid, email = _new_user(world)
    tokens = _login(world, email)
    r = world.call("PUT", f"/users/{uid}/status", world.a.admin, {"disabled": True})
    assert r.status_code == 200, r.text
    assert r.json()["disabled"] is True
    assert _me(world, tokens) == 401
    refresh = world.call("POST", "/auth/refresh", body={"refresh_token": tokens["refresh_token"]})
    assert refresh.status_code == 401
    login = world.call("POST", "/auth/login", body={"email": email, "password": PASSWORD})
    assert login.status_code == 401
    r = world.call("PUT", f"/users/{uid}/status", world.a.admin, {"disabled": False})
    assert r.status_code == 200 and r.json()["disabled"] is False
    assert _me(world, _login(world, email)) == 200
    acts = [(r, d) for r, _, d in _audit(world, "users.disable")]
    assert ("ok", {"sessions_ended": 2}) in acts  # world.user's login and this one
    assert _audit(world, "users.enable")
    # another tenant's admin cannot touch this user, and nobody can disable themselves
    other = world.call("PUT", f"/users/{uid}/status", world.b.admin, {"disabled": True})
    assert other.status_code == 404
    me = world.call("PUT", f"/users/{world.a.admin_id}/status", world.a.admin, {"disabled": True})
    assert me.status_code == 422


def test_a_password_change_needs_the_current_one_and_ends_the_other_sessions(
    world: World,
) -> None:
    uid, email = _new_user(world)
    here, elsewhere = _login(world, email), _login(world, email)
    new = "a different passphrase"
    wrong = {"current_password": "not the password", "new_password": new}
    r = world.call("POST", "/auth/password", bearer(here["access_token"]), wrong)
    assert r.status_code == 422
    assert _me(world, elsewhere) == 200
    right = {"current_password": PASSWORD, "new_password": new}
    r = world.call("POST", "/auth/password", bearer(here["access_token"]), right)
    assert r.status_code == 204, r.text
    assert _me(world, here) == 200
    assert _me(world, elsewhere) == 401
    old = world.call("POST", "/auth/login", body={"email": email, "password": PASSWORD})
    assert old.status_code == 401
    assert _me(world, _login(world, email, new)) == 200
    rows = [(r, a) for r, a, _ in _audit(world, "auth.password")]
    assert rows[-2:] == [("failed", f"user:{uid}"), ("ok", f"user:{uid}")]
    key = world.call("POST", "/auth/password", world.a.app, right)
    assert key.status_code == 422  # API keys have no password

"""Every declared endpoint × every role (granted tenant-wide, or at one site) and both key
kinds: the expected allow/deny is computed from the endpoint's declaration and the role
table, then checked against the running app."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from andon.api import Endpoint, endpoints
from andon.platform import Permission, Role
from andon.platform.permissions import ROLE_PERMISSIONS, TENANT_ONLY
from tests.api.calls import BODIES, NO_TARGET, QUERIES, prepare
from tests.api.world import World

H = dict[str, str]
ENDPOINTS = [e for e in endpoints() if e.name not in NO_TARGET]
GRANTS = [(r, "tenant") for r in Role] + [(r, "site") for r in Role if r is not Role.PLATFORM_ADMIN]
KEYS = {
    "edge": {Permission.INGEST_WRITE, Permission.SITE_READ},
    "app": {
        Permission.SITE_READ,
        Permission.TELEMETRY_READ,
        Permission.STATE_READ,
        Permission.KPI_READ,
        Permission.TENANT_READ,
    },
    "board": {Permission.BOARD_READ},
}
_users: dict[tuple[str, Role, str], tuple[str, H]] = {}


def expected_user(ep: Endpoint, role: Role, where: str) -> bool:
    if ep.scope == "authenticated":
        return True
    assert ep.permission is not None
    if ep.permission not in ROLE_PERMISSIONS[role]:
        return False
    return where == "tenant" or (ep.scope in ("site", "sites") and ep.permission not in TENANT_ONLY)


def expected_key(ep: Endpoint, kind: str) -> bool:
    if ep.scope == "authenticated":
        return True
    if kind == "board":  # one site's key: only site-scoped endpoints of that site
        return ep.scope == "site" and ep.permission in KEYS[kind]
    return ep.scope != "platform" and ep.permission in KEYS[kind]


def _check(
    world: World, ep: Endpoint, headers: H, allowed: bool, on_site: Callable[[str], None] | None
) -> None:
    path, query, body = prepare(world, ep, world.a, fresh=True, on_new_site=on_site)
    r = world.call(ep.method, path, headers, body, **query)
    assert r.status_code < 500, r.text
    if allowed:
        assert r.status_code not in (401, 403, 404), (ep.name, r.status_code, r.text)
    else:
        assert r.status_code == 403, (ep.name, r.status_code, r.text)


def test_every_endpoint_declares_and_is_covered() -> None:
    for ep in ENDPOINTS:
        assert ep.scope in ("authenticated", "tenant", "sites", "site", "platform")
        assert ep.permission is not None or ep.scope == "authenticated"
        needs = set(ep.path.split("{")[1:])
        assert all(
            p.split("}")[0]
            in {
                "site_id",
                "user_id",
                "grant_id",
                "key_id",
                "tenant_id",
                "alert_id",
                "job_id",
                "installation_id",
                "finding_id",
                "app_id",
            }
            for p in needs
        )
        if ep.method in ("POST", "PUT"):
            assert ep.name in BODIES, ep.name
    assert set(QUERIES) <= {e.name for e in ENDPOINTS}


@pytest.mark.parametrize(("role", "where"), GRANTS, ids=lambda x: str(x))
@pytest.mark.parametrize("ep", ENDPOINTS, ids=lambda e: e.name)
def test_role_matrix(world: World, ep: Endpoint, role: Role, where: str) -> None:
    key = (world.backend, role, where)
    if key not in _users:
        _users[key] = world.user(world.a.id, [(role, world.a.site_id if where == "site" else None)])
    uid, headers = _users[key]

    def grant_here(site_id: str) -> None:
        if where == "site":
            world.run(world.platform.grant_role, world.a.id, uid, role, site_id)

    _check(world, ep, headers, expected_user(ep, role, where), grant_here)


@pytest.mark.parametrize("kind", sorted(KEYS))
@pytest.mark.parametrize("ep", ENDPOINTS, ids=lambda e: e.name)
def test_key_matrix(world: World, ep: Endpoint, kind: str) -> None:
    _check(world, ep, getattr(world.a, kind), expected_key(ep, kind), None)

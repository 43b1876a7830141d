"""Tenant B's user (its tenant admin), edge key and app key against tenant A's objects: every
attempt is refused with 403 or 404, never 2xx or 5xx, and every refusal is in B's audit log."""

from __future__ import annotations

import pytest

from andon.api import Endpoint, endpoints
from tests.api.calls import NO_TARGET, SIGNAL, prepare
from tests.api.world import World

SHARED = {"apps.catalog.get"}
"""Objects every tenant reads alike: a published app of the catalog is no tenant's."""
OBJECT_ENDPOINTS = [
    e for e in endpoints() if "{" in e.path and e.name not in NO_TARGET and e.name not in SHARED
]
WHO = ("admin", "edge", "app", "board")


def test_every_object_endpoint_is_in_the_matrix() -> None:
    names = {e.name for e in OBJECT_ENDPOINTS}
    assert {"sites.get", "sites.delete", "users.get", "keys.revoke", "ingest.write"} <= names
    assert all("{" not in e.path for e in endpoints() if e.name not in names | SHARED)


@pytest.mark.parametrize("who", WHO)
@pytest.mark.parametrize("ep", OBJECT_ENDPOINTS, ids=lambda e: e.name)
def test_cross_tenant_object_access_is_denied_and_audited(
    world: World, ep: Endpoint, who: str
) -> None:
    a, b = world.a, world.b
    headers = getattr(b, who)
    before = world.denials(b.id)
    path, query, body = prepare(world, ep, a, fresh=False)
    r = world.call(ep.method, path, headers, body, **query)
    assert r.status_code in (403, 404), (ep.name, who, r.status_code, r.text)
    assert world.denials(b.id) == before + 1
    # tenant A's objects are untouched
    assert world.call("GET", f"/sites/{a.site_id}", a.admin).status_code == 200
    assert world.call("GET", f"/users/{a.viewer_id}", a.admin).json()["grants"]
    assert world.call("GET", f"/api-keys/{a.app_key_id}", a.admin).json()["revoked_at"] is None


@pytest.mark.parametrize("who", WHO)
def test_lists_and_filters_show_only_own_objects(world: World, who: str) -> None:
    a, b = world.a, world.b
    headers = getattr(b, who)
    r = world.call("GET", "/sites", headers, key=a.site_key)
    if r.status_code == 200:
        assert [s["id"] for s in r.json()] == [b.site_id]
    else:
        assert r.status_code == 403
    for path, field, foreign in (
        ("/users", "id", {a.admin_id, a.viewer_id}),
        ("/api-keys", "id", {a.edge_key_id, a.app_key_id}),
    ):
        r = world.call("GET", path, headers)
        assert r.status_code in (200, 403)
        if r.status_code == 200:
            assert not {x[field] for x in r.json()} & foreign
    r = world.call("GET", "/audit", headers, actor=f"user:{a.admin_id}")
    assert r.status_code in (200, 403)
    if r.status_code == 200:
        assert r.json() == []


def test_same_signal_names_read_only_own_tenant_data(world: World) -> None:
    """Both tenants' sites have the key ``tc1``: B asking for A's signal names through its own
    site reads B's (empty) data, while A sees its samples."""
    a, b = world.a, world.b
    q = {"signal": SIGNAL, "start": world.start, "end": world.end}
    mine = world.call("GET", f"/sites/{a.site_id}/telemetry/range", a.app, **q).json()
    theirs = world.call("GET", f"/sites/{b.site_id}/telemetry/range", b.app, **q).json()
    assert len(mine["ts"]) > 0
    assert theirs["ts"] == []
    # B's newest values (other tests may ingest into B before the world's range) are never A's
    last_a = world.call("GET", f"/sites/{a.site_id}/telemetry/last", a.app).json()["values"]
    last_b = world.call("GET", f"/sites/{b.site_id}/telemetry/last", b.app).json()["values"]
    assert last_a and all(v["ts"] < world.start for v in last_b)

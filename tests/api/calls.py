"""How to call each declared endpoint: path ids, query and body, per endpoint name. A test
pins that every declared endpoint has an entry here, so a new endpoint cannot skip the
matrices."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from andon.api import Endpoint
from andon.model.loader import parse_plant
from andon.platform import KeyKind, Permission, Role
from andon.platform.service import Principal
from tests.api.world import PASSWORD, Tenant, World, demo_yaml, site_yaml

__all__ = ["BODIES", "NO_TARGET", "QUERIES", "Call", "prepare"]

Call = tuple[str, dict[str, Any], Any]
_SIGNALS = parse_plant(demo_yaml()).signal_paths()
SIGNAL = _SIGNALS[0]


def _range(w: World) -> dict[str, Any]:
    return {"start": w.start, "end": w.end}


QUERIES: dict[str, Callable[[World], dict[str, Any]]] = {
    "telemetry.range": lambda w: {"signal": SIGNAL, **_range(w)},
    "telemetry.aggregate": lambda w: {"signal": SIGNAL, "bucket_s": 600, **_range(w)},
    "states.list": _range,
    "live.values": lambda w: {"max_ticks": 2},
}

BODIES: dict[str, Callable[[World], Any]] = {
    "tenants.create": lambda w: {
        "id": w.unique("t"),
        "name": "New",
        "admin_email": f"{w.unique('adm')}@new.example",
        "admin_password": PASSWORD,
    },
    "users.create": lambda w: {"email": f"{w.unique('n')}@x.example", "password": PASSWORD},
    "grants.create": lambda w: {"role": "viewer"},
    "keys.create": lambda w: {"name": "k", "kind": "app", "permissions": ["site:read"]},
    "sites.create": lambda w: {"model_yaml": site_yaml(w.unique("s"))},
    "sites.model.import": lambda w: {"model_yaml": demo_yaml()},
    "ingest.write": lambda w: {
        "samples": {
            "names": [SIGNAL],
            "index": [0],
            "ts": [w.end + len(w.unique(""))],
            "value": [1.0],
            "quality": [0],
        }
    },
    "auth.login": lambda w: {"email": "nobody@x.example", "password": "wrong"},
    "auth.refresh": lambda w: {"refresh_token": "x.y"},
    "auth.logout": lambda w: {"refresh_token": "x.y"},
}

NO_TARGET = {"health", "auth.login", "auth.refresh", "auth.logout"}
"""Public endpoints: no object and no permission, so no matrix row."""


def _fresh_ids(
    w: World, ep: Endpoint, t: Tenant, on_new_site: Callable[[str], None] | None
) -> dict[str, str]:
    pf = w.platform
    if ep.name == "sites.delete":
        site = w.run(pf.create_site, t.id, site_yaml(w.unique("d")))
        if on_new_site is not None:
            on_new_site(site["id"])
        return {"site_id": site["id"]}
    if ep.name in ("users.delete", "grants.delete"):
        u = w.run(
            pf.create_user, t.id, f"{w.unique('f')}@x.example", PASSWORD, [(Role.VIEWER, None)]
        )
        return {"user_id": u["id"], "grant_id": u["grants"][0]["id"]}
    if ep.name == "keys.revoke":
        admin = Principal("user", t.admin_id, t.id, tenant_wide=frozenset(Permission))
        key, _ = w.run(
            lambda: pf.create_api_key(
                t.id,
                admin,
                name="f",
                kind=KeyKind.APP,
                permissions=[Permission.SITE_READ],
                site_ids=[],
                ttl_s=3600,
            )
        )
        return {"key_id": key["id"]}
    return {}


def prepare(
    w: World,
    ep: Endpoint,
    t: Tenant,
    *,
    fresh: bool,
    on_new_site: Callable[[str], None] | None = None,
) -> Call:
    """The path (with ``t``'s object ids), query and body for calling ``ep``. ``fresh``:
    destructive endpoints act on objects made for this call only."""
    ids = {
        "site_id": t.site_id,
        "user_id": t.viewer_id,
        "grant_id": t.viewer_grant_id,
        "key_id": t.app_key_id,
        "tenant_id": t.id,
    }
    if fresh:
        ids.update(_fresh_ids(w, ep, t, on_new_site))
    path = ep.path.format(**ids)
    query = QUERIES[ep.name](w) if ep.name in QUERIES else {}
    body = BODIES[ep.name](w) if ep.name in BODIES else None
    return path, query, body

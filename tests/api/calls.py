"""How to call each declared endpoint: path ids, query and body, per endpoint name. A test
pins that every declared endpoint has an entry here, so a new endpoint cannot skip the
matrices."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from andon.api import Endpoint
from andon.floor.alerts import FloorRecords, WantedAlert
from andon.model.loader import parse_plant
from andon.platform import KeyKind, Permission, Role
from andon.platform.boards import register_device
from andon.platform.service import Principal
from tests.api import appworld
from tests.api.world import PASSWORD, Tenant, World, demo_yaml, site_yaml

__all__ = ["BODIES", "NO_TARGET", "QUERIES", "Call", "prepare"]

Call = tuple[str, dict[str, Any], Any]
_SIGNALS = parse_plant(demo_yaml()).signal_paths()
SIGNAL = _SIGNALS[0]
MACHINE = SIGNAL.rsplit("/", 1)[0]
_ALERTS: dict[tuple[int, str], str] = {}


def _alert_id(w: World, t: Tenant) -> str:
    """An alert of ``t``'s site (made once per world and tenant; kind ``test``)."""
    key = (id(w), t.id)
    if key not in _ALERTS:
        rec = FloorRecords(w.platform.db, w.clock)
        wanted = {(MACHINE, "test"): WantedAlert(MACHINE, "test", "warning", "made by calls.py")}
        w.run(rec.sync_alerts, t.id, t.site_id, wanted)
        rows = w.run(lambda: rec.alerts(t.id, t.site_id, open_only=False))
        _ALERTS[key] = next(a["id"] for a in rows if a["kind"] == "test")
    return _ALERTS[key]


LINE = MACHINE.rsplit("/", 1)[0]
_JOBS: dict[tuple[int, str], str] = {}


def _job_id(w: World, t: Tenant) -> str:
    """A twin job row of ``t``'s site (made once per world and tenant, never run)."""
    key = (id(w), t.id)
    if key not in _JOBS:
        jid = uuid.uuid4().hex
        row: dict[str, Any] = {
            "id": jid,
            "tenant_id": t.id,
            "site_id": t.site_id,
            "line": LINE,
            "created_by": f"user:{t.admin_id}",
            "created_at": w.start,
            "status": "failed",
            "progress": 0.0,
            "request": {"line": LINE, "hours": 1, "replications": 2},
            "result": None,
            "error": "made by tests/api/calls.py",
            "finished_at": w.start,
        }
        w.run(w.app.state.services.twin_jobs.store.create, row)
        _JOBS[key] = jid
    return _JOBS[key]


def _range(w: World) -> dict[str, Any]:
    return {"start": w.start, "end": w.end}


QUERIES: dict[str, Callable[[World], dict[str, Any]]] = {
    "telemetry.range": lambda w: {"signal": SIGNAL, **_range(w)},
    "telemetry.aggregate": lambda w: {"signal": SIGNAL, "bucket_s": 600, **_range(w)},
    "states.list": _range,
    "live.values": lambda w: {"max_ticks": 2},
    "kiosk.feed": lambda w: {"max_ticks": 2},
    "stops.list": _range,
    "kpi.downtime": _range,
    "alerts.list": lambda w: {"status": "all"},
    "alarms.list": lambda w: {"state": "all"},
    "lines.flow": lambda w: {"line": LINE},
    "lines.kpi": lambda w: {"line": LINE, **_range(w)},
    "lines.bottlenecks": lambda w: {"line": LINE, "bucket_s": 600, **_range(w)},
    "machines.kpi": lambda w: {"machine": MACHINE, "bucket_s": 600, **_range(w)},
    "energy.get": _range,
    "twin.scenario": lambda w: {"line": LINE},
    "findings.list": lambda w: {"verdict": "open", "machine": MACHINE},
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
    "edge.health.report": lambda w: {
        "edge": "edge-1",
        "time_us": w.end,
        "connectors": [{"connector": "opcua", "devices": [{"device": "opc.tcp://x"}]}],
    },
    # a well-formed entry for a stop that does not exist: 422 where allowed, rows unchanged
    "stops.reason": lambda w: {
        "machine": MACHINE,
        "start": 1,
        "category": "equipment",
        "reason": "mechanical",
    },
    "twin.jobs.create": lambda w: {"line": LINE, "hours": 1, "replications": 2},
    "alerts.ack": lambda w: None,  # no body
    "alerts.shelve": lambda w: {"duration_s": 600, "reason": "calls.py"},
    "alerts.unshelve": lambda w: None,
    "alarms.limits.put": lambda w: {"signal": SIGNAL, "alarms": {"high": 1e9}},
    "board.devices.create": lambda w: {"name": "Hall TV"},
    "targets.put": lambda w: {"line": LINE, "oee": 0.8, "per_hour": 40},
    "auth.login": lambda w: {"email": "nobody@x.example", "password": "wrong"},
    "auth.refresh": lambda w: {"refresh_token": "x.y"},
    "auth.logout": lambda w: {"refresh_token": "x.y"},
    # a wrong current password: refused (422) where allowed, no password changed
    "auth.password": lambda w: {
        "current_password": "not the password",
        "new_password": "a new passphrase",
    },
    "auth.reset.request": lambda w: {"email": "nobody@x.example"},
    "auth.reset": lambda w: {"token": "not a token", "new_password": "a new passphrase"},
    "auth.oidc.callback": lambda w: {"code": "not a code", "state": "not a state"},
    # enabling an enabled user changes nothing
    "users.status": lambda w: {"disabled": False},
    # publishing a directory without a manifest is refused (422) and publishes nothing
    "apps.publish": lambda w: {"app_dir": "/nonexistent/app", "report": {}},
    "apps.install": lambda w: {
        "app_id": "probe",
        "version": "0.1.0",
        "site_ids": [w.a.site_id],
        "accepted_permissions": appworld.PERMS["0.1.0"],
    },
    "apps.configure": lambda w: {"settings": {"threshold": 3.0}},
    "apps.upgrade": lambda w: {
        "version": "0.2.0",
        "accepted_permissions": appworld.PERMS["0.2.0"],
    },
    "apps.rollback": lambda w: None,
    "findings.feedback": lambda w: {"verdict": "confirmed", "comment": "calls.py"},
}

NO_TARGET = {
    "health",
    "auth.login",
    "auth.refresh",
    "auth.logout",
    "auth.reset.request",
    "auth.reset",
    "auth.oidc.start",
    "auth.oidc.callback",
    "auth.options",
}
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
    if ep.name in ("apps.configure", "apps.upgrade", "apps.rollback", "apps.uninstall"):
        return {"installation_id": str(appworld.install(w, t)["id"])}
    if ep.name == "board.devices.revoke":
        admin = Principal("user", t.admin_id, t.id, tenant_wide=frozenset(Permission))
        key, _ = w.run(lambda: register_device(pf, t.id, t.site_id, admin, w.unique("tv"), 3600))
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
    if "{alert_id}" in ep.path:
        ids["alert_id"] = _alert_id(w, t)
    if "{job_id}" in ep.path:
        ids["job_id"] = _job_id(w, t)
    if "{installation_id}" in ep.path:
        ids["installation_id"] = appworld.installation_id(w, t)
    if "{finding_id}" in ep.path:
        ids["finding_id"] = appworld.finding_id(w, t)
    if "{app_id}" in ep.path or ep.name == "apps.install":
        appworld.publish_probe(w)
        ids["app_id"] = "probe"
    if fresh:
        ids.update(_fresh_ids(w, ep, t, on_new_site))
    path = ep.path.format(**ids)
    query = QUERIES[ep.name](w) if ep.name in QUERIES else {}
    body = BODIES[ep.name](w) if ep.name in BODIES else None
    return path, query, body

"""Helpers of the shop-floor API tests (stops and reasons, alerts and alarms, the board, the
live feed): a site of its own in tenant A, state intervals through the ingest endpoint, the
test clock moved for a while, the audit rows of an action."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from andon.floor.alerts import AlertEvaluator
from andon.model.loader import parse_plant
from tests.api.world import World, site_yaml

__all__ = [
    "Site",
    "admin_headers",
    "audit_rows",
    "clock_at",
    "evaluator",
    "ingest_states",
    "new_site",
]


@dataclass
class Site:
    """A site of tenant A (the demo plant): its id, machine and line paths, and the machine
    paths by machine id."""

    id: str
    machines: list[str]
    lines: list[str]
    by_id: dict[str, str]


def admin_headers(w: World) -> dict[str, str]:
    """Tenant A's administrator, logged in at the test's clock (tokens live 15 minutes)."""
    return w.login(f"admin@{w.a.id}.example")


def new_site(w: World, stem: str) -> Site:
    """A new site of tenant A with the demo plant under a unique key starting with ``stem``."""
    yaml = site_yaml(w.unique(stem))
    r = w.call("POST", "/sites", admin_headers(w), {"model_yaml": yaml})
    assert r.status_code == 201, r.text
    plant = parse_plant(yaml)
    machines = plant.machines()
    return Site(
        r.json()["id"],
        [plant.machine_path(a, ln, m) for a, ln, m in machines],
        [f"{plant.site.id}/{a.id}/{ln.id}" for a, ln in plant.lines()],
        {m.id: plant.machine_path(a, ln, m) for a, ln, m in machines},
    )


def ingest_states(w: World, site_id: str, rows: list[tuple[str, int, int, int, str]]) -> None:
    """State intervals (machine, start, end, state, code) through the ingest endpoint with
    tenant A's edge key; every row stored."""
    names = sorted({m for m, *_ in rows})
    body = {
        "states": {
            "names": names,
            "index": [names.index(m) for m, *_ in rows],
            "start": [r[1] for r in rows],
            "end": [r[2] for r in rows],
            "state": [r[3] for r in rows],
            "reason": [r[4] for r in rows],
        }
    }
    r = w.call("POST", f"/sites/{site_id}/ingest", w.a.edge, body)
    assert r.status_code == 200, r.text
    assert r.json()["states"] == len(rows)


def evaluator(w: World) -> AlertEvaluator:
    """The app's alert evaluator (the tests step it themselves)."""
    ev = w.app.state.services.alerts
    assert isinstance(ev, AlertEvaluator)
    return ev


@contextmanager
def clock_at(w: World, now: int) -> Iterator[None]:
    """The test clock at ``now`` for the block, then back where it was."""
    saved = w.clock.now
    w.clock.now = now
    try:
        yield
    finally:
        w.clock.now = saved


def audit_rows(w: World, action: str) -> list[dict[str, Any]]:
    """Tenant A's audit rows of ``action`` (up to 1000), as the administrator reads them."""
    r = w.call("GET", "/audit", admin_headers(w), action=action, limit=1000)
    assert r.status_code == 200, r.text
    rows: list[dict[str, Any]] = r.json()
    return rows

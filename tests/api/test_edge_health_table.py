"""The edge-health table, on SQLite and PostgreSQL: the newest report per edge wins (a late,
older one never replaces it), the number of edges per site is bounded, tenants and sites do
not see each other's edges, and a restart (a new table object on the same database) keeps
them."""

from __future__ import annotations

from andon.api.routes_edge import EdgeHealthTable, StoredHealth
from andon.wire.health import EdgeHealthIn
from tests.api.world import World


def _h(edge: str, t: int) -> StoredHealth:
    return StoredHealth(EdgeHealthIn(edge=edge, time_us=t), t + 5, "key:k")


def test_newest_report_wins_and_edges_are_bounded(world: World) -> None:
    db = world.platform.db
    tenant, site = world.a.id, world.a.site_id
    prefix = world.unique("e")
    a, b, c = f"{prefix}-a", f"{prefix}-b", f"{prefix}-c"
    table = EdgeHealthTable(db)
    before = len(world.run(table.site, tenant, site))
    small = EdgeHealthTable(db, max_edges_per_site=before + 2)
    assert world.run(small.put, tenant, site, _h(a, 200))
    assert world.run(small.put, tenant, site, _h(a, 100))  # late and older: kept out
    mine = {h.report.edge: h for h in world.run(table.site, tenant, site)}
    assert mine[a].report.time_us == 200 and mine[a].received_us == 205
    assert world.run(small.put, tenant, site, _h(b, 1))
    assert not world.run(small.put, tenant, site, _h(c, 1))  # the site is full
    assert world.run(small.put, tenant, site, _h(b, 2))  # a known edge still reports
    again = {h.report.edge: h for h in world.run(EdgeHealthTable(db).site, tenant, site)}
    assert {a, b} <= set(again) and c not in again and again[b].report.time_us == 2
    assert world.run(table.site, world.b.id, world.b.site_id) == [] or all(
        h.report.edge not in (a, b) for h in world.run(table.site, world.b.id, world.b.site_id)
    )

"""The edge-health table, on SQLite and PostgreSQL: the newest report per edge wins (a late,
older one never replaces it), the number of edges per site is bounded, tenants and sites do
not see each other's edges, and a restart (a new table object on the same database) keeps
them."""

from __future__ import annotations

from dataclasses import asdict, fields

from andon.edge.buffer import BufferStats
from andon.edge.uplink import UplinkStats
from andon.ingest.edge_health import EdgeHealthTable, StoredHealth
from andon.platform.tables import edge_health
from andon.wire.health import BufferHealth, EdgeHealth, UplinkHealth
from tests.api.world import World


def _h(edge: str, t: int) -> StoredHealth:
    return StoredHealth(EdgeHealth(edge=edge, time_us=t), t + 5, "key:k")


def test_newest_report_wins_and_edges_are_bounded(world: World) -> None:
    db = world.platform.db
    tenant, site = world.a.id, world.a.site_id
    prefix = world.unique("e")
    a, b, c = f"{prefix}-a", f"{prefix}-b", f"{prefix}-c"
    table = EdgeHealthTable(db, edge_health)
    before = len(world.run(table.site, tenant, site))
    small = EdgeHealthTable(db, edge_health, max_edges_per_site=before + 2)
    assert world.run(small.put, tenant, site, _h(a, 200))
    assert world.run(small.put, tenant, site, _h(a, 100))  # late and older: kept out
    mine = {h.report.edge: h for h in world.run(table.site, tenant, site)}
    assert mine[a].report.time_us == 200 and mine[a].received_us == 205
    assert world.run(small.put, tenant, site, _h(b, 1))
    assert not world.run(small.put, tenant, site, _h(c, 1))  # the site is full
    assert world.run(small.put, tenant, site, _h(b, 2))  # a known edge still reports
    again = {
        h.report.edge: h for h in world.run(EdgeHealthTable(db, edge_health).site, tenant, site)
    }
    assert {a, b} <= set(again) and c not in again and again[b].report.time_us == 2
    assert world.run(table.site, world.b.id, world.b.site_id) == [] or all(
        h.report.edge not in (a, b) for h in world.run(table.site, world.b.id, world.b.site_id)
    )


def test_the_api_answers_every_counter_the_edge_reports(world: World) -> None:
    """The report the agent builds from its own counters (uplink and buffer stats) comes
    back from the API whole: acks ignored by reason, points dropped for a full disk, short
    sessions, every counter (``last_ack_monotonic`` is this process's clock, not sent)."""
    w = world
    edge = w.unique("edge-all-")
    uplink = UplinkStats(connected=True, acks=9, acks_ignored={"forged_ack": 2}, short_sessions=4)
    buffer = BufferStats(*range(1, 1 + len(fields(BufferStats))))
    report = EdgeHealth.model_construct(
        edge=edge,
        time_us=w.clock.now,
        pid=42,
        interval_s=10.0,
        uplink=UplinkHealth.model_construct(**asdict(uplink)),
        buffer=BufferHealth.model_construct(**asdict(buffer)),
        connectors=[],
    )
    path = f"/sites/{w.a.site_id}/edge/health"
    sent = w.call("POST", path, w.a.edge, report.model_dump(mode="json"))
    assert sent.status_code == 202, sent.text
    got = [e for e in w.call("GET", path, w.a.admin).json()["edges"] if e["edge"] == edge]
    assert len(got) == 1
    want_uplink = {k: v for k, v in asdict(uplink).items() if k != "last_ack_monotonic"}
    assert got[0]["uplink"] == want_uplink
    assert got[0]["buffer"] == asdict(buffer)
    assert got[0]["uplink"]["acks_ignored"] == {"forged_ack": 2}
    assert got[0]["buffer"]["dropped_disk_full_points"] == buffer.dropped_disk_full_points
    assert (got[0]["pid"], got[0]["time_us"], got[0]["stale"]) == (42, w.clock.now, False)


def test_a_long_error_text_is_cut_not_refused(world: World) -> None:
    """An edge's last error is its own exception text, of any length: the platform keeps
    the report with the text cut to 300 characters instead of refusing the whole report."""
    w = world
    edge = w.unique("edge-long-")
    path = f"/sites/{w.a.site_id}/edge/health"
    body = {"edge": edge, "time_us": w.clock.now, "uplink": {"last_error": "x" * 5_000}}
    sent = w.call("POST", path, w.a.edge, body)
    assert sent.status_code == 202, sent.text
    got = [e for e in w.call("GET", path, w.a.admin).json()["edges"] if e["edge"] == edge]
    assert got[0]["uplink"]["last_error"] == "x" * 300

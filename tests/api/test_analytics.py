"""The dashboard's analytics endpoints agree with the KPI engine and the bottleneck analysis
read directly, refuse bad ids, ranges and bucket counts with a 422 that names them, and
answer an empty site without errors."""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pytest

from andon.floor.alerts import FloorRecords
from andon.kpi import api as kpi
from andon.kpi.carbon import grid_factor
from andon.kpi.ranges import line_outputs, planned_production_s
from andon.kpi.summary import parts_of
from andon.kpi.timeline import Buckets
from andon.model.loader import parse_plant
from andon.model.plant import Plant
from andon.store.base import TelemetryStore
from andon.twin.bottleneck import analyse
from tests.api.calls import LINE, MACHINE
from tests.api.world import World, demo_yaml, site_yaml


def _store(world: World) -> TelemetryStore:
    store: TelemetryStore = world.app.state.services.store
    return store


def _plant(tenant: str) -> Plant:
    return parse_plant(demo_yaml()).model_copy(update={"tenant": tenant})


def _get(w: World, path: str, **q: Any) -> Any:
    r = w.call("GET", f"/sites/{w.a.site_id}{path}", w.a.app, **q)
    assert r.status_code == 200, r.text
    return r.json()


def test_line_flow_lists_machines_and_buffers_in_flow_order(world: World) -> None:
    body = _get(world, "/lines/flow", line=LINE)
    plant = _plant(world.a.id)
    _, line = next((a, ln) for a, ln in plant.lines() if ln.id == "L1")
    assert body["line"] == LINE
    assert [m["machine"] for m in body["machines"]] == [f"{LINE}/{m.id}" for m in line.machines]
    assert body["machines"][0]["kind"] == line.machines[0].type.value
    b1 = body["buffers"][0]
    assert b1["buffer"] == f"{LINE}/B1" and b1["capacity"] == line.buffers[0].capacity
    assert b1["from"] == [f"{LINE}/{x}" for x in line.buffers[0].from_]
    # the level is derived from the part counts (tests/api/test_kiosk_buffers.py: the truth)
    assert 0 <= b1["level"] <= b1["capacity"] and b1["level_source"] in ("empty", "full")


def test_line_kpi_matches_the_kpi_engine(world: World) -> None:
    w = world
    body = _get(w, "/lines/kpi", line=LINE, start=w.start, end=w.end)
    plant = _plant(w.a.id)
    sel = kpi.select(plant, line=LINE)
    table = w.run(lambda: kpi.oee(_store(w), plant, w.start, w.end, selection=sel, by_product=True))
    direct = next(x for x in kpi.line_oee(table, plant) if x.line == LINE)
    assert body["oee_bottleneck"] == pytest.approx(direct.oee_bottleneck, abs=1e-6)
    assert body["bottleneck"] == list(direct.bottleneck)
    assert body["good_out"] == direct.good_out > 0
    assert body["throughput_per_h"] == pytest.approx(direct.good_out / 2.0)
    steps = {s["loss"]: s["seconds"] for s in body["waterfall"]}
    assert [*steps][:: len(steps) - 1] == ["planned_busy", "fully_productive"]
    assert sum(v for k, v in steps.items() if k != "planned_busy") == pytest.approx(
        steps["planned_busy"], rel=1e-6
    )
    rows = {r["machine"]: r for r in table.group(lambda m, b, p: (m, b, "")).rows()}
    for m in body["machines"]:
        assert m["good"] == rows[m["machine"]]["good"]
        assert m["oee"] == pytest.approx(rows[m["machine"]]["oee"])
    assert 0 < body["oee"]["oee"] <= 1


def test_line_kpi_trend_is_the_kpi_engine_per_bucket(world: World) -> None:
    """The line page's goal chart: each bucket's A/P/Q/OEE is ``kpi.api.oee`` over the same
    buckets (the line's machines' times summed, then the ratios), its good output the last
    stations' parts and its rate per planned production hour of the bucket."""
    w = world
    body = _get(w, "/lines/kpi", line=LINE, start=w.start, end=w.end, bucket_s=900)
    trend = body["trend"]
    assert [p["start"] for p in trend] == [w.start + i * 900_000_000 for i in range(8)]
    assert trend[-1]["end"] == w.end
    assert all(x["end"] == y["start"] for x, y in itertools.pairwise(trend))
    plant = _plant(w.a.id)
    sel = kpi.select(plant, line=LINE)
    last = line_outputs(plant)[LINE]
    edges = np.array([p["start"] for p in trend] + [w.end], dtype=np.int64)
    b = Buckets(edges, tuple(f"q{i}" for i in range(len(trend))))
    table = w.run(
        lambda: kpi.oee(_store(w), plant, w.start, w.end, selection=sel, now=w.end, bucket_set=b)
    )
    rows = table.rows()
    for i, p in enumerate(trend):
        mine = [r for r in rows if r["bucket"] == f"q{i}"]
        # the line's ratios from its machines' summed times (ISO 22400: A × P × Q)
        busy = sum(r["planned_busy_s"] for r in mine)
        run = sum(r["running_s"] for r in mine)
        net = sum(r["net_operating_s"] for r in mine)
        good, produced = sum(r["good"] for r in mine), sum(r["produced"] for r in mine)
        a, perf, q = run / busy, net / run, good / produced
        want = {"availability": a, "performance": perf, "quality": q, "oee": a * perf * q}
        for k, v in want.items():
            assert p[k] == pytest.approx(v, abs=1e-6), (i, k)
            assert 0 <= p[k] <= 1, (i, k, p[k])
        out = sum(parts_of(r)[0] for r in mine if r["machine"] in last)
        assert p["good_out"] == out
        planned = planned_production_s(plant, last, p["start"], p["end"])
        assert p["planned_production_s"] == pytest.approx(planned, abs=1e-3)
        assert p["per_hour"] == pytest.approx(out / planned * 3600, rel=1e-5)
    assert sum(p["good_out"] for p in trend) == body["good_out"] > 0
    assert _get(w, "/lines/kpi", line=LINE, start=w.start, end=w.end)["trend"] == []


def test_bottlenecks_per_bucket_are_the_active_period_analysis(world: World) -> None:
    w = world
    whole = _get(w, "/lines/bottlenecks", line=LINE, start=w.start, end=w.end, bucket_s=7200)[
        "buckets"
    ]
    machines = [m["machine"] for m in _get(w, "/lines/flow", line=LINE)["machines"]]
    states = w.run(_store(w).read_states, w.a.id, machines, w.start, w.end)
    rep = analyse(states, w.start, w.end, machines)
    assert len(whole) == 1 and whole[0]["bottleneck"] == rep.momentary_bottleneck
    assert whole[0]["shares"] == pytest.approx({m: rep.sole[m] for m in machines}, abs=1e-6)
    assert whole[0]["shifting"] == pytest.approx(rep.shifting_total, abs=1e-6)
    quarter = _get(w, "/lines/bottlenecks", line=LINE, start=w.start, end=w.end, bucket_s=900)
    b = quarter["buckets"]
    assert len(b) == 8 and b[0]["start"] == w.start and b[-1]["end"] == w.end
    assert all(x["end"] == y["start"] for x, y in itertools.pairwise(b))
    for x in b:
        assert all(0 <= v <= 1 for v in x["shares"].values())
        # the stacked bars: sole shares plus shifting fill at most the bucket (they summed to
        # ~155 % when each machine's share was sole + shifting)
        assert sum(x["shares"].values()) + x["shifting"] <= 1 + 1e-5
        part = analyse(states, x["start"], x["end"], machines)
        assert x["bottleneck"] == (part.momentary_bottleneck if x["bottleneck"] else None)


def test_machine_kpi_trend_reliability_and_energy(world: World) -> None:
    w = world
    body = _get(w, "/machines/kpi", machine=MACHINE, start=w.start, end=w.end, bucket_s=1800)
    assert [p["start"] for p in body["trend"]] == [w.start + i * 1_800_000_000 for i in range(4)]
    assert any(p["oee"] is not None for p in body["trend"])
    plant = _plant(w.a.id)
    sel = kpi.Selection((MACHINE,))
    rel = w.run(lambda: kpi.reliability_report(_store(w), plant, w.start, w.end, selection=sel))
    mine = next(r.as_dict() for r in rel if r.reason == "")
    assert body["failures"] == mine["failures"]
    assert body["mtbf_s"] == mine["mtbf_s"] and body["mttr_s"] == mine["mttr_s"]
    assert body["kwh"] > 0 and body["good"] > 0
    assert body["kwh_per_part"] == pytest.approx(body["kwh"] / body["good"], rel=1e-4)


def test_energy_page(world: World) -> None:
    w = world
    body = _get(w, "/energy", start=w.start, end=w.end)
    machines = {m["machine"]: m for m in body["by_machine"]}
    assert MACHINE in machines
    for m in machines.values():
        assert sum(m["by_state"].values()) == pytest.approx(m["kwh"], rel=1e-3, abs=1e-3)
    plant = _plant(w.a.id)
    days = w.run(lambda: kpi.energy_periods(_store(w), plant, w.start, w.end, period="day"))
    total = sum(d.kwh for d in days)
    assert [x["month"] for x in body["months"]] == ["2026-01"]
    assert body["months"][0]["kwh"] == pytest.approx(total, abs=1e-3)
    factor = grid_factor(plant.site.timezone)
    assert body["grid"]["country"] == factor.country
    assert body["months"][0]["tco2e"] == pytest.approx(total * factor.kg_per_kwh / 1000, rel=1e-6)
    assert body["peak_kw"] > 0 and body["peak_at"] is not None
    assert body["baseline"] is None  # nothing stored in the 28 days before


def test_scenario_baseline_is_the_configuration(world: World) -> None:
    body = _get(world, "/twin/scenario", line=LINE)
    _, line = next((a, ln) for a, ln in _plant(world.a.id).lines() if ln.id == "L1")
    assert [b["capacity"] for b in body["buffers"]] == [b.capacity for b in line.buffers]
    mc = body["machines"][0]
    modes = line.machines[0].sim.failure_modes
    assert mc["mtbf_h"] == pytest.approx(1 / sum(1 / f.mtbf_h for f in modes), rel=1e-6)
    assert body["crew"] == line.repair_crew and body["shifts"][0]["name"] == "day"


@pytest.mark.parametrize(
    ("path", "query", "names"),
    [
        ("/lines/flow", {"line": "tc1/machining/L9"}, "tc1/machining/L9"),
        ("/lines/kpi", {"line": "nope"}, "nope"),
        ("/twin/scenario", {"line": "tc1/machining/L9"}, "L9"),
        ("/machines/kpi", {"machine": "tc1/machining/L1/XX-9", "bucket_s": 600}, "XX-9"),
        ("/lines/bottlenecks", {"line": LINE, "bucket_s": 60, "span_d": 90}, "buckets"),
        ("/lines/kpi", {"line": LINE, "span_d": 94}, "days"),
        ("/lines/kpi", {"line": LINE, "bucket_s": 60, "span_d": 90}, "buckets"),
        ("/lines/kpi", {"line": LINE, "bucket_s": 59}, "bucket_s"),
        ("/energy", {"span_d": -1}, "end must be after start"),
    ],
)
def test_bad_ids_ranges_and_buckets_are_422_naming_them(
    world: World, path: str, query: dict[str, Any], names: str
) -> None:
    w = world
    q = dict(query)
    span = q.pop("span_d", None)
    end = w.end if span is None else w.start + int(span * 86_400_000_000)
    if path != "/lines/flow" and path != "/twin/scenario":
        q |= {"start": w.start, "end": end}
    r = w.call("GET", f"/sites/{w.a.site_id}{path}", w.a.app, **q)
    assert r.status_code == 422, r.text
    assert names in r.text


def test_a_site_without_data_answers_empty(world: World) -> None:
    b, w = world.b, world
    site = f"/sites/{b.site_id}"
    q = {"start": w.start, "end": w.end}
    k = w.call("GET", f"{site}/lines/kpi", b.app, line=LINE, **q).json()
    assert k["good_out"] == 0 and k["oee"]["oee"] is None
    bn = w.call("GET", f"{site}/lines/bottlenecks", b.app, line=LINE, bucket_s=3600, **q).json()
    assert [x["bottleneck"] for x in bn["buckets"]] == [None, None]
    m = w.call("GET", f"{site}/machines/kpi", b.app, machine=MACHINE, bucket_s=3600, **q).json()
    assert m["failures"] == 0 and m["mtbf_s"] is None and m["kwh"] is None
    e = w.call("GET", f"{site}/energy", b.app, **q).json()
    assert e["by_machine"] == [] and e["peak_kw"] == 0 and e["baseline"] is None
    assert not any(math.isnan(x["kwh"]) for x in e["months"])


def test_machine_kpi_mtta_runs_to_the_first_reason_entry(world: World) -> None:
    """On a site of its own, after the world's range: two stops, the first answered twice
    (the earliest entry counts), the second never; MTTA is the first one's time to its
    answer."""
    w, a = world, world.a
    yaml = site_yaml(w.unique("an"))
    site = w.call("POST", "/sites", a.admin, {"model_yaml": yaml}).json()
    key = parse_plant(yaml).site.id
    m = f"{key}/machining/L1/MC-01"
    minute = 60_000_000
    t0 = w.end + 2 * 1440 * minute  # after the world's range, which other tests read whole
    rows = [(0, 10, 0), (10, 20, 3), (20, 30, 0), (30, 35, 3), (35, 60, 0)]
    body = {
        "states": {
            "names": [m],
            "index": [0] * len(rows),
            "start": [t0 + x * minute for x, _, _ in rows],
            "end": [t0 + y * minute for _, y, _ in rows],
            "state": [s for _, _, s in rows],
            "reason": [""] * len(rows),
        }
    }
    r = w.call("POST", f"/sites/{site['id']}/ingest", a.edge, body)
    assert r.status_code == 200, r.text
    floor = FloorRecords(w.platform.db, w.clock)
    for delay in (3, 7):
        w.clock.now = t0 + (10 + delay) * minute
        try:
            w.run(
                lambda: floor.add_reason(
                    a.id,
                    site["id"],
                    machine=m,
                    stop_start=t0 + 10 * minute,
                    category="equipment",
                    reason="mechanical",
                    actor="test",
                )
            )
        finally:
            w.clock.now = w.end
    got = w.call(
        "GET",
        f"/sites/{site['id']}/machines/kpi",
        a.app,
        machine=m,
        start=t0,
        end=t0 + 60 * minute,
        bucket_s=3600,
    ).json()
    assert got["failures"] == 2
    assert got["mttr_s"] == pytest.approx(7.5 * 60)
    assert got["mtta_s"] == pytest.approx(3 * 60)

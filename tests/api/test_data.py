"""Telemetry, states, KPIs, model export/import and ingest over the API agree with the store
and the KPI engine read directly."""

from __future__ import annotations

import math
from typing import Any

import pytest

from andon.kpi.summary import plant_summary
from andon.model.loader import parse_plant
from andon.model.plant import Plant
from andon.store.base import TelemetryStore
from tests.api.calls import SIGNAL
from tests.api.world import World, demo_yaml


def _store(world: World) -> TelemetryStore:
    store: TelemetryStore = world.app.state.services.store
    return store


def _plant(tenant: str) -> Plant:
    return parse_plant(demo_yaml()).model_copy(update={"tenant": tenant})


def test_last_values_of_a_line(world: World) -> None:
    plant = _plant(world.a.id)
    area, line = plant.lines()[0]
    prefix = f"{area.id}/{line.id}"
    r = world.call("GET", f"/sites/{world.a.site_id}/telemetry/last", world.a.app, prefix=prefix)
    assert r.status_code == 200
    got = {v["signal"]: (v["ts"], v["value"]) for v in r.json()["values"]}
    want_signals = [s for s in plant.signal_paths() if s.startswith(f"{plant.site.id}/{prefix}/")]
    direct = world.run(_store(world).last_values, world.a.id, want_signals)
    assert got and set(got) == set(direct)
    for s, lv in direct.items():
        assert got[s][0] == lv.ts
        assert got[s][1] == (None if math.isnan(lv.value) else lv.value)


def test_range_and_aggregate_match_the_store(world: World) -> None:
    a, w = world.a, world
    q = {"signal": SIGNAL, "start": w.start, "end": w.end}
    r = w.call("GET", f"/sites/{a.site_id}/telemetry/range", a.app, **q).json()
    direct = w.run(_store(w).read, a.id, [SIGNAL], w.start, w.end)
    assert r["ts"] == direct.ts.tolist() and not r["truncated"]
    agg = w.call("GET", f"/sites/{a.site_id}/telemetry/aggregate", a.app, bucket_s=900, **q).json()
    d = w.run(_store(w).aggregate, a.id, [SIGNAL], w.start, w.end, 900_000_000)
    assert agg["bucket"] == d.bucket.tolist()
    assert agg["count"] == d.count.tolist()
    assert agg["mean"] == pytest.approx(d.mean.tolist(), rel=1e-12)  # DuckDB sums in parallel
    bad = w.call(
        "GET", f"/sites/{a.site_id}/telemetry/range", a.app, signal="tc1/nope", start=0, end=1
    )
    assert bad.status_code == 422
    backwards = {**q, "start": w.end, "end": w.start}
    assert (
        w.call("GET", f"/sites/{a.site_id}/telemetry/range", a.app, **backwards).status_code == 422
    )


def test_states_and_todays_kpis_match_direct_reads(world: World) -> None:
    a, w = world.a, world
    r = w.call("GET", f"/sites/{a.site_id}/states", a.app, start=w.start, end=w.end).json()
    direct = w.run(_store(w).read_states, a.id, None, w.start, w.end)
    assert sorted(r["machines"]) == sorted(direct.names)
    assert len(r["start"]) == len(direct)
    k = w.call("GET", f"/sites/{a.site_id}/kpi/summary", a.app)
    assert k.status_code == 200
    body: dict[str, Any] = k.json()
    assert body["end"] == w.clock.now and body["start"] <= w.start
    want = w.run(plant_summary, _store(w), _plant(a.id), body["start"], body["end"]).as_dict()
    assert body["machines"] == want["machines"]
    assert body["lines"] == want["lines"]
    assert any(m["oee"] is not None for m in body["machines"])


def test_model_export_and_import(world: World) -> None:
    a, w = world.a, world
    r = w.call("GET", f"/sites/{a.site_id}/model", a.app)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/yaml")
    assert parse_plant(r.text).site.id == a.site_key
    renamed = r.text.replace("name: Taichung plant 1", "name: Taichung plant one")
    assert renamed != r.text
    up = w.call("PUT", f"/sites/{a.site_id}/model", a.admin, {"model_yaml": renamed})
    assert up.status_code == 200 and up.json()["name"] == "Taichung plant one"
    other_key = r.text.replace("id: tc1", "id: elsewhere", 1)
    assert (
        w.call("PUT", f"/sites/{a.site_id}/model", a.admin, {"model_yaml": other_key}).status_code
        == 422
    )
    broken = w.call("PUT", f"/sites/{a.site_id}/model", a.admin, {"model_yaml": "site: ["})
    assert broken.status_code == 422
    assert (
        w.call("PUT", f"/sites/{a.site_id}/model", a.admin, {"model_yaml": r.text}).status_code
        == 200
    )


def test_ingest_with_an_edge_key(world: World) -> None:
    b, w = world.b, world
    plant = _plant(b.id)
    sig = plant.signal_paths()[1]
    machine = plant.machine_path(*plant.machines()[0])
    t0 = (
        w.start - 3_600_000_000
    )  # before the world's range, which other tests read as B's empty data
    body = {
        "samples": {
            "names": [sig, f"{plant.site.id}/unknown/x"],
            "index": [0, 0, 1, 0],
            "ts": [t0, t0 + 1_000_000, t0, t0 + 2_000_000],
            "value": [1.5, 2.5, 3.0, None],
            "quality": [0, 0, 0, 2],
        },
        "states": {
            "names": [machine],
            "index": [0],
            "start": [t0],
            "end": [t0 + 60_000_000],
            "state": [0],
            "reason": [""],
        },
        "parts": {
            "names": [machine],
            "index": [0],
            "ts": [t0 + 30_000_000],
            "product": [next(iter(plant.machines()[0][2].ideal_cycle_s))],
            "good": [3],
            "scrap": [1],
        },
    }
    r = w.call("POST", f"/sites/{b.site_id}/ingest", b.edge, body)
    assert r.status_code == 200, r.text
    assert r.json() == {
        "accepted": 3,
        "duplicates": 0,
        "rejected": {"unknown_signal": 1},
        "conflicts": 0,
        "states": 1,
        "parts": 1,
        "open_states": 0,
        "texts": 0,
        "texts_duplicate": 0,
    }
    again = w.call("POST", f"/sites/{b.site_id}/ingest", b.edge, {"samples": body["samples"]})
    assert again.json()["duplicates"] == 3
    series = w.call(
        "GET",
        f"/sites/{b.site_id}/telemetry/range",
        b.app,
        signal=sig,
        start=t0,
        end=t0 + 10_000_000,
    ).json()
    assert series["value"] == [1.5, 2.5, None] and series["quality"] == [0, 0, 2]
    # names of another site of the same tenant are refused whole, and the refusal audited
    before = w.denials(b.id)
    outside = {"samples": {**body["samples"], "names": ["other/a/b", sig]}}
    assert w.call("POST", f"/sites/{b.site_id}/ingest", b.edge, outside).status_code == 403
    assert w.denials(b.id) == before + 1
    ragged = {"samples": {**body["samples"], "ts": [t0]}}
    assert w.call("POST", f"/sites/{b.site_id}/ingest", b.edge, ragged).status_code == 422
    # read keys cannot ingest
    assert w.call("POST", f"/sites/{b.site_id}/ingest", b.app, body).status_code == 403


def test_todays_kpis_are_computed_once_per_step(world: World) -> None:
    a, w = world.a, world
    step = w.app.state.services.settings.kpi_cache_s * 1_000_000
    now = w.clock.now
    try:
        w.clock.now = now - now % step + step // 2
        first = w.call("GET", f"/sites/{a.site_id}/kpi/summary", a.app).json()
        assert first["end"] == now - now % step
        # data arriving within the step is not seen until the next step
        w.clock.now += step // 4
        assert w.call("GET", f"/sites/{a.site_id}/kpi/summary", a.app).json() == first
        w.clock.now += step
        later = w.call("GET", f"/sites/{a.site_id}/kpi/summary", a.app).json()
        assert later["end"] == first["end"] + step
        explicit = w.call(
            "GET", f"/sites/{a.site_id}/kpi/summary", a.app, start=first["start"], end=now + 1
        ).json()
        assert explicit["end"] == now + 1
    finally:
        w.clock.now = now

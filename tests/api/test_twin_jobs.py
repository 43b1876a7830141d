"""Twin scenario jobs: a small job runs to "done" in the background with intervals that hold
its estimates and equal the twin run directly; bad changes and over-limit requests are
refused; jobs are tenant-private; the per-tenant limit answers 429; jobs left running are
marked interrupted, at shutdown and at the next start."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from andon.model.loader import parse_plant
from andon.platform.twin_jobs import SqlJobStore
from andon.twin.calibrate import calibrate_line
from andon.twin.jobs import TwinJobs
from andon.twin.run import replicate
from tests.api.calls import LINE
from tests.api.world import World, demo_yaml

DEADLINE_S = 180.0


def _jobs(w: World) -> TwinJobs:
    jobs: TwinJobs = w.app.state.services.twin_jobs
    return jobs


def _settle(w: World) -> None:
    """Wait (with a deadline) until every job of the app has finished."""
    w.run(lambda: asyncio.wait_for(_jobs(w).idle(), DEADLINE_S))


def _post(w: World, body: dict[str, Any], site: str | None = None, who: Any = None) -> Any:
    site = site or w.a.site_id
    return w.call("POST", f"/sites/{site}/twin/jobs", who or w.a.admin, body)


def _row(w: World, tenant: str, site: str, status: str) -> dict[str, Any]:
    return {
        "id": uuid.uuid4().hex,
        "tenant_id": tenant,
        "site_id": site,
        "line": LINE,
        "created_by": "test",
        "created_at": w.start,
        "status": status,
        "progress": 0.5,
        "request": {"line": LINE, "hours": 1, "replications": 2},
        "result": None,
        "error": None,
        "finished_at": None,
    }


def test_a_small_job_runs_to_done(world: World) -> None:
    w, a = world, world.a
    _settle(w)
    body = {"line": LINE, "hours": 24, "replications": 4, "changes": {"buffers": {"B1": 20}}}
    r = _post(w, body)
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["status"] in ("queued", "running") and job["line"] == LINE
    assert job["created_by"] == f"user:{a.admin_id}"
    _settle(w)
    got = w.call("GET", f"/sites/{a.site_id}/twin/jobs/{job['id']}", a.app).json()
    assert got["status"] == "done", got["error"]
    assert got["progress"] == 1.0 and got["finished_at"] is not None
    res = got["result"]
    assert res["source"] == "history" and res["replications"] == 4
    for k in ("today", "scenario", "difference"):
        lo, hi = res[k]["ci"]
        assert lo <= res[k]["throughput_per_h"] <= hi
    assert res["today"]["bottleneck"].startswith(LINE + "/")
    # per planned production hour too (Monday: 06:00-22:00 less 1.25 h of breaks), the
    # board's definition of a line's rate
    assert res["today"]["planned_h"] == 14.75
    today_ = res["today"]
    assert today_["per_planned_h"] == pytest.approx(today_["throughput_per_h"] * 24 / 14.75)
    assert res["money"]["currency"] == "TWD"
    lo, hi = res["money"]["ci"]
    assert lo <= res["money"]["per_day"] <= hi
    # the same twin run directly (calibration, then replications with the same seeds)
    plant = parse_plant(demo_yaml()).model_copy(update={"tenant": a.id})
    start, end = res["calibrated_from"]
    store = w.app.state.services.store
    cal = w.run(calibrate_line, store, plant, "L1", start, end)
    direct = replicate(cal.plant, "L1", 24.0, 4, 1, engine="events").throughput()
    assert res["today"]["throughput_per_h"] == pytest.approx(direct.mean, rel=1e-9)
    assert res["today"]["ci"] == pytest.approx([direct.low, direct.high], rel=1e-9)
    listed = w.call("GET", f"/sites/{a.site_id}/twin/jobs", a.app).json()
    assert job["id"] in [j["id"] for j in listed]
    audit = w.run(lambda: w.platform.audit.query(a.id, action="twin.jobs.create", limit=1000))
    assert any(e.object == f"job:{job['id']}" for e in audit)


@pytest.mark.parametrize(
    ("changes", "names"),
    [
        ({"buffers": {"tc1/machining/L1/B9": 5}}, "B9"),
        ({"buffers": {"B1": -3}}, "buffers"),
        ({"buffers": {"B1": 0}}, "buffers"),
        ({"cycle_time_s": {"tc1/machining/L1/XX-1": 30}}, "XX-1"),
        ({"cycle_time_s": {"tc1/joining/L2/RB-01": 30}}, "RB-01"),
        ({"mttr_h": {"MC-01": -1}}, "mttr_h"),
        ({"crew": 0}, "crew"),
        ({"buffer": {"B1": 5}}, "buffer"),
    ],
)
def test_bad_changes_are_422_naming_them(world: World, changes: dict[str, Any], names: str) -> None:
    r = _post(world, {"line": LINE, "hours": 1, "replications": 2, "changes": changes})
    assert r.status_code == 422, r.text
    assert names in r.text


@pytest.mark.parametrize(
    ("body", "names"),
    [
        ({"line": "tc1/machining/L9", "hours": 1, "replications": 2}, "L9"),
        ({"line": LINE, "hours": 1e6, "replications": 2}, "hours"),
        ({"line": LINE, "hours": 0.5, "replications": 2}, "hours"),
        ({"line": LINE, "hours": 1, "replications": 10_000}, "replications"),
        ({"line": LINE, "hours": 1, "replications": 1}, "replications"),
    ],
)
def test_bad_lines_and_limits_are_422(world: World, body: dict[str, Any], names: str) -> None:
    r = _post(world, body)
    assert r.status_code == 422, r.text
    assert names in r.text


def test_job_ids_of_another_tenant_are_404(world: World) -> None:
    w, a, b = world, world.a, world.b
    row = _row(w, a.id, a.site_id, "failed")
    w.run(_jobs(w).store.create, row)
    jid = row["id"]
    assert w.call("GET", f"/sites/{a.site_id}/twin/jobs/{jid}", a.app).status_code == 200
    # B through its own site, and B through A's site
    assert w.call("GET", f"/sites/{b.site_id}/twin/jobs/{jid}", b.admin).status_code == 404
    assert w.call("GET", f"/sites/{a.site_id}/twin/jobs/{jid}", b.admin).status_code == 404
    assert jid not in [
        j["id"] for j in w.call("GET", f"/sites/{b.site_id}/twin/jobs", b.app).json()
    ]
    assert w.call("GET", f"/sites/{a.site_id}/twin/jobs/{'0' * 32}", a.app).status_code == 404


def test_the_per_tenant_limit_is_429(world: World) -> None:
    w, b = world, world.b
    _settle(w)
    store = _jobs(w).store
    rows = [_row(w, b.id, b.site_id, "running") for _ in range(_jobs(w).max_per_tenant)]
    for row in rows:
        w.run(store.create, row)
    try:
        r = _post(w, {"line": LINE, "hours": 1, "replications": 2}, b.site_id, b.admin)
        assert r.status_code == 429 and "per tenant" in r.text
        # another tenant is not held back
        ok = _post(w, {"line": LINE, "hours": 1, "replications": 2})
        assert ok.status_code == 202, ok.text
    finally:
        for row in rows:
            w.run(lambda row=row: store.update(row["id"], status="failed", error="test"))
        _settle(w)


def test_jobs_left_running_are_interrupted(world: World) -> None:
    """At shutdown the running job stops after its replication; at the next start, rows a
    dead process left queued or running are marked failed too."""
    w, a = world, world.a
    _settle(w)
    services = w.app.state.services
    store = SqlJobStore(w.platform.db)
    left = _row(w, a.id, a.site_id, "running")
    w.run(store.create, left)
    other = TwinJobs(store, services.store, w.clock, workers=1)
    assert w.run(other.start) >= 1
    row = w.run(store.get, a.id, a.site_id, left["id"])
    assert row is not None and (row["status"], row["error"]) == ("failed", "interrupted")
    plant = parse_plant(demo_yaml()).model_copy(update={"tenant": a.id})
    from andon.twin.jobs import find_line

    ref = find_line(plant, LINE)
    request = {"line": LINE, "hours": 720, "replications": 50, "changes": {}}
    job = w.run(other.submit, a.id, a.site_id, plant, ref, request, "test")

    async def started() -> None:
        while (await store.get(a.id, a.site_id, job["id"]) or {}).get("status") != "running":
            await asyncio.sleep(0.01)

    w.run(lambda: asyncio.wait_for(started(), DEADLINE_S))
    w.run(lambda: asyncio.wait_for(other.stop(), DEADLINE_S))
    row = w.run(store.get, a.id, a.site_id, job["id"])
    assert row is not None and (row["status"], row["error"]) == ("failed", "interrupted")
    assert row["progress"] < 1.0

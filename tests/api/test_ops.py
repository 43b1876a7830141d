"""The shop-floor endpoints on both metadata backends: stops and reason entries (every
validation error), the downtime Pareto, alerts (opened and closed by the evaluator,
acknowledged by users, audited), the andon board, and the live feed's ``states`` and
``alerts`` events. Each test works on a site of its own in tenant A, with state intervals it
ingests itself, so the shared world's data stays as other tests expect."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from andon.bus import AlertChanged, alerts_topic
from andon.model.types import MachineState, StateBatch
from andon.platform import Role
from tests.api.floor import (
    Site,
    admin_headers,
    audit_rows,
    clock_at,
    evaluator,
    ingest_states,
    new_site,
)
from tests.api.world import World, sse_events

S = 1_000_000
MIN = 60 * S
HOUR = 60 * MIN
RUN, DOWN = int(MachineState.RUNNING), int(MachineState.DOWN)


@pytest.fixture
def end(world: World) -> Iterator[int]:
    """The clock during a test: six hours after the shared world's data, so what a test
    ingests stays out of the range other tests read back."""
    t = world.end + 6 * 3600 * S
    with clock_at(world, t):
        yield t


# ---- reasons, stops and the Pareto ------------------------------------------------------------


def test_reason_tree_has_default_categories_and_the_plants_failure_modes(world: World) -> None:
    a = world.a
    r = world.call("GET", f"/sites/{a.site_id}/reasons/tree", a.app)
    assert r.status_code == 200, r.text
    cats = {c["id"]: c for c in r.json()["categories"]}
    assert {"planned", "equipment", "process", "organisation"} <= set(cats)
    equipment = {x["id"]: x["label"] for x in cats["equipment"]["reasons"]}
    assert equipment["mechanical"] == "Mechanical failure"
    assert "SPINDLE_OVERLOAD" in equipment  # a failure mode of the demo plant
    assert cats["equipment"]["label"] == "Equipment"


def test_reason_entry_fills_the_pareto_and_is_audited(world: World, end: int) -> None:
    site = new_site(world, "ops")
    m = site.machines[0]
    t0 = end - 60 * MIN
    ingest_states(
        world,
        site.id,
        [
            (m, t0, t0 + 10 * MIN, RUN, ""),
            (m, t0 + 10 * MIN, t0 + 15 * MIN, DOWN, ""),  # stored in two touching pieces
            (m, t0 + 15 * MIN, t0 + 20 * MIN, DOWN, ""),
            (m, t0 + 20 * MIN, t0 + 30 * MIN, RUN, ""),
            (m, t0 + 30 * MIN, t0 + 32 * MIN, DOWN, "E042"),
            (m, t0 + 32 * MIN, end, RUN, ""),
        ],
    )
    base = f"/sites/{site.id}"
    rng = {"start": t0, "end": end}
    stops = world.call("GET", f"{base}/stops", world.a.app, machine=m, **rng).json()["stops"]
    assert [(s["start"], s["end"], s["state"], s["code"]) for s in stops] == [
        (t0 + 10 * MIN, t0 + 20 * MIN, "down", None),
        (t0 + 30 * MIN, t0 + 32 * MIN, "down", "E042"),
    ]
    assert stops[0]["category"] is None and stops[0]["entered_by"] is None
    assert (stops[1]["category"], stops[1]["reason"]) == ("unmapped", "E042")
    open_ = world.call("GET", f"{base}/stops", world.a.app, unexplained=True, **rng).json()
    assert [s["start"] for s in open_["stops"]] == [t0 + 10 * MIN]

    pareto = world.call("GET", f"{base}/kpi/downtime", world.a.app, **rng).json()
    assert pareto["unexplained_s"] == 600.0
    assert {(r["category"], r["reason"]): (r["seconds"], r["count"]) for r in pareto["rows"]} == {
        ("unexplained", ""): (600.0, 1),
        ("unmapped", "E042"): (120.0, 1),
    }

    uid, operator = world.user(world.a.id, [(Role.OPERATOR, site.id)])
    body = {"machine": m, "start": t0 + 10 * MIN, "category": "equipment", "reason": "mechanical"}
    first_at = world.clock.now
    r = world.call("POST", f"{base}/stops/reason", operator, body)
    assert r.status_code == 200, r.text
    stop = r.json()
    assert stop["start"] == t0 + 10 * MIN and stop["end"] == t0 + 20 * MIN
    assert (stop["category"], stop["reason"]) == ("equipment", "mechanical")
    assert stop["entered_by"] == f"user:{uid}"
    assert stop["entered_at"] == stop["acked_at"] == first_at
    audit = [
        x for x in audit_rows(world, "stops.reason") if x["object"] == f"stop:{m}@{t0 + 600 * S}"
    ]
    assert len(audit) == 1 and audit[0]["actor"] == f"user:{uid}"
    assert audit[0]["detail"]["before"] is None
    assert audit[0]["detail"]["after"]["reason"] == "mechanical"

    pareto = world.call("GET", f"{base}/kpi/downtime", world.a.app, **rng).json()
    assert pareto["unexplained_s"] == 0.0
    assert ("equipment", "mechanical", 600.0, 1) in {
        (r["category"], r["reason"], r["seconds"], r["count"]) for r in pareto["rows"]
    }
    # the line filter: another line has no downtime at all
    other = world.call("GET", f"{base}/kpi/downtime", world.a.app, line=site.lines[-1], **rng)
    assert other.status_code == 200 and other.json()["rows"] == []

    # a later entry replaces the reason; the first stays the acknowledgement
    with clock_at(world, world.clock.now + 90 * S):
        body2 = {**body, "reason": "electrical", "note": "contactor"}
        r = world.call("POST", f"{base}/stops/reason", operator, body2)
    assert r.status_code == 200, r.text
    assert r.json()["reason"] == "electrical" and r.json()["acked_at"] == first_at
    assert r.json()["entered_at"] == first_at + 90 * S and r.json()["note"] == "contactor"
    audit = [
        x for x in audit_rows(world, "stops.reason") if x["object"] == f"stop:{m}@{t0 + 600 * S}"
    ]
    assert audit[-1]["detail"]["before"]["reason"] == "mechanical"
    assert audit[-1]["detail"]["after"]["reason"] == "electrical"
    open_ = world.call("GET", f"{base}/stops", world.a.app, unexplained=True, **rng).json()
    assert open_["stops"] == []
    pareto = world.call("GET", f"{base}/kpi/downtime", world.a.app, **rng).json()
    assert ("equipment", "electrical") in {(r["category"], r["reason"]) for r in pareto["rows"]}
    assert ("equipment", "mechanical") not in {(r["category"], r["reason"]) for r in pareto["rows"]}


def _error(r: Any) -> tuple[list[str], str]:
    assert r.status_code == 422, r.text
    d = r.json()["detail"][0]
    return d["loc"], d["msg"]


def test_reason_entry_validation_names_the_field(world: World, end: int) -> None:
    site = new_site(world, "ops")
    m = site.machines[1]
    t0 = end - 30 * MIN
    ingest_states(
        world,
        site.id,
        [(m, t0, t0 + 5 * MIN, RUN, ""), (m, t0 + 5 * MIN, t0 + 9 * MIN, DOWN, "")],
    )
    url = f"/sites/{site.id}/stops/reason"
    ok = {"machine": m, "start": t0 + 5 * MIN, "category": "process", "reason": "jam"}
    op = admin_headers(world)

    loc, msg = _error(world.call("POST", url, op, {**ok, "machine": "tc1/x/y/z"}))
    assert loc == ["body", "machine"] and "not a machine of this site" in msg
    # a machine of tenant A's other site is not a machine of this one
    loc, _ = _error(world.call("POST", url, op, {**ok, "machine": "tc1/machining/L1/MC-01"}))
    assert loc == ["body", "machine"]
    loc, msg = _error(world.call("POST", url, op, {**ok, "category": "weather"}))
    assert loc == ["body", "category"] and "weather" in msg
    loc, msg = _error(world.call("POST", url, op, {**ok, "reason": "mechanical"}))
    assert loc == ["body", "reason"] and "not a reason of 'process'" in msg
    loc, msg = _error(world.call("POST", url, op, {**ok, "start": t0 + 5 * MIN + 1}))
    assert loc == ["body", "start"] and "no stop" in msg
    loc, msg = _error(world.call("POST", url, op, {**ok, "start": t0}))
    assert loc == ["body", "start"] and "running" in msg
    loc, _ = _error(world.call("POST", url, op, {k: v for k, v in ok.items() if k != "reason"}))
    assert loc == ["body", "reason"]
    loc, _ = _error(world.call("POST", url, op, {**ok, "tenant": "tb"}))
    assert loc == ["body", "tenant"]
    assert _error(world.call("GET", f"/sites/{site.id}/stops", op, start=t0, end=end,
                             machine="nope"))[0] == ["query", "machine"]  # fmt: skip
    r = world.call("GET", f"/sites/{site.id}/kpi/downtime", op, start=t0, end=end, line="x")
    assert _error(r)[0] == ["query", "line"]
    assert world.call("GET", f"/sites/{site.id}/stops", op, start=t0, end=t0).status_code == 422
    assert not [
        x for x in audit_rows(world, "stops.reason") if x["object"].startswith(f"stop:{m}@")
    ], "refused entries are not recorded"
    r = world.call("POST", url, op, ok)
    assert r.status_code == 200, r.text
    _, viewer = world.user(world.a.id, [(Role.VIEWER, site.id)])
    assert world.call("POST", url, viewer, ok).status_code == 403


# ---- alerts, the board and the live feed ------------------------------------------------------


def _down_site(w: World, end: int) -> tuple[Site, str, str]:
    """A site whose first machine runs, second is down (no reason) for 20 minutes, and the
    rest never sent anything."""
    site = new_site(w, "ops")
    m1, m2 = site.machines[0], site.machines[1]
    ingest_states(
        w,
        site.id,
        [
            (m1, end - 30 * MIN, end, RUN, ""),
            (m2, end - 30 * MIN, end - 20 * MIN, RUN, ""),
            (m2, end - 20 * MIN, end, DOWN, ""),
        ],
    )
    return site, m1, m2


def _alerts(w: World, site: Site, status: str = "open") -> dict[tuple[str | None, str], Any]:
    r = w.call("GET", f"/sites/{site.id}/alerts", w.a.app, status=status)
    assert r.status_code == 200, r.text
    return {(a["machine"], a["kind"]): a for a in r.json()}


def test_alerts_open_are_acknowledged_and_close(world: World, end: int) -> None:
    site, m1, m2 = _down_site(world, end)
    ev = evaluator(world)
    assert world.run(ev.step_site, world.a.id, site.id) == 2 + (len(site.machines) - 2)
    got = _alerts(world, site)
    assert set(got) == {(m2, "down"), (m2, "unexplained_stop")} | {
        (m, "offline") for m in site.machines[2:]
    }
    assert got[(m2, "down")]["severity"] == "critical"
    assert "down for 20 min" in got[(m2, "down")]["message"]
    assert got[(m2, "down")]["opened_at"] == world.clock.now
    # a second pass changes nothing: one open alert per (site, machine, kind)
    assert world.run(ev.step_site, world.a.id, site.id) == 0

    board = world.call("GET", f"/sites/{site.id}/board", world.a.app)
    assert board.status_code == 200, board.text
    b = board.json()
    rows = {x["machine"]: x for x in b["machines"]}
    assert list(rows) == site.machines
    assert (rows[m1]["state"], rows[m1]["since"], rows[m1]["alerts"]) == (
        "running",
        end - 30 * MIN,
        0,
    )
    assert (rows[m2]["state"], rows[m2]["since"], rows[m2]["alerts"]) == (
        "down",
        end - 20 * MIN,
        2,
    )
    assert {rows[m]["state"] for m in site.machines[2:]} == {"offline"}
    assert {a["id"] for a in b["alerts"]} == {a["id"] for a in got.values()}
    assert [ln["line"] for ln in b["lines"]] == site.lines
    assert b["lines"][0]["bottleneck"] in (m1, m2)

    alert = got[(m2, "down")]
    uid, operator = world.user(world.a.id, [(Role.OPERATOR, site.id)])
    r = world.call("POST", f"/sites/{site.id}/alerts/{alert['id']}/ack", operator)
    assert r.status_code == 200, r.text
    assert (r.json()["acked_by"], r.json()["acked_at"]) == (f"user:{uid}", world.clock.now)
    audit = [x for x in audit_rows(world, "alerts.ack") if x["object"] == f"alert:{alert['id']}"]
    assert len(audit) == 1 and audit[0]["detail"]["after"]["acked_by"] == f"user:{uid}"
    assert audit[0]["detail"]["before"]["acked_by"] is None
    # the first acknowledgement stays
    _, other = world.user(world.a.id, [(Role.OPERATOR, site.id)])
    r = world.call("POST", f"/sites/{site.id}/alerts/{alert['id']}/ack", other)
    assert r.json()["acked_by"] == f"user:{uid}"
    missing = world.call("POST", f"/sites/{site.id}/alerts/{'0' * 32}/ack", operator)
    assert missing.status_code == 404
    # an alert of this site is not an alert of tenant A's other site
    r = world.call(
        "POST", f"/sites/{world.a.site_id}/alerts/{alert['id']}/ack", admin_headers(world)
    )
    assert r.status_code == 404

    # the machine runs again and its stop gets a reason: both alerts close
    later = end + 60 * S
    with clock_at(world, later):
        ingest_states(world, site.id, [(m2, end, end + 30 * S, RUN, "")])
        body = {"machine": m2, "start": end - 20 * MIN, "category": "process"}
        r = world.call(
            "POST", f"/sites/{site.id}/stops/reason", operator, {**body, "reason": "jam"}
        )
        assert r.status_code == 200, r.text
        assert world.run(ev.step_site, world.a.id, site.id) == 2
        now_open = _alerts(world, site)
        assert set(now_open) == {(m, "offline") for m in site.machines[2:]}
        closed = _alerts(world, site, "all")
        assert closed[(m2, "down")]["closed_at"] == later
        assert closed[(m2, "down")]["acked_by"] == f"user:{uid}"
        assert closed[(m2, "unexplained_stop")]["closed_at"] == later
        b = world.call("GET", f"/sites/{site.id}/board", world.a.app).json()
        m2_row = next(x for x in b["machines"] if x["machine"] == m2)
        assert (m2_row["state"], m2_row["alerts"]) == ("running", 0)
    # offline machines come back: once they send, their alerts close too
    with clock_at(world, later + 10 * S):
        ingest_states(world, site.id, [(m, end, end + 30 * S, RUN, "") for m in site.machines])
        world.run(ev.step_site, world.a.id, site.id)
        assert _alerts(world, site) == {}


def test_board_and_stops_show_a_state_still_going_on(world: World, end: int) -> None:
    """A machine that went down two minutes ago has no closed interval for it yet: the edge
    sends it as an open state, and the board, the stops list and a reason entry see it;
    once the closed interval arrives it is the same stop."""
    site = new_site(world, "ops")
    m = site.machines[0]
    ingest_states(world, site.id, [(m, end - 30 * MIN, end - 2 * MIN, RUN, "")])
    body = {
        "open_states": {
            "names": [m],
            "index": [0],
            "start": [end - 2 * MIN],
            "end": [end - 1 * S],
            "state": [DOWN],
            "reason": [""],
        }
    }
    r = world.call("POST", f"/sites/{site.id}/ingest", world.a.edge, body)
    assert r.status_code == 200 and r.json()["open_states"] == 1, r.text
    row = next(
        x
        for x in world.call("GET", f"/sites/{site.id}/board", world.a.app).json()["machines"]
        if x["machine"] == m
    )
    assert (row["state"], row["since"]) == ("down", end - 2 * MIN)
    stops = world.call(
        "GET", f"/sites/{site.id}/stops", world.a.app, start=end - HOUR, end=end, machine=m
    ).json()["stops"]
    assert [(x["start"], x["state"]) for x in stops] == [(end - 2 * MIN, "down")]
    uid, operator = world.user(world.a.id, [(Role.OPERATOR, site.id)])
    entry = {"machine": m, "start": end - 2 * MIN, "category": "process", "reason": "jam"}
    r = world.call("POST", f"/sites/{site.id}/stops/reason", operator, entry)
    assert r.status_code == 200, r.text
    email = world.run(world.platform.get_user, world.a.id, uid)["email"]
    assert (r.json()["entered_by"], r.json()["entered_by_name"]) == (f"user:{uid}", email)
    # the stop closes: the stored interval replaces the open one, the entry still applies
    with clock_at(world, end + MIN):
        ingest_states(world, site.id, [(m, end - 2 * MIN, end + 30 * S, DOWN, "")])
        stops = world.call(
            "GET", f"/sites/{site.id}/stops", world.a.app, start=end - HOUR, end=end + MIN
        ).json()["stops"]
        mine = [x for x in stops if x["machine"] == m]
        assert [(x["start"], x["end"], x["reason"], x["entered_by_name"]) for x in mine] == [
            (end - 2 * MIN, end + 30 * S, "jam", email)
        ]


def test_board_of_the_main_site_carries_todays_kpis(world: World) -> None:
    a = world.a
    b = world.call("GET", f"/sites/{a.site_id}/board", a.app).json()
    summary = world.call("GET", f"/sites/{a.site_id}/kpi/summary", a.app).json()
    assert b["kpi_end"] == summary["end"]
    kpi = {r["machine"]: r for r in summary["machines"]}
    assert len(b["machines"]) == len(kpi) == 7
    for row in b["machines"]:
        assert row["oee"] == kpi[row["machine"]]["oee"]
        assert row["good"] == kpi[row["machine"]]["parts"]["good"]
        assert row["state"] != "unknown"
    thr = {r["line"]: r["throughput_per_h"] for r in summary["lines"]}
    assert {ln["line"]: ln["throughput_per_h"] for ln in b["lines"]} == thr
    assert any(ln["bottleneck"] for ln in b["lines"])


def test_board_figures_follow_the_clock_step_by_step(world: World) -> None:
    """The board froze (issue 18): its computation read ``end`` late, after the handler had
    rebound it to the stale step it answered with, so every new step computed the old one
    again. Asked a few times per step (it answers stale while computing), the board's
    figures must reach each step, and its range must start at the production day."""
    a = world.a
    now0 = world.clock.now
    step = 5_000_000
    try:
        for k in (3, 2, 1, 0):
            world.clock.now = now0 - k * 20 * MIN + 1_234_567
            want = world.clock.now - world.clock.now % step
            for _ in range(50):
                b = world.call("GET", f"/sites/{a.site_id}/board", a.app).json()
                if b["kpi_end"] == want:
                    break
            assert b["kpi_end"] == want, (k, b["kpi_end"], want)
            s = world.call("GET", f"/sites/{a.site_id}/kpi/summary", a.app).json()
            assert (b["kpi_start"], b["kpi_end"]) == (s["start"], s["end"])
            kpi = {r["machine"]: r for r in s["machines"]}
            assert all(r["good"] == kpi[r["machine"]]["parts"]["good"] for r in b["machines"])
    finally:
        world.clock.now = now0


def test_live_feed_sends_state_changes_and_alert_changes_on_the_next_tick(
    world: World, end: int
) -> None:
    site, m1, m2 = _down_site(world, end)
    svc = world.app.state.services
    ev = evaluator(world)
    world.run(ev.step_site, world.a.id, site.id)
    ticks: list[int] = []

    async def sleep(seconds: float) -> None:
        """Between the first and second tick, m2 runs again (ingested, so published on the
        live bus the feed listens to) and an alert pass runs; the clock moves by the
        interval."""
        ticks.append(world.clock.now)
        if len(ticks) == 1:
            batch = StateBatch.build([m2], [0], [end], [end + 500_000], [RUN])
            assert await svc.ingestor.states(world.a.id, batch) == 1
            world.clock.now += int(seconds * S)
            await ev.step_site(world.a.id, site.id)
        else:
            world.clock.now += int(seconds * S)

    saved_sleep, saved_now = svc.sleep, world.clock.now
    svc.sleep = sleep
    try:
        r = world.call("GET", f"/sites/{site.id}/live", world.a.app, interval_s=1, max_ticks=3)
    finally:
        svc.sleep, world.clock.now = saved_sleep, saved_now
    assert r.status_code == 200
    events = sse_events(r.text)
    assert [e for e, _ in events] == ["values", "states", "alerts", "states", "alerts", "end"]
    first_states = {x["machine"]: (x["state"], x["since"]) for x in events[1][1]}
    assert set(first_states) == set(site.machines)
    assert first_states[m2] == ("down", end - 20 * MIN)
    assert {(a["machine"], a["kind"]) for a in events[2][1]} == set(_alerts(world, site, "all"))
    # second tick, one interval later: only m2's new state, only the alert that closed
    assert events[3][1] == [{"machine": m2, "state": "running", "since": end}]
    changed = events[4][1]
    assert [(a["machine"], a["kind"]) for a in changed] == [(m2, "down")]
    assert changed[0]["closed_at"] == end + S
    assert m1 in first_states


def test_alert_changes_of_the_app_reach_its_live_bus(world: World, end: int) -> None:
    """The app's own evaluator and an acknowledgement through the API publish on the
    services' bus, on the site's alerts topic (its plant key)."""
    site = new_site(world, "alertbus")
    key = site.machines[0].partition("/")[0]
    bus = world.app.state.services.bus
    cm = bus.subscribe(world.a.id, alerts_topic(key))
    sub = world.run(cm.__aenter__)

    def events(n: int) -> list[AlertChanged]:
        got: list[AlertChanged] = []
        for _ in range(n):
            m = world.run(sub.next, 10.0)
            assert m is not None, f"only {len(got)} of {n} alert events within 10 s"
            assert isinstance(m.payload, AlertChanged), m
            got.append(m.payload)
        return got

    try:
        # nothing ever heard from the new site's machines: an offline alert each
        assert world.run(evaluator(world).step_site, world.a.id, site.id) == len(site.machines)
        opened = events(len(site.machines))
        assert {(e.machine, e.status) for e in opened} == {(m, "opened") for m in site.machines}
        _, operator = world.user(world.a.id, [(Role.OPERATOR, site.id)])
        first = opened[0]
        r = world.call("POST", f"/sites/{site.id}/alerts/{first.alert_id}/ack", operator)
        assert r.status_code == 200, r.text
        (acked,) = events(1)
        assert (acked.alert_id, acked.status, acked.ts) == (
            first.alert_id,
            "acknowledged",
            world.clock.now,
        )
    finally:
        world.run(cm.__aexit__, None, None, None)

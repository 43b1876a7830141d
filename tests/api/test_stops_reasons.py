"""Reason entry that operators can trust (issue 18, item 5): the operator's reason wins over
the machine's code in the Pareto (and stays audited), a machine is offered only its own
failure modes besides the generic tree, and the stop list filters by kind and leaves out
micro-stops that never need a reason."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from andon.model.types import MachineState
from andon.platform import Role
from tests.api.floor import admin_headers, audit_rows, ingest_states, new_site
from tests.api.world import World

S = 1_000_000
MIN = 60 * S
RUN, DOWN = int(MachineState.RUNNING), int(MachineState.DOWN)
STARVED, BLOCKED = int(MachineState.STARVED), int(MachineState.BLOCKED)
PLANNED = int(MachineState.PLANNED_STOP)


@pytest.fixture
def end(world: World) -> Iterator[int]:
    """The test's clock, eight hours after the shared world's data (out of others' ranges)."""
    saved = world.clock.now
    world.clock.now = t = world.end + 8 * 3600 * S
    try:
        yield t
    finally:
        world.clock.now = saved


def _pareto(w: World, site: str, start: int, end: int) -> dict[tuple[str, str], float]:
    r = w.call("GET", f"/sites/{site}/kpi/downtime", w.a.app, start=start, end=end)
    assert r.status_code == 200, r.text
    return {(x["category"], x["reason"]): x["seconds"] for x in r.json()["rows"]}


def test_the_operators_reason_wins_over_the_machine_code_in_the_pareto(
    world: World, end: int
) -> None:
    s = new_site(world, "rs")
    site, m = s.id, s.by_id
    fsw = m["FSW-01"]
    t0 = end - 60 * MIN
    ingest_states(
        world,
        site,
        [
            (fsw, t0, t0 + 10 * MIN, RUN, ""),
            (fsw, t0 + 10 * MIN, t0 + 20 * MIN, DOWN, "PIN_BREAK"),
            (fsw, t0 + 20 * MIN, end, RUN, ""),
        ],
    )
    assert _pareto(world, site, t0, end) == {("equipment", "PIN_BREAK"): 600.0}
    _, operator = world.user(world.a.id, [(Role.OPERATOR, site)])
    body = {"machine": fsw, "start": t0 + 10 * MIN, "category": "equipment"}
    r = world.call(
        "POST", f"/sites/{site}/stops/reason", operator, body | {"reason": "CLAMP_FAULT"}
    )
    assert r.status_code == 200, r.text
    assert (r.json()["code"], r.json()["reason"]) == ("PIN_BREAK", "CLAMP_FAULT")
    # the machine said "pin broken"; the person at the machine knows it was the clamp
    assert _pareto(world, site, t0, end) == {("equipment", "CLAMP_FAULT"): 600.0}
    stops = world.call("GET", f"/sites/{site}/stops", world.a.app, start=t0, end=end).json()
    got = next(s for s in stops["stops"] if s["start"] == t0 + 10 * MIN)
    assert (got["code"], got["reason"]) == ("PIN_BREAK", "CLAMP_FAULT")
    mine = [
        a for a in audit_rows(world, "stops.reason") if a["object"] == f"stop:{fsw}@{t0 + 10 * MIN}"
    ]
    assert len(mine) == 1 and mine[0]["detail"]["after"]["reason"] == "CLAMP_FAULT"


def test_a_machine_is_offered_its_own_failure_modes_and_the_generic_tree_only(
    world: World, end: int
) -> None:
    s = new_site(world, "rs")
    site, m = s.id, s.by_id
    r = world.call("GET", f"/sites/{site}/reasons/tree", world.a.app)
    assert r.status_code == 200, r.text
    reasons = {x["id"]: x for c in r.json()["categories"] for x in c["reasons"]}
    assert reasons["PIN_BREAK"]["machines"] == [m["FSW-01"]]
    assert reasons["GRIPPER_FAULT"]["machines"] == [m["RB-01"]]
    assert reasons["mechanical"]["machines"] is None  # generic: every machine
    robot = m["RB-01"]
    t0 = end - 30 * MIN
    ingest_states(
        world, site, [(robot, t0, t0 + 5 * MIN, DOWN, ""), (robot, t0 + 5 * MIN, end, RUN, "")]
    )
    url = f"/sites/{site}/stops/reason"
    body = {"machine": robot, "start": t0, "category": "equipment", "reason": "PIN_BREAK"}
    r = world.call("POST", url, admin_headers(world), body)
    assert r.status_code == 422, r.text
    d = r.json()["detail"][0]
    assert d["loc"] == ["body", "reason"] and m["FSW-01"] in d["msg"] and robot in d["msg"]
    assert world.call(
        "POST", url, admin_headers(world), body | {"reason": "GRIPPER_FAULT"}
    ).is_success
    assert world.call("POST", url, admin_headers(world), body | {"reason": "mechanical"}).is_success


def _stops(w: World, site: str, **q: Any) -> list[tuple[str, int, str]]:
    r = w.call("GET", f"/sites/{site}/stops", w.a.app, **q)
    assert r.status_code == 200, r.text
    return [(s["machine"], s["start"], s["state"]) for s in r.json()["stops"]]


def test_stops_filter_by_machine_and_kind_and_leave_out_micro_stops(world: World, end: int) -> None:
    s = new_site(world, "rs")
    site, m = s.id, s.by_id
    rb, fsw = m["RB-01"], m["FSW-01"]
    t0 = end - 60 * MIN
    rows = [
        (rb, t0, t0 + 30 * S, STARVED, ""),  # micro
        (rb, t0 + 30 * S, t0 + 3 * MIN, BLOCKED, ""),
        (rb, t0 + 3 * MIN, t0 + 3 * MIN + 20 * S, DOWN, ""),  # micro (< 60 s)
        (rb, t0 + 4 * MIN, t0 + 9 * MIN, DOWN, ""),
        (rb, t0 + 10 * MIN, t0 + 20 * MIN, PLANNED, "break"),
        (rb, t0 + 20 * MIN, end - 5 * MIN, RUN, ""),
        (rb, end - 5 * MIN, end, DOWN, ""),  # still going on at the range's end
        (fsw, t0, t0 + 5 * MIN, DOWN, "CLAMP_FAULT"),
        (fsw, t0 + 5 * MIN, end, RUN, ""),
    ]
    gaps = [(rb, t0 + 3 * MIN + 20 * S, t0 + 4 * MIN, RUN, ""),
            (rb, t0 + 9 * MIN, t0 + 10 * MIN, RUN, "")]  # fmt: skip
    ingest_states(world, site, rows + gaps)
    rng = {"start": t0, "end": end}
    everything = _stops(world, site, **rng)
    assert len(everything) == 7  # the default stays every stop
    need = _stops(world, site, kind="down", micro=False, **rng)
    assert need == [(fsw, t0, "down"), (rb, t0 + 4 * MIN, "down"), (rb, end - 5 * MIN, "down")]
    assert _stops(world, site, kind="down", micro=False, machine=rb, **rng) == need[1:]
    assert _stops(world, site, kind="idle", machine=rb, **rng) == [
        (rb, t0, "starved"),
        (rb, t0 + 30 * S, "blocked"),
    ]
    assert _stops(world, site, kind="idle", micro=False, **rng) == [(rb, t0 + 30 * S, "blocked")]
    assert _stops(world, site, kind="planned", **rng) == [(rb, t0 + 10 * MIN, "planned_stop")]
    r = world.call("GET", f"/sites/{site}/stops", world.a.app, kind="weird", **rng)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "kind"]

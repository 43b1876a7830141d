"""Reason entry that operators can trust (issue 18, item 5): the operator's reason wins over
the machine's code in the Pareto (and stays audited), a machine is offered only its own
failure modes besides the generic tree, and the stop list filters by kind and leaves out
micro-stops that never need a reason."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from andon.model.loader import parse_plant
from andon.model.types import MachineState
from andon.platform import Role
from tests.api.world import World, site_yaml

S = 1_000_000
MIN = 60 * S
RUN, DOWN = int(MachineState.RUNNING), int(MachineState.DOWN)
STARVED, BLOCKED = int(MachineState.STARVED), int(MachineState.BLOCKED)
PLANNED = int(MachineState.PLANNED_STOP)


def _admin(w: World) -> dict[str, str]:
    return w.login(f"admin@{w.a.id}.example")


def _site(w: World) -> tuple[str, dict[str, str]]:
    """A new site of tenant A (the demo plant): its id and machine paths by machine id."""
    yaml = site_yaml(w.unique("rs"))
    r = w.call("POST", "/sites", _admin(w), {"model_yaml": yaml})
    assert r.status_code == 201, r.text
    plant = parse_plant(yaml)
    return r.json()["id"], {m.id: plant.machine_path(a, ln, m) for a, ln, m in plant.machines()}


def _ingest(w: World, site: str, rows: list[tuple[str, int, int, int, str]]) -> None:
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
    r = w.call("POST", f"/sites/{site}/ingest", w.a.edge, body)
    assert r.status_code == 200, r.text


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
    site, m = _site(world)
    fsw = m["FSW-01"]
    t0 = end - 60 * MIN
    _ingest(
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
    audit = world.call("GET", "/audit", _admin(world), action="stops.reason", limit=1000).json()
    mine = [a for a in audit if a["object"] == f"stop:{fsw}@{t0 + 10 * MIN}"]
    assert len(mine) == 1 and mine[0]["detail"]["after"]["reason"] == "CLAMP_FAULT"


def test_a_machine_is_offered_its_own_failure_modes_and_the_generic_tree_only(
    world: World, end: int
) -> None:
    site, m = _site(world)
    r = world.call("GET", f"/sites/{site}/reasons/tree", world.a.app)
    assert r.status_code == 200, r.text
    reasons = {x["id"]: x for c in r.json()["categories"] for x in c["reasons"]}
    assert reasons["PIN_BREAK"]["machines"] == [m["FSW-01"]]
    assert reasons["GRIPPER_FAULT"]["machines"] == [m["RB-01"]]
    assert reasons["mechanical"]["machines"] is None  # generic: every machine
    robot = m["RB-01"]
    t0 = end - 30 * MIN
    _ingest(world, site, [(robot, t0, t0 + 5 * MIN, DOWN, ""), (robot, t0 + 5 * MIN, end, RUN, "")])
    url = f"/sites/{site}/stops/reason"
    body = {"machine": robot, "start": t0, "category": "equipment", "reason": "PIN_BREAK"}
    r = world.call("POST", url, _admin(world), body)
    assert r.status_code == 422, r.text
    d = r.json()["detail"][0]
    assert d["loc"] == ["body", "reason"] and m["FSW-01"] in d["msg"] and robot in d["msg"]
    assert world.call("POST", url, _admin(world), body | {"reason": "GRIPPER_FAULT"}).is_success
    assert world.call("POST", url, _admin(world), body | {"reason": "mechanical"}).is_success


def _stops(w: World, site: str, **q: Any) -> list[tuple[str, int, str]]:
    r = w.call("GET", f"/sites/{site}/stops", w.a.app, **q)
    assert r.status_code == 200, r.text
    return [(s["machine"], s["start"], s["state"]) for s in r.json()["stops"]]


def test_stops_filter_by_machine_and_kind_and_leave_out_micro_stops(world: World, end: int) -> None:
    site, m = _site(world)
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
    _ingest(world, site, rows + gaps)
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

"""Reason trees per machine and the operator's word over the machine's code (issue 18, item
5), in the KPI layer that the API, the dashboard and ``andon kpi`` share."""

from __future__ import annotations

from importlib.resources import files

import pytest

from andon.kpi.reasons import ReasonEntry, ReasonTree, apply_entries, downtime
from andon.model.loader import parse_plant
from andon.model.types import MachineState, StateBatch

DOWN, RUN = int(MachineState.DOWN), int(MachineState.RUNNING)


def _tree() -> tuple[ReasonTree, dict[str, str]]:
    plant = parse_plant((files("andon.sim") / "plants" / "demo.yaml").read_text(encoding="utf-8"))
    paths = {m.id: plant.machine_path(a, ln, m) for a, ln, m in plant.machines()}
    return ReasonTree.default().with_failure_modes(plant), paths


def test_each_failure_mode_is_offered_on_the_machines_that_have_it_only() -> None:
    tree, p = _tree()
    robot = tree.offered(p["RB-01"])
    assert {"GRIPPER_FAULT", "SERVO_ALARM"} <= set(robot["equipment"])
    assert not {"PIN_BREAK", "CLAMP_FAULT", "SPINDLE_OVERLOAD"} & set(robot["equipment"])
    assert robot["planned"] == tree.categories["planned"]  # the generic tree, whole
    # MC-02 inherits MC-01's modes in the demo file (a YAML merge): both machines have them
    assert tree.scope["TOOL_BREAK"] == frozenset({p["MC-01"], p["MC-02"]})
    assert tree.fits("mechanical", p["RB-01"]) and not tree.fits("PIN_BREAK", p["RB-01"])
    assert tree.with_codes({"E1": "jam"}).scope == tree.scope  # more codes keep the scope
    with pytest.raises(ValueError, match="scope names unknown reason 'nope'"):
        ReasonTree(tree.categories, {}, {"nope": frozenset()})


def test_the_latest_operator_entry_replaces_the_machine_code_in_the_pareto() -> None:
    tree, _ = _tree()
    m = "m"
    # a coded stop stored in two touching pieces, then an uncoded one
    st = StateBatch.build(
        [m], [0] * 5, [0, 60, 90, 120, 180], [60, 90, 120, 180, 240],
        [RUN, DOWN, DOWN, RUN, DOWN], ["", "PIN_BREAK", "PIN_BREAK", "", ""],
    )  # fmt: skip
    before = downtime(st, tree)
    assert {(r["category"], r["reason"]) for r in before["pareto"]} == {
        ("equipment", "PIN_BREAK"),
        ("unexplained", ""),
    }
    entries = [
        ReasonEntry(m, 60, "mechanical", "user:a", 100),
        ReasonEntry(m, 60, "CLAMP_FAULT", "user:b", 200),  # the later entry wins
    ]
    filled, acked = apply_entries(st, entries)
    after = downtime(filled, tree)
    rows = {(r["category"], r["reason"]): r["duration_s"] for r in after["pareto"]}
    assert rows == {("equipment", "CLAMP_FAULT"): 60e-6, ("unexplained", ""): 60e-6}
    assert acked == {(m, 60): 100}  # the first entry is the acknowledgement

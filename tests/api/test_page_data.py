"""What the dashboard's pages need from the API to show plant data as people read it: the
machine page's signal names and units and its loss waterfall (issue 18, items 6 and the
machine loss breakdown), and the plant model's names in other languages on the board and the
reason tree (item 9)."""

from __future__ import annotations

from typing import Any

import pytest

from andon.kpi import api as kpi
from andon.kpi.oee import LOSSES
from andon.model.loader import parse_plant
from andon.store.base import TelemetryStore
from tests.api.calls import MACHINE
from tests.api.world import World, demo_yaml


def _get(w: World, path: str, **q: Any) -> Any:
    r = w.call("GET", f"/sites/{w.a.site_id}{path}", w.a.app, **q)
    assert r.status_code == 200, r.text
    return r.json()


def test_machine_kpi_gives_signal_units_and_the_machines_loss_waterfall(world: World) -> None:
    w = world
    body = _get(w, "/machines/kpi", machine=MACHINE, start=w.start, end=w.end, bucket_s=1800)
    plant = parse_plant(demo_yaml()).model_copy(update={"tenant": w.a.id})
    machine = next(m for a, ln, m in plant.machines() if plant.machine_path(a, ln, m) == MACHINE)
    assert [s["signal"] for s in body["signals"]] == [f"{MACHINE}/{s.id}" for s in machine.signals]
    units = {s["signal"].rsplit("/", 1)[1]: s["unit"] for s in body["signals"]}
    assert units["spindle_speed"] == "rpm" and units["coolant_temp"] == "°C"
    assert units["vibration"] == "mm/s" and units["power"] == "kW"

    steps = {s["loss"]: s["seconds"] for s in body["waterfall"]}
    assert [*steps] == ["planned_busy", *(k.removesuffix("_s") for k in LOSSES), "fully_productive"]
    store: TelemetryStore = w.app.state.services.store
    sel = kpi.Selection((MACHINE,))
    table = w.run(lambda: kpi.oee(store, plant, w.start, w.end, selection=sel))
    direct = dict(table.group(lambda m, b, p: (m, "", "")).waterfall(0))
    for k, v in steps.items():
        assert v == pytest.approx(direct[f"{k}_s"], abs=1e-3), k
    assert sum(v for k, v in steps.items() if k != "planned_busy") == pytest.approx(
        steps["planned_busy"], rel=1e-6
    )


def test_board_and_reason_tree_carry_the_models_names_in_other_languages(world: World) -> None:
    board = _get(world, "/board")
    mc1 = next(m for m in board["machines"] if m["machine"].endswith("/MC-01"))
    assert mc1["name"] == "Machining centre 1" and mc1["name_i18n"] == {"zh-TW": "加工中心 1"}
    l1 = next(x for x in board["lines"] if x["line"].endswith("/L1"))
    assert l1["name_i18n"] == {"zh-TW": "CNC 加工線"}
    tree = _get(world, "/reasons/tree")["categories"]
    reasons = {r["id"]: r for c in tree for r in c["reasons"]}
    assert reasons["PIN_BREAK"]["label"] == "FSW pin broken"
    assert reasons["PIN_BREAK"]["label_i18n"] == {"zh-TW": "FSW 攪拌針斷裂"}
    assert reasons["mechanical"]["label_i18n"] == {}  # built in: the dashboard translates it

"""The board, /kpi/summary, the line page and the energy page give the same figure for the
same range (issue 18 items 1, 7, 8), over the API on two hours of the demo plant (Monday
06:00-08:00 in Taipei, the clock at 08:00)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from andon.model.loader import parse_plant
from andon.model.types import to_micros
from andon.twin.jobs import add_planned_rates, find_line
from tests.api.world import World, demo_yaml

TZ = ZoneInfo("Asia/Taipei")
OUTPUTS = {"tc1/machining/L1/IP-01", "tc1/joining/L2/FSW-01", "tc1/cleanroom/L3/PC-01"}


def _get(w: World, path: str, **q: Any) -> dict[str, Any]:
    r = w.call("GET", f"/sites/{w.a.site_id}{path}", w.a.app, **q)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def test_today_starts_at_the_first_shift_not_midnight(world: World) -> None:
    w = world
    body = _get(w, "/kpi/summary")
    assert body["start"] == w.start  # Monday 06:00, the day shift's start
    tue_5 = to_micros(datetime(2026, 1, 6, 5, 0, tzinfo=TZ))
    early = _get(w, "/kpi/summary", end=tue_5)  # before Tuesday's first shift
    assert (early["start"], early["end"]) == (w.start, tue_5)
    shift = _get(w, "/kpi/summary", end=tue_5, range="shift")  # Monday's evening shift
    mon_14, mon_22 = w.start + 8 * 3600 * 10**6, w.start + 16 * 3600 * 10**6
    assert (shift["start"], shift["end"]) == (mon_14, mon_22)
    r = _get(w, "/kpi/ranges", at=tue_5)
    assert r["today"] == {"start": w.start, "end": tue_5, "label": "2026-01-05"}
    assert r["shift"] == {"start": mon_14, "end": mon_22, "label": "2026-01-05 evening"}
    assert _get(w, "/kpi/ranges")["at"] == w.clock.now
    bad = w.call("GET", f"/sites/{w.a.site_id}/kpi/summary", w.a.app, range="week")
    assert bad.status_code == 422 and "range" in bad.text


def test_board_summary_and_line_page_give_one_rate(world: World) -> None:
    w = world
    board = _get(w, "/board")
    summary = _get(w, "/kpi/summary")
    assert summary["end"] == board["kpi_end"]
    rates = {ln["line"]: ln for ln in summary["lines"]}
    assert {ln["line"]: ln["throughput_per_h"] for ln in board["lines"]} == {
        k: v["throughput_per_h"] for k, v in rates.items()
    }
    for ln in board["lines"]:
        page = _get(w, "/lines/kpi", line=ln["line"], start=summary["start"], end=summary["end"])
        assert page["throughput_per_h"] == ln["throughput_per_h"]
        assert page["good_out"] == rates[ln["line"]]["good_out"]
        # 06:00-08:00 Monday: two hours of the day shift, no break yet
        assert page["planned_production_s"] == 7200.0
        assert page["throughput_per_h"] == pytest.approx(page["good_out"] / 2.0, abs=1e-6)
    good = {m["machine"]: m["parts"]["good"] for m in summary["machines"]}
    assert rates["tc1/machining/L1"]["good_out"] == good["tc1/machining/L1/IP-01"]


def test_summary_kwh_equals_the_energy_page(world: World) -> None:
    w = world
    a, b = w.start + 12_345_678, w.end - 7_654_321  # ends between the registers' samples
    summary = _get(w, "/kpi/summary", start=a, end=b)
    page = _get(w, "/energy", start=a, end=b)
    assert {m["machine"]: (m["kwh"], m["kwh_per_good_part"]) for m in summary["machines"]} == {
        m["machine"]: (m["kwh"], m["kwh_per_part"]) for m in page["by_machine"]
    }
    assert [m["kwh"] for m in summary["meters"]] == [page["total"]["site_kwh"]]


def test_energy_total_months_cost_and_kwh_per_part_agree(world: World) -> None:
    w = world
    e = _get(w, "/energy", start=w.start, end=w.end)
    tot = e["total"]
    assert tot["basis"] == "meters" and tot["kwh"] == tot["site_kwh"]
    assert tot["site_kwh"] > tot["machines_kwh"] > 0  # the main meter has the base load
    assert tot["machines_kwh"] == pytest.approx(sum(m["kwh"] for m in e["by_machine"]))
    # the month bar and the headline count the same energy
    assert sum(m["kwh"] for m in e["months"]) == pytest.approx(tot["kwh"], abs=1e-3)
    assert sum(m["tco2e"] for m in e["months"]) == pytest.approx(tot["tco2e"], rel=1e-6)
    # per part leaving the lines, not per part of every station in series
    out = sum(m["parts"] for m in e["by_machine"] if m["machine"] in OUTPUTS)
    assert tot["good_out"] == out < sum(m["parts"] for m in e["by_machine"])
    assert tot["kwh_per_part"] == pytest.approx(tot["kwh"] / out, abs=1e-6)
    # the demo's tariff: Monday 06:00-08:00 is off-peak (half-peak starts at 09:00)
    assert tot["currency"] == "TWD"
    assert [c["period"] for c in tot["cost_by_period"]] == ["off_peak"]
    assert tot["cost"] == pytest.approx(tot["kwh"] * 2.45, abs=0.01)


def test_twin_page_rates_are_per_planned_production_hour(world: World) -> None:
    w = world
    board = {ln["line"]: ln["throughput_per_h"] for ln in _get(w, "/board")["lines"]}
    sc = _get(w, "/twin/scenario", line="tc1/machining/L1")
    assert sc["measured"]["throughput_per_h"] == board["tc1/machining/L1"]
    assert sc["measured"]["start"] == w.start
    # a simulated day from Monday 00:00: 16 h of shifts less 1.25 h of breaks are planned
    plant = parse_plant(demo_yaml())
    ref = find_line(plant, "tc1/machining/L1")
    one_shift = plant.model_copy(deep=True)
    doc = one_shift.model_dump(by_alias=True, mode="json")
    doc["site"]["calendar"]["shifts"] = doc["site"]["calendar"]["shifts"][:1]
    scen = type(plant).model_validate(doc)
    res: dict[str, Any] = {
        "today": {"throughput_per_h": 10.0},
        "scenario": {"throughput_per_h": 6.0},
    }
    add_planned_rates(res, plant, scen, ref, 24.0)
    assert res["today"]["planned_h"] == 14.75
    assert res["today"]["per_planned_h"] == pytest.approx(10.0 * 24 / 14.75, abs=1e-6)
    # the day shift alone: 8 h less the tea and lunch breaks
    assert res["scenario"]["planned_h"] == 7.25
    assert res["scenario"]["per_planned_h"] == pytest.approx(6.0 * 24 / 7.25, abs=1e-6)


def test_a_range_ending_in_the_future_plans_only_up_to_now(world: World) -> None:
    w = world
    later = _get(w, "/kpi/summary", start=w.start, end=w.end + 3 * 3600 * 10**6)
    now = _get(w, "/kpi/summary", start=w.start, end=w.end)
    assert w.clock.now == w.end
    for a, b in zip(later["lines"], now["lines"], strict=True):
        assert a["planned_production_s"] == b["planned_production_s"] == 7200.0
        assert a["throughput_per_h"] == b["throughput_per_h"]
    assert [m["oee"] for m in later["machines"]] == [m["oee"] for m in now["machines"]]


def test_ranges_the_calendar_cannot_place_are_refused(world: World) -> None:
    w = world
    far = 2**62 - 1
    for path, q in (
        ("/kpi/ranges", {"at": far}),
        ("/kpi/summary", {"end": far}),
        ("/kpi/summary", {"start": 0, "end": w.end}),  # 56 years: longer than a quarter
    ):
        r = w.call("GET", f"/sites/{w.a.site_id}{path}", w.a.app, **q)
        assert r.status_code == 422, (path, r.text)
    assert "1970 to 9998" in w.call("GET", f"/sites/{w.a.site_id}/kpi/ranges", w.a.app, at=far).text

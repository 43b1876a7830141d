"""One source for every figure a page shows (issue 18 items 1, 7, 8): the production day and
shift ranges of the calendar, output per planned production hour, the board's kWh equal to
the energy page's, kWh per part over the line's output, tariff cost, all on a hand-made
two-station line whose figures are worked out by hand."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pytest
import yaml

from andon.kpi import api
from andon.kpi.ranges import named_range, planned_production_s, this_shift, today
from andon.kpi.summary import PartCounts, PlantSummary, line_rates, parts_of, plant_summary
from andon.model.loader import parse_plant
from andon.model.plant import Plant
from andon.model.types import PartBatch, SampleBatch, StateBatch, to_micros
from andon.store.duckdb_store import DuckDBStore

S = 1_000_000
ZONE = "Asia/Taipei"
TZ = ZoneInfo(ZONE)
WEEKDAYS = ["mon", "tue", "wed", "thu", "fri", "sat"]


def at(day: int, h: int, m: int = 0, s: int = 0) -> int:
    """µs of 2026-03-<day> h:m:s in Taipei (2026-03-02 is a Monday)."""
    return to_micros(datetime(2026, 3, day, h, m, s, tzinfo=TZ))


def _plant(calendar: dict[str, Any], tariff: dict[str, Any] | None = None) -> Plant:
    """m1 -> b -> m2, each with an energy register; a site meter with 5 kW base load."""
    energy = [{"id": "energy", "type": "energy", "sample_period_s": 60}]
    site: dict[str, Any] = {
        "id": "s",
        "timezone": ZONE,
        "calendar": calendar,
        "meters": [{"id": "main", "base_load_kw": 5.0, "signals": energy}],
        "areas": [
            {
                "id": "a",
                "lines": [
                    {
                        "id": "l",
                        "products": [{"id": "p"}],
                        "buffers": [{"id": "b", "capacity": 10, "from": ["m1"], "to": ["m2"]}],
                        "machines": [
                            {
                                "id": mid,
                                "type": "generic",
                                "ideal_cycle_s": {"p": 60.0},
                                "signals": energy,
                            }
                            for mid in ("m1", "m2")
                        ],
                    }
                ],
            }
        ],
    }
    if tariff is not None:
        site["tariff"] = tariff
    return parse_plant(yaml.safe_dump({"tenant": "t1", "site": site}), "<test>")


TWO_SHIFTS = {
    "shifts": [
        {"name": "day", "start": "06:00", "end": "14:00", "days": WEEKDAYS},
        {"name": "evening", "start": "14:00", "end": "22:00", "days": WEEKDAYS},
    ],
    "breaks": [{"name": "tea", "start": "10:00", "end": "10:15", "days": WEEKDAYS}],
}
WITH_NIGHT = {
    "shifts": [
        {"name": "day", "start": "06:00", "end": "14:00"},
        {"name": "evening", "start": "14:00", "end": "22:00"},
        {"name": "night", "start": "22:00", "end": "06:00"},
    ]
}
TARIFF = {
    "currency": "TWD",
    "base_price": 2.0,
    "periods": [{"name": "peak", "start": "08:00", "end": "09:00", "price": 5.0}],
}


# ---- ranges ------------------------------------------------------------------------------


def test_today_at_five_before_the_first_shift_is_the_previous_production_day() -> None:
    plant = _plant(TWO_SHIFTS)
    r = today(plant, at(3, 5))  # Tuesday 05:00: Monday's production day is still on
    assert (r.start, r.end, r.label) == (at(2, 6), at(3, 5), "2026-03-02")
    assert today(plant, at(3, 6)).start == at(3, 6)  # the day shift starts a new day
    assert today(plant, at(3, 23, 59)).start == at(3, 6)
    # a Sunday has no shift: it belongs to Saturday's production day
    assert today(plant, at(8, 12)).start == at(7, 6)


def test_today_after_midnight_in_a_night_shift_is_the_day_the_shift_started() -> None:
    plant = _plant(WITH_NIGHT)
    r = today(plant, at(4, 1, 30))  # Wednesday 01:30, in Tuesday's night shift
    assert (r.start, r.label) == (at(3, 6), "2026-03-03")
    s = this_shift(plant, at(4, 1, 30))
    assert (s.start, s.end, s.label) == (at(3, 22), at(4, 1, 30), "2026-03-03 night")


def test_this_shift_and_named_ranges() -> None:
    plant = _plant(TWO_SHIFTS)
    s = this_shift(plant, at(3, 15))
    assert (s.start, s.end, s.label) == (at(3, 14), at(3, 15), "2026-03-03 evening")
    # after the last shift: the shift that ended last, up to its end
    late = this_shift(plant, at(3, 23))
    assert (late.start, late.end) == (at(3, 14), at(3, 22))
    assert named_range(plant, "shift", at(3, 15)) == s
    assert named_range(plant, "today", at(3, 15)) == today(plant, at(3, 15))
    with pytest.raises(ValueError, match="range: unknown range 'week'"):
        named_range(plant, "week", at(3, 15))  # type: ignore[arg-type]


def test_midnight_when_no_shift_started_in_the_last_week() -> None:
    plant = _plant({"shifts": [{"name": "x", "start": "06:00", "end": "14:00", "days": []}]})
    assert today(plant, at(3, 5)).start == at(3, 0)


def test_planned_production_time_is_shifts_less_breaks_and_maintenance() -> None:
    plant = _plant(TWO_SHIFTS)
    # 05:00-11:00: 06:00-11:00 in the day shift less the 15-minute tea break
    assert planned_production_s(plant, ["s/a/l/m2"], at(3, 5), at(3, 11)) == 4.75 * 3600
    # a whole weekday: 16 h less the break; Sunday: nothing
    assert planned_production_s(plant, ["s/a/l/m2"], at(3, 0), at(4, 0)) == 15.75 * 3600
    assert planned_production_s(plant, ["s/a/l/m2"], at(8, 0), at(9, 0)) == 0.0
    cal = {
        **TWO_SHIFTS,
        "maintenance": [{"machines": ["m2"], "day": "tue", "start": "07:00", "duration_min": 30}],
    }
    m = _plant(cal)
    assert planned_production_s(m, ["s/a/l/m2"], at(3, 6), at(3, 8)) == 1.5 * 3600
    # united over the machines: m1 is scheduled while m2 is in maintenance
    assert planned_production_s(m, ["s/a/l/m1", "s/a/l/m2"], at(3, 6), at(3, 8)) == 2 * 3600


def test_line_rate_is_output_of_the_last_station_per_planned_hour() -> None:
    plant = _plant(TWO_SHIFTS)
    good = {"s/a/l/m1": 100, "s/a/l/m2": 98}
    (r,) = line_rates(plant, good, at(3, 0), at(3, 11))
    # 98 parts left m2 (not 198 over both stations) in 4.75 planned hours (not 11 wall hours)
    assert r == {
        "line": "s/a/l",
        "good_out": 98,
        "planned_production_s": 4.75 * 3600,
        "throughput_per_h": round(98 / 4.75, 6),
    }
    (later,) = line_rates(plant, good, at(3, 0), at(3, 23), now=at(3, 11))
    assert later["planned_production_s"] == 4.75 * 3600  # time still to come is not planned
    (sunday,) = line_rates(plant, good, at(8, 0), at(8, 12))
    assert sunday["throughput_per_h"] is None


# ---- figures from a store ----------------------------------------------------------------

T0, T1 = at(3, 6), at(3, 9)
"""Tuesday 06:00-09:00: both machines run; the range of the figures is cut off the minute."""
A, B = at(3, 5, 30, 30), at(3, 8, 45, 30)


def _samples() -> SampleBatch:
    """Registers every 60 s from 05:00 to 10:00: m1 12 kW, m2 8 kW from 06:00 to 09:00 and
    1 kW otherwise; the site meter the sum plus 5 kW, wrapping at 100 000 kWh."""
    ts = np.arange(at(3, 5), at(3, 10) + 1, 60 * S, dtype=np.int64)
    on = (ts[:-1] >= T0) & (ts[:-1] < T1)
    out = []
    for kw_on in (12.0, 8.0):
        kw = np.where(on, kw_on, 1.0)
        out.append(np.concatenate(([100.0], 100.0 + np.cumsum(kw / 60))))
    out.append(
        out[0]
        + out[1]
        - 200.0
        + 99_950.0
        + np.concatenate(([0.0], np.cumsum(np.full(len(ts) - 1, 5.0 / 60))))
    )
    n = len(ts)
    return SampleBatch.build(
        ["s/a/l/m1/energy", "s/a/l/m2/energy", "s/main/energy"],
        np.repeat([0, 1, 2], n),
        np.tile(ts, 3),
        np.concatenate(out),
    )


def _fill(path: Path, plant: Plant) -> None:
    async def go() -> None:
        store = DuckDBStore.open(path)
        try:
            st = StateBatch.build(
                ["s/a/l/m1", "s/a/l/m2"], [0, 1], [T0, T0], [T1, T1], [0, 0], ["", ""]
            )
            await store.append_states(plant.tenant, st)
            p1 = [T0 + (k + 1) * 100 * S for k in range(100)]
            p2 = [T0 + (k + 1) * 100 * S + 50 * S for k in range(100)]
            parts = PartBatch.build(
                ["s/a/l/m1", "s/a/l/m2"],
                [0] * 100 + [1] * 100,
                p1 + p2,
                ["p"] * 200,
                [1] * 100 + [1] * 98 + [0] * 2,
                [0] * 100 + [0] * 98 + [1] * 2,
            )
            await store.append_parts(plant.tenant, parts)
            await store.append(plant.tenant, _samples())
        finally:
            await store.close()

    asyncio.run(go())


def _on_store(path: Path, fn: Any) -> Any:
    async def go() -> Any:
        store = DuckDBStore.open(path)
        try:
            return await fn(store)
        finally:
            await store.close()

    return asyncio.run(go())


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("figures") / "t.duckdb"
    _fill(path, _plant(TWO_SHIFTS, TARIFF))
    return path


def test_board_kwh_equals_the_energy_page_exactly(store_path: Path) -> None:
    plant = _plant(TWO_SHIFTS, TARIFF)

    async def both(store: Any) -> tuple[PlantSummary, api.EnergyReport]:
        return await plant_summary(store, plant, A, B), await api.energy_report(store, plant, A, B)

    summary, energy = _on_store(store_path, both)
    board = {m.machine: (m.kwh, m.kwh_per_good_part) for m in summary.machines}
    page = {m.machine: (m.kwh, m.kwh_per_good_part) for m in energy.machines}
    assert board == page
    assert [m.kwh for m in summary.meters] == [m.kwh for m in energy.meters]
    # the range's ends fall between samples: interpolated at the ends, as on the energy page;
    # the register's delta over the samples inside the range (05:31-08:45) is another number
    m1 = 12.0 * (2.75 + 30 / 3600) + 1.0 * 29.5 / 60
    assert board["s/a/l/m1"][0] == pytest.approx(m1, abs=1e-6)
    assert abs(board["s/a/l/m1"][0] - (12.0 * 2.75 + 29 / 60)) > 0.05


def test_kwh_per_part_divides_by_the_line_output_and_cost_is_priced(store_path: Path) -> None:
    plant = _plant(TWO_SHIFTS, TARIFF)
    rep = _on_store(store_path, lambda s: api.energy_report(s, plant, T0, T1))
    tot = rep.total.as_dict()
    # 06:00-09:00: m1 36 kWh, m2 24 kWh, base load 15 kWh on the site meter
    assert tot["basis"] == "meters"
    assert tot["machines_kwh"] == pytest.approx(60.0)
    assert tot["site_kwh"] == pytest.approx(75.0) and tot["kwh"] == tot["site_kwh"]
    # 98 good parts left the last station; m1's 100 are inside the line (not 198)
    assert tot["good_out"] == 98
    assert tot["kwh_per_part"] == pytest.approx(75.0 / 98, abs=1e-6)
    # 08:00-09:00 at the peak price: 25 kWh x 5 + 50 kWh x 2
    assert tot["cost"] == pytest.approx(225.0) and tot["currency"] == "TWD"
    assert tot["cost_by_period"]["peak"]["kwh"] == pytest.approx(25.0)
    # the months (energy_periods) count the same energy as the headline
    days = _on_store(store_path, lambda s: api.energy_periods(s, plant, T0, T1, period="day"))
    assert sum(d.kwh for d in days) == pytest.approx(tot["kwh"], abs=1e-6)
    assert [d.production for d in days] == [98]


def test_summary_throughput_is_output_per_planned_hour(store_path: Path) -> None:
    plant = _plant(TWO_SHIFTS, TARIFF)
    lo, hi = at(3, 5), at(3, 11)
    s = _on_store(store_path, lambda st: plant_summary(st, plant, lo, hi))
    (line,) = s.lines
    assert line.good_out == 98
    assert line.planned_production_s == 4.75 * 3600
    assert line.throughput_per_h == pytest.approx(98 / 4.75)  # not 98 / 6 wall hours
    oee = _on_store(store_path, lambda st: api.oee(st, plant, lo, hi))
    rows = {r["machine"]: r for r in oee.rows()}
    for m in s.machines:
        assert m.oee == (
            None if rows[m.machine]["oee"] is None else round(rows[m.machine]["oee"], 6)
        )
        assert (m.parts.good, m.parts.scrap) == parts_of(rows[m.machine])


def test_parts_finished_outside_planned_time_still_count(store_path: Path) -> None:
    # the same store under a calendar whose only shift ends at 08:00: the parts m2 finished
    # 08:00-09:00 are work outside planned time, in no OEE ratio, but still output
    short = {"shifts": [{"name": "early", "start": "06:00", "end": "08:00"}]}
    plant = _plant(short, TARIFF)
    s = _on_store(store_path, lambda st: plant_summary(st, plant, T0, T1))
    m2 = next(m for m in s.machines if m.machine == "s/a/l/m2")
    assert m2.parts == PartCounts(good=98, scrap=2)
    assert m2.kwh is not None
    assert m2.kwh_per_good_part == pytest.approx(m2.kwh / 98, abs=1e-6)
    (line,) = s.lines
    assert (line.good_out, line.planned_production_s) == (98, 7200.0)
    assert line.throughput_per_h == pytest.approx(49.0)


def test_a_part_finished_at_the_range_end_counts_once_everywhere(store_path: Path) -> None:
    # m1 finishes its 50th part at exactly 07:23:20, the range's end: the OEE table counts a
    # part where its work ended, (start, end], and so must the energy figures
    plant = _plant(TWO_SHIFTS, TARIFF)
    a, b = T0 + 150 * S, T0 + 50 * 100 * S

    async def both(store: Any) -> tuple[PlantSummary, api.EnergyReport, list[api.EnergyPeriod]]:
        return (
            await plant_summary(store, plant, a, b),
            await api.energy_report(store, plant, a, b),
            await api.energy_periods(store, plant, a, b, period="day"),
        )

    summary, energy, days = _on_store(store_path, both)
    board = {m.machine: m.parts.good for m in summary.machines}
    page = {m.machine: m.good_parts for m in energy.machines}
    assert board == page and board["s/a/l/m1"] == 49  # parts 2..50
    assert energy.total.good_out == summary.lines[0].good_out
    assert [d.production for d in days] == [summary.lines[0].good_out]

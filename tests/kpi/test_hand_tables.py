"""Hand-computed cases: each expected figure is worked out by hand in the comment beside it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from andon.kpi.energy import (
    Tariff,
    TouPeriod,
    counter_delta,
    cumulative_register,
    energy_by_state,
    peak_demand,
    tariff_cost,
)
from andon.kpi.oee import LOSSES, OEETable, oee_table
from andon.kpi.periods import buckets, days, shifts
from andon.kpi.reliability import reliability
from andon.kpi.timeline import Buckets, Plan, TimeModel
from andon.model.plant import Calendar
from andon.model.types import MachineState, PartBatch, StateBatch, to_micros

S = 1_000_000
H = 3600 * S
R, ST, BL, DN, PS, OFF = (int(s) for s in MachineState)
T0 = to_micros(datetime(2026, 1, 5, 0, 0, tzinfo=ZoneInfo("UTC")))  # a Monday


def timeline(*rows: tuple[float, float, int, str]) -> StateBatch:
    """One machine 'm'; rows of (start h, end h, state, reason) from T0."""
    return StateBatch.build(
        ["m"],
        [0] * len(rows),
        [T0 + round(a * H) for a, _, _, _ in rows],
        [T0 + round(b * H) for _, b, _, _ in rows],
        [s for _, _, s, _ in rows],
        [r for _, _, _, r in rows],
    )


def parts_at(
    times_h: list[float], product: str | list[str], scrap: frozenset[int] | set[int] = frozenset()
) -> PartBatch:
    prods = product if isinstance(product, list) else [product] * len(times_h)
    return PartBatch.build(
        ["m"],
        [0] * len(times_h),
        [T0 + round(t * H) for t in times_h],
        prods,
        [0 if i in scrap else 1 for i in range(len(times_h))],
        [1 if i in scrap else 0 for i in range(len(times_h))],
    )


def one_row(t: OEETable, **where: str) -> dict[str, float]:
    rows = [r for r in t.rows() if all(r[k] == v for k, v in where.items())]
    assert len(rows) == 1, rows
    return rows[0]


@dataclass(frozen=True)
class Case:
    name: str
    states: StateBatch
    parts: PartBatch
    ideal: dict[str, float]
    expect: dict[str, float]
    model: TimeModel = TimeModel(300.0, startup_parts=3)  # noqa: RUF009 - frozen, shared


# --- a shift with a planned break ------------------------------------------------------------
# 06:00-14:00 shift, 10:00-10:15 tea break, off shift otherwise; 450 parts of 60 s ideal,
# 10 of them scrap (not among the first three after a start-up: startup_parts=0 here).
_break = Case(
    "shift with a planned break",
    timeline(
        (0, 6, OFF, "not_scheduled"),
        (6, 10, R, ""),
        (10, 10.25, PS, "break"),
        (10.25, 14, R, ""),
        (14, 24, OFF, "not_scheduled"),
    ),
    parts_at([6 + (i + 1) * 0.017 for i in range(450)], "p", scrap=set(range(100, 110))),
    {"p": 60.0},
    {
        "calendar_s": 86_400.0,
        "not_scheduled_s": 16 * 3600.0,  # 00-06 and 14-24
        "planned_down_s": 900.0,  # the tea break
        "planned_busy_s": 27_900.0,  # 8 h - 15 min
        "running_s": 27_900.0,
        "availability": 1.0,
        "net_operating_s": 27_000.0,  # 450 x 60 s
        "performance": 27_000.0 / 27_900.0,
        "quality": 440.0 / 450.0,
        "oee": 26_400.0 / 27_900.0,  # 440 good x 60 s over PBT
        "speed_loss_s": 900.0,
        "production_reject_s": 600.0,  # 10 x 60 s
    },
    TimeModel(startup_parts=0),
)

# --- a changeover -------------------------------------------------------------------------------
# 1 h of p1 (50 parts x 60 s), 20 min changeover (setup: inside PBT), 40 min of p2 (55 x 40 s)
_changeover = Case(
    "changeover",
    timeline((0, 1, R, ""), (1, 4 / 3, PS, "changeover"), (4 / 3, 2, R, "")),
    parts_at(
        [i / 50 for i in range(1, 51)] + [4 / 3 + i * (2 / 3) / 56 for i in range(1, 56)],
        ["p1"] * 50 + ["p2"] * 55,
    ),
    {"p1": 60.0, "p2": 40.0},
    {
        "planned_busy_s": 7200.0,
        "setup_s": 1200.0,
        "running_s": 6000.0,
        "availability": 6000.0 / 7200.0,
        "net_operating_s": 3000.0 + 2200.0,
        "performance": 5200.0 / 6000.0,
        "quality": 1.0,
        "oee": 5200.0 / 7200.0,
    },
)

# --- micro-stops (threshold 5 min) -----------------------------------------------------------
# down 2 min and starved 3 min are minor stops; down 10 min is a breakdown; blocked 6 min is idle
_micro = Case(
    "micro-stops",
    timeline(
        (0, 1, R, ""),
        (1, 1 + 2 / 60, DN, "CHIP_JAM"),
        (1 + 2 / 60, 2, R, ""),
        (2, 2 + 3 / 60, ST, ""),
        (2 + 3 / 60, 3, R, ""),
        (3, 3 + 10 / 60, DN, "SPINDLE"),
        (3 + 10 / 60, 4, R, ""),
        (4, 4 + 6 / 60, BL, ""),
    ),
    parts_at([0.5, 1.5, 2.5, 3.5], "p"),
    {"p": 600.0},
    {
        "calendar_s": 4 * 3600.0 + 360.0,
        "planned_busy_s": 4 * 3600.0 + 360.0,
        "minor_stop_s": 120.0 + 180.0,
        "breakdown_s": 600.0,
        "idle_s": 360.0,
        "running_s": 4 * 3600.0 - 120.0 - 180.0 - 600.0,
        "net_operating_s": 2400.0,
    },
)

# --- scrap: start-up rejects after a changeover, production rejects later ---------------------
# parts 0-2 follow the changeover (start-up window of 3 parts): 0 and 2 are scrap; part 6 is scrap
_scrap = Case(
    "scrap",
    timeline((0, 0.5, PS, "changeover"), (0.5, 1.5, R, "")),
    parts_at([0.5 + (i + 0.5) / 10 for i in range(10)], "p", scrap={0, 2, 6}),
    {"p": 300.0},
    {
        "produced": 10.0,
        "good": 7.0,
        "scrap": 3.0,
        "startup_scrap": 2.0,
        "startup_reject_s": 600.0,
        "production_reject_s": 300.0,
        "fully_productive_s": 2100.0,
        "quality": 0.7,
        "planned_busy_s": 5400.0,
        "setup_s": 1800.0,
    },
    TimeModel(startup_parts=3),
)

CASES = [_break, _changeover, _micro, _scrap]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_hand_computed_oee(case: Case) -> None:
    t = oee_table(
        case.states,
        case.parts,
        {"m": case.ideal},
        Buckets.single(int(case.states.start.min()), int(case.states.end.max())),
        case.model,
    )
    row = one_row(t, machine="m")
    for key, want in case.expect.items():
        assert row[key] == pytest.approx(want, rel=1e-9, abs=1e-6), key
    waterfall = sum(row[k] for k in LOSSES) + row["fully_productive_s"]
    assert waterfall == pytest.approx(row["planned_busy_s"], abs=1e-6)


def test_changeover_time_goes_to_the_product_it_sets_up() -> None:
    c = _changeover
    t = oee_table(
        c.states, c.parts, {"m": c.ideal}, Buckets.single(T0, T0 + 2 * H), by_product=True
    )
    p1, p2 = one_row(t, product="p1"), one_row(t, product="p2")
    assert (p1["planned_busy_s"], p1["setup_s"], p1["net_operating_s"]) == (3600.0, 0.0, 3000.0)
    assert (p2["planned_busy_s"], p2["setup_s"], p2["net_operating_s"]) == (3600.0, 1200.0, 2200.0)


def test_breakdown_spanning_midnight_and_a_shift_boundary() -> None:
    # shifts 06-14, 14-22, 22-06 (UTC); down 21:00 Mon -> 01:00 Tue is one failure of 4 h:
    # 1 h in Monday's evening shift, 3 h in Monday's night shift; 3 h on Monday, 1 h on Tuesday
    cal = Calendar.model_validate(
        {
            "shifts": [
                {"name": "day", "start": "06:00", "end": "14:00"},
                {"name": "evening", "start": "14:00", "end": "22:00"},
                {"name": "night", "start": "22:00", "end": "06:00"},
            ]
        }
    )
    st = timeline((6, 21, R, ""), (21, 25, DN, "SPINDLE"), (25, 31, R, ""))
    pt = parts_at([10.0, 28.0], "p")
    start, end = T0 + 6 * H, T0 + 31 * H
    by_shift = oee_table(st, pt, {"m": {"p": 60.0}}, shifts(start, end, "UTC", cal))
    assert one_row(by_shift, bucket="2026-01-05 evening")["breakdown_s"] == 3600.0
    assert one_row(by_shift, bucket="2026-01-05 night")["breakdown_s"] == 3 * 3600.0
    assert one_row(by_shift, bucket="2026-01-06 day")["breakdown_s"] == 0.0
    by_day = oee_table(st, pt, {"m": {"p": 60.0}}, days(start, end, "UTC"))
    assert one_row(by_day, bucket="2026-01-05")["breakdown_s"] == 3 * 3600.0
    assert one_row(by_day, bucket="2026-01-06")["breakdown_s"] == 3600.0
    (row, by_reason) = reliability(st)
    assert (row.failures, row.down_s, row.mttr_s, row.mtbf_s) == (
        1,
        4 * 3600.0,
        4 * 3600.0,
        21 * 3600.0,
    )
    assert by_reason.reason == "SPINDLE"


def test_a_short_stop_cut_by_midnight_stays_one_short_stop() -> None:
    # down 23:57 -> 00:03 is 6 min: a breakdown at a 5-min threshold, though each day sees 3 min
    st = timeline((23, 23.95, R, ""), (23.95, 24.05, DN, "X"), (24.05, 25, R, ""))
    t = oee_table(
        st, PartBatch.empty(), {}, days(T0 + 23 * H, T0 + 25 * H, "UTC"), TimeModel(300.0)
    )
    assert [r["breakdown_s"] for r in t.rows()] == pytest.approx([180.0, 180.0])
    assert [r["minor_stop_s"] for r in t.rows()] == [0.0, 0.0]


def test_dst_days_are_as_long_as_the_wall_clock() -> None:
    # Europe/Berlin springs forward on Sun 2026-03-29 (23 h) and falls back on Sun 2026-10-25
    zone = ZoneInfo("Europe/Berlin")
    for day, hours in (((3, 28), 24), ((3, 29), 23), ((10, 25), 25)):
        a = to_micros(datetime(2026, *day, 0, 0, tzinfo=zone))
        b = days(a, a + 30 * H, "Europe/Berlin")
        assert (b.edges[1] - b.edges[0]) / H == hours
        st = StateBatch.build(["m"], [0], [a], [a + 30 * H], [R])
        t = oee_table(st, PartBatch.empty(), {}, b)
        assert t.rows()[0]["calendar_s"] == hours * 3600.0
    # a night shift 22:00-06:00 across the spring change is 7 h long
    cal = Calendar.model_validate({"shifts": [{"name": "night", "start": "22:00", "end": "06:00"}]})
    a = to_micros(datetime(2026, 3, 28, 12, 0, tzinfo=zone))
    b = shifts(a, a + 24 * H, "Europe/Berlin", cal)
    i = b.labels.index("2026-03-28 night")
    assert (b.edges[i + 1] - b.edges[i]) / H == 7


def test_meter_rollover_and_reset() -> None:
    # register wraps at 100 000 kWh: 99 990 -> 99 998 -> 5 -> 12 is 8 + 7 + 7 = 22 kWh
    assert counter_delta([99_990.0, 99_998.0, 5.0, 12.0], rollover=100_000.0) == 22.0
    # without a rollover value a drop is a reset to zero: 10 -> 12 -> (reset) 1 -> 3 is 2 + 1 + 2
    assert counter_delta([10.0, 12.0, 1.0, 3.0]) == 5.0
    # energy by state across the wrap: readings every 10 min, running for the first 20 min
    ts = np.array([T0 + k * 600 * S for k in range(4)])
    cum = cumulative_register([99_990.0, 99_998.0, 5.0, 6.0], rollover=100_000.0)
    st = StateBatch.build(
        ["m"], [0, 0], [T0, T0 + 1200 * S], [T0 + 1200 * S, T0 + 1800 * S], [R, ST]
    )
    by_state = energy_by_state(ts, cum, st)
    assert by_state["running"] == 15.0 and by_state["starved"] == 1.0


def test_peak_demand_and_time_of_use_cost() -> None:
    # 4 quarter hours with 1, 3, 2, 0.5 kWh: the peak is 3 kWh in 15 min = 12 kW
    ts = np.array([T0 + k * 900 * S for k in range(5)])
    cum = np.array([0.0, 1.0, 4.0, 6.0, 6.5])
    d = peak_demand(ts, cum, T0, T0 + H)
    assert (d.kw, d.at) == (12.0, T0 + 900 * S)
    # peak price 00:30-01:00 (3.0/kWh) holds 2.5 kWh, the rest (4 kWh) is at 1.0/kWh
    tar = Tariff(1.0, (TouPeriod("peak", "00:30", "01:00", 3.0),), timezone="UTC")
    cost = tariff_cost(ts, cum, T0, T0 + H, tar)
    assert cost["peak"]["kwh"] == 2.5 and cost["off_peak"]["kwh"] == 4.0
    assert cost["peak"]["cost"] + cost["off_peak"]["cost"] == 2.5 * 3.0 + 4.0


def test_period_buckets_cover_the_range() -> None:
    a, b = T0 + 3 * H, T0 + 10 * 24 * H
    for kind in ("all", "day", "week"):
        bk = buckets(kind, a, b, "Asia/Taipei")
        assert bk.edges[0] == a and bk.edges[-1] == b and len(bk) >= 1
    with pytest.raises(ValueError, match="calendar"):
        buckets("shift", a, b, "UTC")
    with pytest.raises(ValueError, match="empty"):
        buckets("day", b, a, "UTC")


# --- planned busy time from the shift calendar (ISO 22400-2) ----------------------------------
# Monday 06:00-14:00 shift with a 10:00-10:15 tea break: POT 8 h, planned downtime 15 min,
# PBT 7 h 45 min = 27 900 s whatever the machine does; off shift 00-06 and 14-24 (57 600 s).
CAL = Calendar.model_validate(
    {
        "shifts": [{"name": "day", "start": "06:00", "end": "14:00"}],
        "breaks": [{"name": "tea", "start": "10:00", "end": "10:15"}],
    }
)
PBT = 27_900.0
MIN = 60 * S


def _plan(hours: float = 24.0) -> Plan:
    return Plan.from_calendar(CAL, "UTC", {"m": "m"}, T0, T0 + round(hours * H))


def _parts_every(first: int, last: int, step: int) -> PartBatch:
    ts = list(range(first, last + 1, step))
    return PartBatch.build(["m"], [0] * len(ts), ts, ["p"] * len(ts), [1] * len(ts), [0] * len(ts))


def _day(states: StateBatch, parts: PartBatch) -> dict[str, float]:
    t = oee_table(states, parts, {"m": {"p": 60.0}}, Buckets.single(T0, T0 + 24 * H), plan=_plan())
    row = one_row(t, machine="m")
    waterfall = sum(row[k] for k in LOSSES) + row["fully_productive_s"]
    assert waterfall == pytest.approx(row["planned_busy_s"], abs=1e-6)
    assert row["calendar_s"] == 86_400.0
    return row


def test_a_failure_through_a_break_leaves_planned_busy_time_at_the_calendar() -> None:
    # down 09:50-10:30 through the tea break: 40 min of failure, of which 15 min are the
    # break (planned downtime, not breakdown): breakdown 25 min. One part a minute otherwise.
    st = timeline(
        (0, 6, OFF, "not_scheduled"),
        (6, 9 + 50 / 60, R, ""),
        (9 + 50 / 60, 10.5, DN, "SPINDLE"),
        (10.5, 14, R, ""),
        (14, 24, OFF, "not_scheduled"),
    )
    pt = PartBatch.build(
        ["m"],
        [0] * 440,
        [T0 + 6 * H + k * MIN for k in range(1, 231)]
        + [T0 + 10 * H + 30 * MIN + k * MIN for k in range(1, 211)],
        ["p"] * 440,
        [1] * 440,
        [0] * 440,
    )
    row = _day(st, pt)
    assert row["planned_busy_s"] == PBT  # the state timeline alone gave 28 800 s
    assert (row["planned_down_s"], row["not_scheduled_s"]) == (900.0, 57_600.0)
    assert row["breakdown_s"] == 1500.0
    assert row["running_s"] == 26_400.0
    assert row["availability"] == pytest.approx(26_400 / PBT)
    assert row["performance"] == pytest.approx(1.0)
    assert (row["produced"], row["outside_plan_produced"]) == (440, 0)


def test_a_cycle_finishing_into_a_break_is_work_outside_planned_time_for_its_last_seconds() -> None:
    # 70-s cycles (ideal 60 s) from 06:00: part 205 at 09:59:10, part 206 at 10:00:20 (its
    # cycle runs 20 s into the break), then the break until 10:15 and 192 more cycles.
    brk_end = T0 + 10 * H + 15 * MIN
    morning = [T0 + 6 * H + k * 70 * S for k in range(1, 207)]
    afternoon = [brk_end + k * 70 * S for k in range(1, 193)]
    st = StateBatch.build(
        ["m"] * 1,
        [0] * 5,
        [T0, T0 + 6 * H, morning[-1], brk_end, T0 + 14 * H],
        [T0 + 6 * H, morning[-1], brk_end, T0 + 14 * H, T0 + 24 * H],
        [OFF, R, PS, R, OFF],
        ["not_scheduled", "", "break", "", "not_scheduled"],
    )
    ts = morning + afternoon
    pt = PartBatch.build(["m"], [0] * len(ts), ts, ["p"] * len(ts), [1] * len(ts), [0] * len(ts))
    row = _day(st, pt)
    assert row["planned_busy_s"] == PBT  # the states alone: 28 800 - 880 = 27 920 s
    assert row["planned_down_s"] == 900.0
    assert row["running_s"] == PBT  # 06:00-10:00 and 10:15-14:00
    assert row["outside_plan_running_s"] == 20.0
    # part 206 counts outside planned time; 50 of its 70 s of work were planned time
    assert (row["produced"], row["outside_plan_produced"], row["outside_plan_good"]) == (
        397,
        1,
        1,
    )
    assert row["net_operating_s"] == pytest.approx(397 * 60 + 60 * 50 / 70)
    assert row["outside_plan_net_s"] == pytest.approx(60 * 20 / 70)
    assert row["performance"] == pytest.approx((397 * 60 + 60 * 50 / 70) / PBT)


def test_work_through_the_break_and_after_the_last_shift_is_its_own_figure() -> None:
    # running 06:00-14:30 without a stop (through the tea break, 30 min of overtime), a part
    # a minute: 15 parts finish in the break (10:01-10:15), 30 after the shift (14:01-14:30)
    st = timeline((0, 6, OFF, "not_scheduled"), (6, 14.5, R, ""), (14.5, 24, OFF, "not_scheduled"))
    pt = _parts_every(T0 + 6 * H + MIN, T0 + 14 * H + 30 * MIN, MIN)
    row = _day(st, pt)
    assert row["planned_busy_s"] == PBT  # the states alone: 30 600 s
    assert row["running_s"] == PBT and row["availability"] == 1.0
    assert row["outside_plan_running_s"] == 900.0 + 1800.0
    assert (row["produced"], row["outside_plan_produced"]) == (465, 45)
    assert row["net_operating_s"] == pytest.approx(465 * 60.0)
    assert row["outside_plan_net_s"] == pytest.approx(2700.0)
    assert row["performance"] == pytest.approx(1.0) and row["oee"] == pytest.approx(1.0)


def test_planned_time_without_reports_offline_or_an_unplanned_break_stays_in_pbt() -> None:
    # nothing reported 06:00-07:00, offline 07:00-08:00 inside the shift, a "break" taken
    # 08:00-08:30 (not the calendar's), running 08:30-14:00 with no part: no data 2 h, setup
    # 30 min; the calendar's tea break is planned downtime although the machine ran then
    st = timeline((7, 8, OFF, "not_scheduled"), (8, 8.5, PS, "break"), (8.5, 14, R, ""))
    row = _day(st, PartBatch.empty())
    assert row["planned_busy_s"] == PBT
    assert row["no_data_s"] == 7200.0
    assert row["setup_s"] == 1800.0
    assert row["running_s"] == PBT - 7200.0 - 1800.0
    assert row["outside_plan_running_s"] == 900.0
    assert row["not_scheduled_s"] == 57_600.0  # 6 h before the shift with no report either


def test_without_a_calendar_the_states_decide() -> None:
    # the same failure through a break without a plan: the state-only model (decision 0100)
    st = timeline((6, 10, R, ""), (10, 10.25, PS, "break"), (10.25, 14, R, ""))
    t = oee_table(st, PartBatch.empty(), {}, Buckets.single(T0, T0 + 24 * H))
    row = one_row(t, machine="m")
    assert (row["calendar_s"], row["planned_busy_s"], row["no_data_s"]) == (8 * 3600.0, PBT, 0.0)


def test_short_buckets_keep_performance_at_most_one() -> None:
    # 60-s cycles at the ideal 60 s; the cycle 06:14:40-06:15:40 ends 40 s into the bucket
    # 06:15-06:30, the machine is then down until 06:29 and finishes its next part at 06:30.
    # Counted where they finish, that bucket held 120 s of ideal time over 100 s of running
    # (performance 1.2); spread over their cycles it holds 40 + 60 s (the other 20 s of the
    # 06:15:40 part's work lie in 06:00-06:15).
    st = timeline(
        (0, 6, OFF, ""),
        (6, 6.25 + 40 / 3600, R, ""),
        (6.25 + 40 / 3600, 6 + 29 / 60, DN, "JAM"),
        (6 + 29 / 60, 8, R, ""),
        (8, 24, OFF, ""),
    )
    pt = PartBatch.build(
        ["m"],
        [0] * 105,
        [T0 + 6 * H + 40 * S + k * MIN for k in range(1, 16)]
        + [T0 + 6 * H + 29 * MIN + k * MIN for k in range(1, 91)],
        ["p"] * 105,
        [1] * 105,
        [0] * 105,
    )
    edges = np.arange(T0, T0 + 24 * H + 1, 15 * MIN)
    b = Buckets(edges, tuple(str(i) for i in range(len(edges) - 1)))
    t = oee_table(st, pt, {"m": {"p": 60.0}}, b, plan=_plan())
    q = one_row(t, bucket="25")  # 06:15-06:30
    assert q["running_s"] == 100.0 and q["net_operating_s"] == pytest.approx(100.0)
    assert one_row(t, bucket="24")["net_operating_s"] == pytest.approx(14 * 60.0 + 20.0)
    assert q["produced"] == 2
    assert np.nanmax(t.performance) <= 1.0 + 1e-12
    assert np.nanmax(t.oee) <= 1.0 + 1e-12
    assert t.col("net_operating_s").sum() == pytest.approx(60.0 * 105)

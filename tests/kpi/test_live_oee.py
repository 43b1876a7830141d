"""``kpi.api.oee`` on a real DuckDB store: the machine's open (still going) state counts up to
the moment it was last reported, planned busy time follows the shift calendar, and a live
range is cut at ``now`` (issue 18 items 2 and 11)."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from andon.kpi import api
from andon.kpi.oee import LOSSES, OEETable
from andon.kpi.timeline import Buckets
from andon.model.types import MachineState, PartBatch, StateBatch, to_micros
from andon.store.duckdb_store import DuckDBStore
from tests.plants import one_machine

S = 1_000_000
H = 3600 * S
M = "s/a/l/m"
T0 = to_micros(datetime(2026, 1, 5, 0, 0, tzinfo=ZoneInfo("UTC")))  # a Monday
R, DN = int(MachineState.RUNNING), int(MachineState.DOWN)
CAL = {
    "shifts": [{"name": "day", "start": "06:00", "end": "14:00"}],
    "breaks": [{"name": "tea", "start": "10:00", "end": "10:15"}],
}
PLANT = one_machine(calendar=CAL)


def _table(tmp: Path, closed: StateBatch, open_: StateBatch, parts: PartBatch, **kw: Any) -> Any:
    async def go() -> OEETable:
        store = DuckDBStore.open(tmp / "telemetry.duckdb")
        try:
            await store.append_states(PLANT.tenant, closed)
            if len(open_):
                await store.put_open_states(PLANT.tenant, open_)
            await store.append_parts(PLANT.tenant, parts)
            return await api.oee(store, PLANT, **kw)
        finally:
            await store.close()

    return asyncio.run(go())


def _row(t: OEETable, i: int = 0) -> dict[str, Any]:
    row = t.rows()[i]
    assert sum(row[k] for k in LOSSES) + row["fully_productive_s"] == pytest.approx(
        row["planned_busy_s"], abs=1e-6
    )
    return row


def _parts(first: int, n: int) -> PartBatch:
    ts = [first + k * 60 * S for k in range(1, n + 1)]
    return PartBatch.build([M], [0] * n, ts, ["p"] * n, [1] * n, [0] * n)


def test_the_open_stop_counts_up_to_its_last_report(tmp_path: Path) -> None:
    # running 06:00-09:00 (180 parts), then down since 09:00, last reported at 09:30
    closed = StateBatch.build([M], [0], [T0 + 6 * H], [T0 + 9 * H], [R])
    open_ = StateBatch.build([M], [0], [T0 + 9 * H], [T0 + 9 * H + 1800 * S], [DN], ["SPINDLE"])
    now = T0 + 9 * H + 1800 * S
    t = _table(tmp_path, closed, open_, _parts(T0 + 6 * H, 180), start=T0, end=T0 + 24 * H, now=now)
    row = _row(t)
    # before: the open stop was left out (PBT 3 h, availability 1)
    assert row["breakdown_s"] == 1800.0
    assert row["planned_busy_s"] == 3.5 * 3600.0  # the calendar's 06:00 up to now
    assert row["availability"] == pytest.approx(3 / 3.5)
    assert row["performance"] == pytest.approx(1.0)
    assert row["no_data_s"] == 0.0
    # the same with the range ending at now instead of a live range to midnight
    t2 = _table(tmp_path / "b", closed, open_, _parts(T0 + 6 * H, 180), start=T0, end=now)
    assert _row(t2)["availability"] == row["availability"]


def test_planned_busy_time_is_the_calendar_s_and_silence_is_no_data(tmp_path: Path) -> None:
    # reports stop at 12:00 (the edge went away); the day is over: 2 h of the shift no data
    closed = StateBatch.build([M], [0], [T0 + 6 * H], [T0 + 12 * H], [R])
    empty = StateBatch.build([M], [], [], [], [])
    t = _table(tmp_path, closed, empty, _parts(T0 + 6 * H, 300), start=T0, end=T0 + 24 * H)
    row = _row(t)
    assert row["planned_busy_s"] == 8 * 3600.0 - 900.0
    assert row["no_data_s"] == 2 * 3600.0
    assert row["planned_down_s"] == 900.0 and row["outside_plan_running_s"] == 900.0
    assert row["running_s"] == 8 * 3600.0 - 900.0 - 2 * 3600.0
    # 15 parts finished in the tea break are work outside planned time
    assert (row["produced"], row["outside_plan_produced"]) == (300 - 15, 15)


def test_fixed_buckets_and_a_range_in_the_future(tmp_path: Path) -> None:
    closed = StateBatch.build([M], [0], [T0 + 6 * H], [T0 + 7 * H], [R])
    empty = StateBatch.build([M], [], [], [], [])
    edges = [T0 + 6 * H + k * 900 * S for k in range(9)]

    b = Buckets(np.array(edges, dtype=np.int64), tuple(f"q{k}" for k in range(8)))
    t = _table(
        tmp_path,
        closed,
        empty,
        _parts(T0 + 6 * H, 60),
        start=edges[0],
        end=edges[-1],
        bucket_set=b,
        now=T0 + 7 * H,
    )
    assert t.bucket == ("q0", "q1", "q2", "q3")  # nothing after now exists yet
    assert [r["performance"] for r in t.rows()] == [pytest.approx(1.0)] * 4
    with pytest.raises(ValueError, match="bucket_set"):
        _table(tmp_path / "c", closed, empty, _parts(T0, 1), start=T0, end=T0 + H, bucket_set=b)

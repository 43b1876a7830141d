"""Not scheduled is not offline: a machine outside its shift calendar is ``not_scheduled`` on
the floor snapshot and raises no alert, whether it goes silent (a real edge switched off),
reports an ``offline`` state, or is the virtual factory idling between shifts; a machine that
goes silent during its shift is still ``offline`` with an alert."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from andon.demo.run import DemoRun, default_start
from andon.floor.alerts import (
    AlertEvaluator,
    FloorRecords,
    floor_snapshot,
)
from andon.model.plant import Plant
from andon.model.types import MachineState, StateBatch
from andon.platform import Database
from andon.platform.config import Monitoring
from andon.store import DuckDBStore
from tests.platform.floor import demo_plant, machine_paths, metadata_db

S = 1_000_000
MIN = 60 * S
H = 60 * MIN
RUN, OFF = int(MachineState.RUNNING), int(MachineState.OFFLINE)


@dataclass
class _Floor:
    db: Database
    store: DuckDBStore
    records: FloorRecords
    evaluator: AlertEvaluator
    clock: list[int]


@asynccontextmanager
async def _floor(tmp: Path, plant: Plant, now: int) -> AsyncIterator[_Floor]:
    async with metadata_db(f"sqlite:///{tmp / 'meta.db'}", {"t1": "s1"}) as db:
        store = DuckDBStore.open(None)
        clock = [now]
        try:
            records = FloorRecords(db, lambda: clock[0])

            async def plant_of(tenant: str, site: str) -> Plant:
                return plant

            ev = AlertEvaluator(
                records, plant_of, store, Monitoring(alert_interval_s=0), lambda: clock[0]
            )
            yield _Floor(db, store, records, ev, clock)
        finally:
            await store.close()


def test_the_virtual_factory_across_the_last_shift_end_turns_not_scheduled_without_alerts(
    tmp_path: Path,
) -> None:
    plant = demo_plant()
    ms = machine_paths(plant)
    start = default_start(plant) + 15 * H  # Monday 21:00 in Taipei; the evening shift ends 22:00

    async def go() -> None:
        async with _floor(tmp_path, plant, start) as f:
            run = DemoRun.create(plant, f.store, seed=7, start=start, window_s=60)
            seen: dict[str, set[str]] = {m: set() for m in ms}
            t = 0
            while t < 150 * 60:  # until 23:30, evaluating every 5 plant minutes
                t += 300
                await run.advance(float(t))
                f.clock[0] = start + t * S
                await f.evaluator.step_site("t1", "s1")
                snap = await floor_snapshot(f.store, "t1", plant, f.clock[0], 300)
                for m, st in snap.status.items():
                    seen[m].add(st.state)
                    if f.clock[0] >= start + 70 * MIN:  # 22:10: every machine off shift
                        assert (st.state, st.scheduled) == ("not_scheduled", False), st
                        assert st.since == start + H  # since the shift ended at 22:00
            every = await f.records.alerts("t1", "s1", open_only=False)
            assert not [a for a in every if a["kind"] == "offline"]
            assert await f.records.alerts("t1", "s1", open_only=True) == []
            assert all("offline" not in s for s in seen.values()), seen
            # the factory does run before 22:00: the run was real, not an empty store
            assert any("running" in s for s in seen.values())

    asyncio.run(go())


def test_a_silent_machine_during_its_shift_is_offline_with_an_alert(tmp_path: Path) -> None:
    plant = demo_plant()
    ms = machine_paths(plant)
    start = default_start(plant) + 3 * H  # Monday 09:00

    async def go() -> None:
        async with _floor(tmp_path, plant, start) as f:
            run = DemoRun.create(plant, f.store, seed=7, start=start, window_s=60)
            await run.advance(1800.0)  # 09:00-09:30, then every edge falls silent
            f.clock[0] = start + 30 * MIN + 4 * MIN
            snap = await floor_snapshot(f.store, "t1", plant, f.clock[0], 300)
            assert "offline" not in {s.state for s in snap.status.values()}
            assert await f.evaluator.step_site("t1", "s1") >= 0
            assert not [
                a
                for a in await f.records.alerts("t1", "s1", open_only=True)
                if a["kind"] == "offline"
            ]
            f.clock[0] = start + 30 * MIN + 6 * MIN
            snap = await floor_snapshot(f.store, "t1", plant, f.clock[0], 300)
            assert {s.state for s in snap.status.values()} == {"offline"}
            assert all(s.scheduled for s in snap.status.values())
            await f.evaluator.step_site("t1", "s1")
            offline = [
                a["machine"]
                for a in await f.records.alerts("t1", "s1", open_only=True)
                if a["kind"] == "offline"
            ]
            assert sorted(offline) == sorted(ms)

    asyncio.run(go())


def test_real_edges_off_shift_silent_or_offline_state_and_the_grace_at_shift_start(
    tmp_path: Path,
) -> None:
    plant = demo_plant()
    m0, m1, m2 = machine_paths(plant)[:3]
    mon06 = default_start(plant)
    mon22 = mon06 + 16 * H
    tue06 = mon06 + 24 * H

    async def go() -> None:
        async with _floor(tmp_path, plant, mon22) as f:
            # m0 stops sending at 22:00; m1 reports `offline` from 22:00 (and keeps saying
            # so); m2 keeps running after the shift (overtime)
            await f.store.append_states(
                "t1",
                StateBatch.build(
                    [m0, m1, m2],
                    [0, 1, 1, 2],
                    [mon22 - H, mon22 - H, mon22, mon22 - H],
                    [mon22, mon22, mon22 + 7 * H, mon22 + 7 * H],
                    [RUN, RUN, OFF, RUN],
                ),
            )
            at = mon22 + 7 * H  # 05:00 Tuesday: off shift
            snap = await floor_snapshot(f.store, "t1", plant, at, 300)
            st = snap.status
            assert (st[m0].state, st[m0].since) == ("not_scheduled", mon22)
            assert (st[m1].state, st[m1].since) == ("not_scheduled", mon22)
            assert (st[m2].state, st[m2].scheduled) == ("running", False)
            f.clock[0] = at
            await f.evaluator.step_site("t1", "s1")
            assert await f.records.alerts("t1", "s1", open_only=True) == []
            # the day shift starts at 06:00: five minutes to be heard before offline
            snap = await floor_snapshot(f.store, "t1", plant, tue06 + 4 * MIN, 300)
            assert snap.status[m0].state == "not_scheduled" and snap.status[m0].scheduled
            assert snap.status[m1].state == "not_scheduled"
            snap = await floor_snapshot(f.store, "t1", plant, tue06 + 6 * MIN, 300)
            assert (snap.status[m0].state, snap.status[m0].since) == ("offline", tue06)
            assert snap.status[m1].state == "offline"
            # an edge that reports `offline` during its shift: offline, with an alert
            await f.store.append_states(
                "t1", StateBatch.build([m1], [0], [tue06], [tue06 + 10 * MIN], [OFF])
            )
            f.clock[0] = tue06 + 10 * MIN
            snap = await floor_snapshot(f.store, "t1", plant, f.clock[0], 300)
            assert snap.status[m1].state == "offline"
            await f.evaluator.step_site("t1", "s1")
            kinds = {
                (a["machine"], a["kind"])
                for a in await f.records.alerts("t1", "s1", open_only=True)
            }
            assert (m1, "offline") in kinds and (m0, "offline") in kinds

    asyncio.run(go())

"""Signal alarms through the alert evaluator and the metadata database (SQLite and
PostgreSQL): raised at the time the data says with its evidence, one row when two evaluators
see the same raise, a returning alarm keeps its shelving, a restarted evaluator picks up open
alarms, a machine's alarms are suppressed outside its shift, and an engineer's override
replaces the model's limits."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from andon.demo.run import default_start
from andon.floor.alerts import AlertEvaluator, FloorRecords
from andon.model.plant import Plant, SignalAlarms
from andon.model.types import SampleBatch
from andon.platform.config import Monitoring
from andon.store import DuckDBStore
from tests.platform.floor import demo_plant, metadata_db

S = 1_000_000
MIN = 60 * S
H = 60 * MIN


PLANT = demo_plant()
PARTICLES = f"{PLANT.site.id}/cleanroom/particles"
CHAMBER = next(s for s in PLANT.signal_paths() if s.endswith("/PC-01/chamber_temp"))
T0 = default_start(PLANT) + 3 * H  # Monday 09:00 in Taipei, in the day shift


@dataclass
class _Floor:
    store: DuckDBStore
    records: FloorRecords
    clock: list[int]

    def evaluator(self) -> AlertEvaluator:
        async def plant_of(tenant: str, site: str) -> Plant:
            return PLANT

        return AlertEvaluator(
            self.records,
            plant_of,
            self.store,
            Monitoring(alert_interval_s=0, stale_after_s=1e9),
            lambda: self.clock[0],
        )

    async def samples(self, signal: str, t0: int, values: list[float]) -> None:
        n = len(values)
        ts = [t0 + i * 10 * S for i in range(n)]
        await self.store.append("t1", SampleBatch.build([signal], [0] * n, ts, values, [0] * n))

    async def alarms(self, open_only: bool = False) -> list[dict[str, object]]:
        rows = await self.records.alerts("t1", "s1", open_only=open_only)
        return [r for r in rows if r["signal"]]


@asynccontextmanager
async def _floor(url: str) -> AsyncIterator[_Floor]:
    async with metadata_db(url, {"t1": "s1"}) as db:
        store = DuckDBStore.open(None)
        try:
            clock = [T0]
            yield _Floor(store, FloorRecords(db, lambda: clock[0]), clock)
        finally:
            await store.close()


def test_raise_clear_dedup_shelving_and_restart(db_url: str) -> None:
    async def go() -> None:
        async with _floor(db_url) as f:
            # 5 min clean, 5 min dirty (ISO 7 exceeded), 5 min clean
            await f.samples(PARTICLES, T0 - 15 * MIN, [1e5] * 30 + [5e5] * 30 + [1e5] * 30)
            one, two = f.evaluator(), f.evaluator()
            f.clock[0] = T0 - 5 * MIN + 30 * S  # mid-excursion: raised, not cleared
            await asyncio.gather(one.step_site("t1", "s1"), two.step_site("t1", "s1"))
            rows = await f.alarms()
            assert len(rows) == 1  # both evaluators saw the raise; one row
            a = rows[0]
            assert (a["kind"], a["value"], a["threshold"]) == ("high", 5e5, 352_000.0)
            assert a["opened_at"] == T0 - 10 * MIN + 60 * S  # 60 s on-delay
            assert a["machine"] is None and a["closed_at"] is None
            # shelved by an operator; it clears and comes back while still shelved
            await f.records.shelve("t1", "s1", str(a["id"]), "user:o", T0 + H, "door")
            f.clock[0] = T0
            await one.step_site("t1", "s1")
            (closed,) = await f.alarms()
            assert closed["closed_at"] == T0 - 5 * MIN + 120 * S  # 120 s off-delay
            await f.samples(PARTICLES, T0 + 10 * S, [6e5] * 12)
            f.clock[0] = T0 + 2 * MIN
            # a new evaluator (a restart) finds no open alarm and raises the new one
            fresh = f.evaluator()
            assert await fresh.step_site("t1", "s1") == 1
            back = (await f.alarms(open_only=True))[0]
            assert back["id"] != a["id"] and back["opened_at"] == T0 + 70 * S
            assert (back["shelved_by"], back["shelved_until"], back["shelve_reason"]) == (
                "user:o",
                T0 + H,
                "door",
            )
            # ... and a restart while it is open carries on without a second row
            await f.samples(PARTICLES, T0 + 130 * S, [6e5] * 6)
            f.clock[0] = T0 + 3 * MIN
            assert await f.evaluator().step_site("t1", "s1") == 0
            assert len(await f.alarms(open_only=True)) == 1

    asyncio.run(go())


def test_machine_alarms_are_suppressed_off_shift_and_overrides_replace_the_model(
    db_url: str,
) -> None:
    evening_end = default_start(PLANT) + 16 * H  # Monday 22:00

    async def go() -> None:
        async with _floor(db_url) as f:
            # the chamber cools below its low limit (165 °C) from 21:50 on
            await f.samples(CHAMBER, evening_end - 20 * MIN, [180.0] * 60 + [150.0] * 180)
            f.clock[0] = evening_end - 2 * MIN
            ev = f.evaluator()
            await ev.step_site("t1", "s1")
            assert [(r["kind"], r["machine"]) for r in await f.alarms(open_only=True)] == [
                ("low", CHAMBER.rsplit("/", 1)[0])
            ]
            f.clock[0] = evening_end + 5 * MIN  # the shift is over: suppressed and cleared
            await ev.step_site("t1", "s1")
            assert await f.alarms(open_only=True) == []
            (row,) = await f.alarms()
            assert row["closed_at"] == evening_end + 5 * MIN
            f.clock[0] = evening_end + 25 * MIN
            await ev.step_site("t1", "s1")
            assert await f.alarms(open_only=True) == []  # still cold, still off shift

            # an engineer's override replaces the model's block for the particles sensor
            await f.records.set_alarm_override(
                "t1", "s1", PARTICLES, SignalAlarms(low=200_000.0), "user:e"
            )
            over = await f.records.alarm_overrides("t1", "s1")
            assert over[PARTICLES]["alarms"] == SignalAlarms(low=200_000.0)
            assert over[PARTICLES]["updated_by"] == "user:e"
            await f.samples(PARTICLES, evening_end + 25 * MIN + 10 * S, [1e5] * 3)
            f.clock[0] = evening_end + 26 * MIN
            await ev.step_site("t1", "s1")
            assert [r["kind"] for r in await f.alarms(open_only=True)] == ["low"]
            await f.records.set_alarm_override("t1", "s1", PARTICLES, None, "user:e")
            assert await f.records.alarm_overrides("t1", "s1") == {}
            f.clock[0] = evening_end + 27 * MIN
            await ev.step_site("t1", "s1")  # the model has no low limit: the alarm clears
            assert await f.alarms(open_only=True) == []

    asyncio.run(go())

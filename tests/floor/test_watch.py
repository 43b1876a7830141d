"""``FloorWatch`` agrees with ``floor_snapshot``: the same intervals and samples go through the
real ingest path into a real store and, as the live bus carries them, into a watch started
from an empty snapshot; at each moment checked the watch's statuses are the store's, once
the machines it asks the store about (``to_confirm``) are confirmed — and it asks about
exactly the one whose open state was re-confirmed without a bus event."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from andon.bus import InProcessBus
from andon.floor.alerts import floor_snapshot
from andon.floor.watch import FloorWatch
from andon.ingest import Ingestor
from andon.ingest.live import LivePublisher
from andon.model.loader import parse_plant
from andon.model.types import MachineState, SampleBatch, StateBatch
from andon.store import DuckDBStore
from tests.api.world import demo_yaml

MIN = 60 * 1_000_000
T = int(datetime(2026, 1, 5, 2, 0, tzinfo=UTC).timestamp()) * 1_000_000  # Mon 10:30 Taipei
RUN, DOWN = int(MachineState.RUNNING), int(MachineState.DOWN)
STALE_S = 300.0


def test_the_watch_follows_the_store_from_bus_events_alone() -> None:
    asyncio.run(_scenario())


async def _scenario() -> None:
    plant = parse_plant(demo_yaml())
    machines = [plant.machine_path(a, ln, m) for a, ln, m in plant.machines()]
    signals = list(plant.signal_paths())
    m0, m1, m2, m3 = machines[:4]
    sig2 = next(s for s in signals if s.startswith(m2 + "/"))
    store = DuckDBStore.open(None)
    bus = InProcessBus()
    ing = Ingestor(store)
    ing.live = LivePublisher(bus)
    ing.register("t", signals, machines)
    try:
        async with bus.subscribe("t", ("site", plant.site.id, ">")) as sub:
            start = await floor_snapshot(store, "t", plant, T - 2 * 60 * MIN, STALE_S)
            watch = FloorWatch(plant, machines, start, STALE_S)

            def closed(m: str, a: int, b: int, s: int, why: str = "") -> StateBatch:
                return StateBatch.build([m], [0], [a], [b], [s], [why])

            # m0 runs, its open state is confirmed, closes, and it goes down (open, re-confirmed)
            await ing.states("t", closed(m0, T - 30 * MIN, T - 10 * MIN, RUN))
            await ing.open_states("t", closed(m0, T - 10 * MIN, T - 9 * MIN, RUN))
            await ing.open_states("t", closed(m0, T - 10 * MIN, T - 6 * MIN, RUN))
            await ing.states("t", closed(m0, T - 10 * MIN, T - 5 * MIN, RUN))
            await ing.open_states("t", closed(m0, T - 5 * MIN, T - 4 * MIN, DOWN, "jam"))
            await ing.open_states("t", closed(m0, T - 5 * MIN, T, DOWN, "jam"))
            # m1 was down an hour ago and has been silent since; m2 sends samples only
            await ing.states("t", closed(m1, T - 60 * MIN, T - 50 * MIN, DOWN, "x"))
            await ing.samples("t", SampleBatch.build([sig2], [0], [T - 2 * MIN], [1.5]))
            # m3 touching pieces of one state: one interval since the first
            await ing.states("t", closed(m3, T - 20 * MIN, T - 3 * MIN, RUN))
            await ing.states("t", closed(m3, T - 3 * MIN, T - MIN, RUN))
            while (msg := sub.get_nowait()) is not None:
                watch.fold(msg.payload)

        # 10:31 in the shift; 10:34 m2 silent too long; 23:00 after the last shift
        asked = []
        for now in (T + MIN, T + 4 * MIN, T + 13 * 60 * MIN):
            snap = await floor_snapshot(store, "t", plant, now, STALE_S)
            confirm = watch.to_confirm(now)
            asked.append(sorted(confirm))
            mine = watch.status(now)
            for m in machines:
                if m not in confirm:
                    assert mine[m] == snap.status[m], (now, m)
            watch.confirm(snap)
            assert watch.status(now) == snap.status, now
            assert watch.to_confirm(now) == []
        # each machine that fell silent on the bus is asked about once after it did: m0 (its
        # re-confirmed open state is not on the bus) and m1 (heard after the first snapshot)
        # first, m2 once its samples stop, then m0 and m3; the machines never heard never
        assert asked == [sorted([m0, m1]), [m2], sorted([m0, m3])], asked
        status = watch.status(T + MIN)
        assert (status[m0].state, status[m0].since) == ("down", T - 5 * MIN)
        assert (status[m3].state, status[m3].since) == ("running", T - 20 * MIN)
        assert watch.changed(status) == list(status.values())  # all, the first time
        assert watch.changed(status) == []
    finally:
        await bus.close()
        await store.close()

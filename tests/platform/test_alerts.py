"""Floor snapshots, the alert rules, alert and reason records (SQLite and PostgreSQL), and the
background evaluator's start and stop."""

from __future__ import annotations

import asyncio

from andon.bus import AlertChanged, InProcessBus, alerts_topic
from andon.bus.base import Subscription
from andon.floor.alerts import (
    LOOKBACK_US,
    AlertEvaluator,
    AlertEvents,
    AlertRules,
    FloorRecords,
    WantedAlert,
    floor_snapshot,
    wanted_alerts,
)
from andon.model.plant import Plant
from andon.model.types import MachineState, SampleBatch, StateBatch
from andon.platform.config import Monitoring
from andon.store import DuckDBStore
from tests.platform.floor import demo_plant, machine_paths, metadata_db

S = 1_000_000
MIN = 60 * S
NOW = 1_767_571_200_000_000
RUN, DOWN = int(MachineState.RUNNING), int(MachineState.DOWN)


def test_snapshot_states_offline_and_unknown_from_bounded_reads() -> None:
    plant = demo_plant()
    ms = machine_paths(plant)
    m0, m1, m2, m3, m4 = ms[:5]

    async def go() -> None:
        store = DuckDBStore.open(None)
        try:
            await store.append_states(
                "t1",
                StateBatch.build(
                    [m0, m1, m4],
                    [0, 0, 1, 2],
                    [NOW - 20 * MIN, NOW - 10 * MIN, NOW - 60 * MIN, NOW - 180 * MIN],
                    [NOW - 10 * MIN, NOW - 1 * S, NOW - 50 * MIN, NOW - 2 * S],
                    # m0's two running pieces touch: one interval; m4 runs since 3 hours
                    [RUN, RUN, DOWN, RUN],
                ),
            )
            sig = next(s for s in plant.signal_paths() if s.startswith(m2 + "/"))
            await store.append("t1", SampleBatch.build([sig], [0], [NOW - 5 * S], [1.0], [0]))
            calls: list[str] = []
            for name in ("last_values", "read_states"):
                orig = getattr(store, name)

                def spy(*a: object, _o: object = orig, _n: str = name) -> object:
                    calls.append(_n)
                    return _o(*a)  # type: ignore[operator]

                setattr(store, name, spy)
            snap = await floor_snapshot(store, "t1", plant, NOW, stale_after_s=300)
            # the last hour for all, the whole day again only for those it did not settle
            assert calls == ["last_values", "read_states", "read_states"]
        finally:
            await store.close()
        st = snap.status
        assert list(st) == ms
        assert (st[m0].state, st[m0].since, st[m0].last_seen) == (
            "running",
            NOW - 20 * MIN,
            NOW - S,
        )
        assert (st[m1].state, st[m1].since) == ("offline", NOW - 50 * MIN)  # stale
        assert (st[m2].state, st[m2].since, st[m2].last_seen) == ("unknown", None, NOW - 5 * S)
        # never heard: offline since its shift began (06:00 in Taipei, two hours before NOW)
        assert (st[m3].state, st[m3].since, st[m3].last_seen) == ("offline", NOW - 120 * MIN, None)
        assert (st[m4].state, st[m4].since) == ("running", NOW - 180 * MIN)

    asyncio.run(go())


def test_rules_down_offline_and_unexplained() -> None:
    plant = demo_plant()
    ms = machine_paths(plant)
    rules = AlertRules.of(
        Monitoring(down_alert_after_s=600, unexplained_alert_after_s=900, unexplained_min_stop_s=60)
    )

    async def snap(rows: list[tuple[int, int, int, int, str]]) -> object:
        store = DuckDBStore.open(None)
        try:
            idx = [r[0] for r in rows]
            await store.append_states(
                "t1",
                StateBatch.build(
                    ms,
                    idx,
                    [r[1] for r in rows],
                    [r[2] for r in rows],
                    [r[3] for r in rows],
                    [r[4] for r in rows],
                ),
            )
            return await floor_snapshot(store, "t1", plant, NOW, 300, LOOKBACK_US)
        finally:
            await store.close()

    rows = [
        (0, NOW - 30 * MIN, NOW - 9 * MIN, RUN, ""),
        (0, NOW - 9 * MIN, NOW, DOWN, ""),  # down 9 min: not yet
        (1, NOW - 30 * MIN, NOW - 10 * MIN, RUN, ""),
        (1, NOW - 10 * MIN, NOW, DOWN, "CHIP_JAM"),  # down 10 min with a code
        (2, NOW - 60 * MIN, NOW - 40 * MIN, DOWN, ""),  # finished, long, no reason
        (2, NOW - 40 * MIN, NOW - 39 * MIN - 30 * S, DOWN, "X"),
        (2, NOW - 39 * MIN - 30 * S, NOW - 39 * MIN, DOWN, ""),  # 30 s: a micro-stop
        (2, NOW - 39 * MIN, NOW, RUN, ""),
        (3, NOW - 20 * MIN, NOW - 14 * MIN, DOWN, ""),  # began 20 min ago, 6 min long
        (3, NOW - 14 * MIN, NOW, RUN, ""),
    ]
    got = wanted_alerts(asyncio.run(snap(rows)), set(), rules)  # type: ignore[arg-type]
    offline = {(m, "offline") for m in ms[4:]}
    assert (
        set(got)
        == {
            (ms[1], "down"),
            (ms[2], "unexplained_stop"),
            (ms[3], "unexplained_stop"),
        }
        | offline
    )
    assert got[(ms[1], "down")].severity == "critical"
    assert got[(ms[2], "unexplained_stop")].message.endswith(
        "1 stop without a reason (oldest 60 min ago)"
    )
    answered = {(ms[2], NOW - 60 * MIN), (ms[3], NOW - 20 * MIN)}
    got = wanted_alerts(asyncio.run(snap(rows)), answered, rules)  # type: ignore[arg-type]
    assert set(got) == {(ms[1], "down")} | offline


def test_records_keep_one_open_alert_per_key_and_stay_in_their_tenant(db_url: str) -> None:
    clock = [NOW]

    async def go() -> None:
        async with metadata_db(db_url, {"t1": "s-t1", "t2": "s-t2"}) as db:
            a = FloorRecords(db, lambda: clock[0])
            want: dict[tuple[str | None, str], WantedAlert] = {
                ("m", "down"): WantedAlert("m", "down", "critical", "m: down")
            }
            # two evaluators racing: the unique open key lets exactly one open it
            got = await asyncio.gather(*(a.sync_alerts("t1", "s-t1", want) for _ in range(4)))
            assert sum(got) == 1
            rows = await a.alerts("t1", "s-t1", open_only=True)
            assert len(rows) == 1 and rows[0]["opened_at"] == NOW
            assert await a.alerts("t2", "s-t2", open_only=False) == []
            assert await a.alerts("t2", "s-t1", open_only=False) == []
            assert await a.ack("t2", "s-t1", rows[0]["id"], "user:x") is None
            clock[0] += S
            before, after = await a.ack("t1", "s-t1", rows[0]["id"], "user:u") or ({}, {})
            assert before["acked_by"] is None
            assert (after["acked_by"], after["acked_at"]) == ("user:u", NOW + S)
            clock[0] += S
            assert await a.sync_alerts("t1", "s-t1", {}) == 1
            clock[0] += S
            assert await a.sync_alerts("t1", "s-t1", want) == 1  # opens anew
            everything = await a.alerts("t1", "s-t1", open_only=False)
            assert [x["closed_at"] for x in everything] == [None, NOW + 2 * S]
            touched = await a.alerts_touched("t1", "s-t1", NOW + 3 * S)
            assert [x["closed_at"] for x in touched] == [None]
            assert len(await a.alerts_touched("t1", "s-t1", NOW)) == 2
            await a.add_reason(
                "t1",
                "s-t1",
                machine="m",
                stop_start=5,
                category="process",
                reason="jam",
                actor="user:u",
            )
            entries = await a.reason_entries("t1", "s-t1", 0, 10)
            assert [(e.machine, e.stop_start, e.reason, e.who) for e in entries] == [
                ("m", 5, "jam", "user:u")
            ]
            assert await a.reason_entries("t2", "s-t1", 0, 10) == []
            assert await a.reason_entries("t1", "s-t1", 6, 10) == []

    asyncio.run(go())


def test_evaluator_runs_in_the_background_and_stops(db_url: str) -> None:
    plant = demo_plant()

    async def go() -> None:
        async with metadata_db(db_url, {"t1": "s-t1", "t2": "s-t2"}) as db:
            store = DuckDBStore.open(None)
            records = FloorRecords(db, lambda: NOW)

            async def plant_of(tenant: str, site: str) -> Plant:
                return plant

            ev = AlertEvaluator(
                records, plant_of, store, Monitoring(alert_interval_s=0.01), lambda: NOW
            )
            ev.start()
            try:
                deadline = asyncio.get_running_loop().time() + 30
                while ev.passes < 3:
                    assert asyncio.get_running_loop().time() < deadline, "no passes"
                    await asyncio.sleep(0.01)
            finally:
                await ev.stop()
                await store.close()
            passes = ev.passes
            # every machine of both sites never sent anything: offline alerts, once each
            for t in ("t1", "t2"):
                rows = await records.alerts(t, f"s-{t}", open_only=True)
                assert {r["kind"] for r in rows} == {"offline"}
                assert len(rows) == len(machine_paths(plant))
            await asyncio.sleep(0.05)
            assert ev.passes == passes  # stopped
            off = AlertEvaluator(
                records, plant_of, store, Monitoring(alert_interval_s=0), lambda: NOW
            )
            off.start()
            await off.stop()
            assert off.passes == 0

    asyncio.run(go())


def test_alert_changes_reach_a_live_bus_subscriber(db_url: str) -> None:
    """The evaluator's opened alerts, an acknowledgement, a shelving and the close all arrive
    on the site's alerts topic (its plant key) of the bus; a publish that fails (bus closed)
    is counted and leaves the alert's change in the database."""
    plant = demo_plant()
    ms = machine_paths(plant)

    async def next_events(sub: Subscription, n: int) -> list[AlertChanged]:
        got: list[AlertChanged] = []
        deadline = asyncio.get_running_loop().time() + 10
        while len(got) < n:
            left = deadline - asyncio.get_running_loop().time()
            assert left > 0, f"only {len(got)} of {n} alert events arrived"
            msg = await sub.next(timeout=left)
            assert msg is not None
            assert msg.topic == alerts_topic("tc1")
            assert isinstance(msg.payload, AlertChanged)
            got.append(msg.payload)
        return got

    async def go() -> None:
        async with metadata_db(db_url, {"t1": "s-t1"}) as db:
            store = DuckDBStore.open(None)
            bus = InProcessBus()
            events = AlertEvents(bus)
            records = FloorRecords(db, lambda: NOW, events)

            async def plant_of(tenant: str, site: str) -> Plant:
                return plant

            ev = AlertEvaluator(records, plant_of, store, Monitoring(), lambda: NOW)
            try:
                async with bus.subscribe("t1", alerts_topic("*")) as sub:
                    # nothing ever heard from any machine: each gets an offline alert
                    assert await ev.step_site("t1", "s-t1") == len(ms)
                    opened = await next_events(sub, len(ms))
                    assert {(e.machine, e.status, e.ts) for e in opened} == {
                        (m, "opened", NOW) for m in ms
                    }
                    rows = await records.alerts("t1", "s-t1", open_only=True)
                    assert {e.alert_id for e in opened} == {r["id"] for r in rows}
                    first = rows[0]
                    assert await records.ack("t1", "s-t1", first["id"], "op") is not None
                    assert await records.shelve("t1", "s-t1", first["id"], "op", NOW + 1, "x")
                    acked, shelved = await next_events(sub, 2)
                    assert (acked.alert_id, acked.status) == (first["id"], "acknowledged")
                    assert (shelved.alert_id, shelved.status) == (first["id"], "shelved")
                    # the machine reports: its offline alert closes
                    await store.append_states(
                        "t1",
                        StateBatch.build([first["machine"]], [0], [NOW - MIN], [NOW], [RUN], [""]),
                    )
                    assert await ev.step_site("t1", "s-t1") == 1
                    (closed,) = await next_events(sub, 1)
                    assert (closed.alert_id, closed.status) == (first["id"], "closed")
                    assert sub.pending() == 0
                assert (events.published, events.failed) == (len(ms) + 3, 0)
                await bus.close()
                second = rows[1]
                assert await records.ack("t1", "s-t1", second["id"], "op") is not None
                assert events.failed == 1
                got = await records.get_alert("t1", "s-t1", second["id"])
                assert got is not None and got["acked_by"] == "op"
            finally:
                await bus.close()
                await store.close()

    asyncio.run(go())

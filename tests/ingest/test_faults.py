"""Faults around the platform side of the data path (issue 17): hostile or odd frames, a
failing store, a failing audit, a clock running ahead, a growing signal dictionary. Each
keeps ingest going, stores nothing it should not, and counts what it refused by reason."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import duckdb
import numpy as np
import pytest

from andon.connect.base import within
from andon.connect.counting import DEFAULT_START, counter_batch
from andon.ingest import Ingestor
from andon.ingest.gateway import (
    MAX_SEQ,
    EdgeIdentity,
    IngestGateway,
    Refusal,
    SiteRef,
    StaticKeys,
    StaticSites,
)
from andon.ingest.mqtt import MqttReceiver, ReceiverConfig
from andon.model.types import SampleBatch
from andon.store.duckdb_store import DuckDBStore
from andon.wire.frames import UP_PREFIX, Frame, ack_topic, decode_acks, encode_frame
from tests.edge.broker import Broker
from tests.edge.helpers import until

A_ID = "a" * 32
KEY_A = f"andon_{A_ID}_secret-a"
S1 = tuple(f"s1/area/line/m/x{i}" for i in range(3))
BAD = "s1/area/line/m/nope"


class World:
    """A gateway over a file-backed store, one tenant ``t1`` with site ``s1``."""

    def __init__(self, path: Path, max_signals_per_tenant: int | None = None) -> None:
        self.path = path
        self.store = DuckDBStore.open(path, max_signals_per_tenant=max_signals_per_tenant)
        self.ingestor = Ingestor(self.store)
        self.ingestor.register("t1", S1, [])
        keys = StaticKeys({KEY_A: EdgeIdentity(A_ID, "t1")})
        self.gateway = IngestGateway(self.ingestor, keys, StaticSites({"t1": {"s1": "site-1"}}))

    async def stored(self) -> int:
        got = await self.ingestor.store.read("t1", S1, 0, 2**62)
        return len(got)


@pytest.fixture
def w(tmp_path: Path) -> Iterator[World]:
    world = World(tmp_path / "t.duckdb")
    yield world
    asyncio.run(world.ingestor.store.close())


def frame(seq: int, k0: int = 0, k1: int = 30, names: tuple[str, ...] = S1) -> bytes:
    batch = counter_batch(names, k0, k1, DEFAULT_START, 1000)
    return encode_frame("edge-1", KEY_A, "gen", seq, DEFAULT_START, False, batch)


def test_a_sequence_number_outside_a_signed_64_bit_range_is_refused_before_storing(
    w: World,
) -> None:
    async def go() -> None:
        for seq in (MAX_SEQ, 2**64 - 1):
            r = await w.gateway.frames([(A_ID, frame(seq))])
            assert (r.accepted, r.refused, r.acks) == (0, ["bad_seq"], {})
        assert await w.stored() == 0
        assert w.gateway.stats.frames_refused["bad_seq"] == 2
        # the largest valid one, and 0 (both legs: the MQTT topic and the HTTPS bearer)
        r = await w.gateway.frames([(A_ID, frame(MAX_SEQ - 1, 0, 3))])
        assert [(a.seq, a.status) for a in r.acks[A_ID]] == [(MAX_SEQ - 1, "ok")]
        r = await w.gateway.frames([(A_ID, frame(0, 3, 6))])
        assert (r.accepted, [(a.seq, a.status) for a in r.acks[A_ID]]) == (3, [(0, "ok")])
        bearer = EdgeIdentity(A_ID, "t1", frozenset({"site-1"}))
        r = await w.gateway.frames([(None, frame(0, 6, 9))], bearer=bearer)
        assert (r.accepted, r.refused, [a.seq for a in r.acks[A_ID]]) == (3, [], [0])
        assert await w.stored() == 9

    asyncio.run(go())


def test_a_failing_store_write_is_counted_and_not_acknowledged_and_the_resend_is_stored(
    w: World,
) -> None:
    async def go() -> None:
        await w.store.close()  # a store that raises on every write (as a full disk does)
        r = await w.gateway.frames([(A_ID, frame(1)), (A_ID, frame(2, 30, 60))])
        assert (r.accepted, r.acks, r.refused) == (0, {}, ["store_failed", "store_failed"])
        assert w.gateway.stats.frames_refused["store_failed"] == 2
        assert w.ingestor.stats.rejected["store_failed"] == 0  # not lost: sent again
        w.ingestor.store = DuckDBStore.open(w.path)
        again = await w.gateway.frames([(A_ID, frame(1)), (A_ID, frame(2, 30, 60))])
        assert [(a.seq, a.status) for a in again.acks[A_ID]] == [(1, "ok"), (2, "ok")]
        assert await w.stored() == 60

    asyncio.run(go())


_DISK_FULL_SCRIPT = textwrap.dedent(
    """
    import asyncio, os, resource, signal, sys
    from andon.connect.counting import DEFAULT_START, counter_batch
    from andon.wire.frames import encode_frame
    from andon.ingest import Ingestor
    from andon.ingest.gateway import EdgeIdentity, IngestGateway, StaticKeys, StaticSites
    from andon.store.duckdb_store import DuckDBStore

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails: EFBIG
    path, key, names = sys.argv[1], "andon_" + "a" * 32 + "_s", ("s1/a/l/m/x",)
    def frame(seq, k0, k1):
        b = counter_batch(names, k0, k1, DEFAULT_START, 1000)
        return encode_frame("e", key, "gen", seq, 0, False, b)
    async def go():
        store = DuckDBStore.open(path)
        ing = Ingestor(store)
        ing.register("t", names, [])
        gw = IngestGateway(ing, StaticKeys({key: EdgeIdentity("a" * 32, "t")}),
                           StaticSites({"t": {"s1": "x"}}))
        first = await gw.frames([("a" * 32, frame(1, 0, 10))])
        room = os.path.getsize(path) + 4096  # the disk fills up
        resource.setrlimit(resource.RLIMIT_FSIZE, (room, resource.RLIM_INFINITY))
        full = await gw.frames([("a" * 32, frame(2, 10, 150_010))])
        resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY,) * 2)  # freed
        again = await gw.frames([("a" * 32, frame(2, 10, 150_010))])  # the edge resends
        got = await store.read("t", names, 0, 2**62)
        print(len(first.acks["a" * 32]), full.refused, dict(full.acks),
              [a.status for a in again.acks["a" * 32]], len(got))
        await store.close()
    asyncio.run(go())
    """
)


def test_a_full_disk_leaves_the_frame_unacknowledged_and_its_resend_is_stored(
    tmp_path: Path,
) -> None:
    out = subprocess.run(
        [sys.executable, "-c", _DISK_FULL_SCRIPT, str(tmp_path / "t.duckdb")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[0] == "1 ['store_failed'] {} ['ok'] 150010", out.stderr


class SitesDown:
    """The site directory while its database restarts (``PlatformSites`` reads PostgreSQL)."""

    async def by_key(self, tenant: str, site_key: str) -> SiteRef | None:
        raise ConnectionError("metadata database unavailable")


def test_a_frame_whose_handling_raises_is_left_unanswered_and_the_group_goes_on(
    w: World,
) -> None:
    async def go() -> None:
        sites = w.gateway.sites
        w.gateway.sites = SitesDown()
        r = await w.gateway.frames([(A_ID, frame(1)), (A_ID, b"garbage")])
        assert (r.refused, r.acks) == (["internal_error", "malformed_frame"], {})
        assert w.gateway.stats.frames_refused["internal_error"] == 1
        assert w.ingestor.stats.rejected["internal_error"] == 0  # not lost: sent again
        w.gateway.sites = sites
        r = await w.gateway.frames([(A_ID, frame(1))])  # the edge's resend
        assert (r.accepted, [a.status for a in r.acks[A_ID]]) == (30, ["ok"])

    asyncio.run(go())


def test_a_refusal_whose_audit_fails_stands_and_is_counted(w: World) -> None:
    async def go() -> None:
        async def audit_down(r: Refusal) -> None:  # the audit database is restarting
            raise ConnectionError("audit database unavailable")

        w.gateway.on_refused = audit_down
        w.gateway.keys.revoke(A_ID)  # type: ignore[attr-defined]
        r = await w.gateway.frames([(A_ID, frame(1))])
        assert (r.refused, [a.status for a in r.acks[A_ID]]) == (["revoked_key"], ["refused"])
        assert w.gateway.stats.audit_failed == 1
        assert w.gateway.stats.as_dict()["audit_failed"] == 1

    asyncio.run(go())


def test_a_failing_on_stored_hook_does_not_hold_back_the_acknowledgements(w: World) -> None:
    async def go() -> None:
        def hook(frames: list[Frame]) -> None:
            raise RuntimeError("hook down")

        w.gateway.on_stored = hook
        r = await w.gateway.frames([(A_ID, frame(1)), (A_ID, frame(2, 30, 60))])
        assert [(a.seq, a.status) for a in r.acks[A_ID]] == [(1, "ok"), (2, "ok")]
        assert (r.refused, w.gateway.stats.on_stored_failed) == ([], 1)
        assert sum(w.gateway.stats.frames_refused.values()) == 0

    asyncio.run(go())


def test_a_frame_over_the_size_cap_is_refused_before_it_is_read(tmp_path: Path) -> None:
    async def go() -> None:
        w = World(tmp_path / "t.duckdb")
        big = frame(1, 0, 3000)
        w.gateway.max_frame_bytes = len(big) - 1
        r = await w.gateway.frames([(A_ID, big), (A_ID, frame(2, 0, 30))])
        assert (r.accepted, r.refused) == (30, ["too_large"])
        # the header shows the topic's key: told, so the edge stops instead of resending
        assert [(a.seq, a.status) for a in r.acks[A_ID]] == [(1, "refused"), (2, "ok")]
        assert r.acks[A_ID][0].reason.startswith("too_large: ")
        # a frame over the cap on another key's topic, or not a frame at all: no answer
        r = await w.gateway.frames([("b" * 32, big), (A_ID, b"x" * len(big))])
        assert (r.refused, r.acks) == (["too_large", "too_large"], {})
        assert w.gateway.stats.frames_refused["too_large"] == 3
        await w.store.close()

    asyncio.run(go())


_RSS_SCRIPT = textwrap.dedent(
    """
    import asyncio, resource, sys
    from andon.wire.frames import encode_frame
    from andon.ingest import Ingestor
    from andon.ingest.gateway import EdgeIdentity, IngestGateway, StaticKeys, StaticSites
    from andon.model.types import SampleBatch
    from andon.store.duckdb_store import DuckDBStore
    import numpy as np

    key = "andon_" + "a" * 32 + "_s"
    n = 3_000_000  # 21 bytes a point: a 63 MB frame
    batch = SampleBatch(("s1/a/l/m/x",), np.zeros(n, np.int32), np.arange(n, dtype=np.int64)
        + 1_700_000_000_000_000, np.ones(n), np.zeros(n, np.uint8))
    payload = encode_frame("e", key, "gen", 1, 0, False, batch)
    del batch
    async def go():
        store = DuckDBStore.open(None)
        ing = Ingestor(store)
        ing.register("t", ["s1/a/l/m/x"], [])
        gw = IngestGateway(ing, StaticKeys({key: EdgeIdentity("a" * 32, "t")}),
                           StaticSites({"t": {"s1": "x"}}))
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        r = await gw.frames([("a" * 32, payload)])
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(len(payload), int(r.refused == ["too_large"]), (after - before) // 1024)
        await store.close()
    asyncio.run(go())
    """
)


def test_a_63_mb_frame_does_not_grow_ingest_memory() -> None:
    out = subprocess.run(
        [sys.executable, "-c", _RSS_SCRIPT], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    size, refused, grown_mb = (int(x) for x in out.stdout.split())
    assert (size > 63_000_000, refused) == (True, 1)
    assert grown_mb < 50, out.stdout


def test_names_refused_as_unknown_get_no_dictionary_ids(w: World) -> None:
    async def go() -> None:
        names = (S1[0], *(f"s1/area/line/m/junk{i}" for i in range(2000)))
        index = np.arange(2001, dtype=np.int32)
        batch = SampleBatch(
            names,
            index,
            DEFAULT_START + index.astype(np.int64),
            np.ones(2001),
            np.zeros(2001, np.uint8),
        )
        f = encode_frame("edge-1", KEY_A, "gen", 1, DEFAULT_START, False, batch)
        r = await w.gateway.frames([(A_ID, f)])
        assert (r.accepted, r.rejected) == (1, {"unknown_signal": 2000})
        await w.ingestor.store.close()
        with duckdb.connect(str(w.path)) as con:
            assert con.execute("SELECT count(*) FROM signals").fetchone() == (1,)
        w.ingestor.store = DuckDBStore.open(w.path)

    asyncio.run(go())


def test_the_signal_dictionary_is_capped_per_tenant(tmp_path: Path) -> None:
    async def go() -> None:
        w = World(tmp_path / "t.duckdb", max_signals_per_tenant=2)
        w.ingestor.register("t2", S1, [])
        r = await w.gateway.frames([(A_ID, frame(1, 0, 30))])  # 10 points per signal
        assert (r.accepted, r.rejected) == (20, {"dictionary_full": 10})
        assert w.ingestor.stats.rejected["dictionary_full"] == 10
        # known signals still write; another tenant has its own room
        r = await w.gateway.frames([(A_ID, frame(2, 30, 60))])
        assert (r.accepted, r.rejected) == (20, {"dictionary_full": 10})
        rep = await w.ingestor.samples("t2", counter_batch(S1[:2], 0, 4, DEFAULT_START, 1000))
        assert rep.accepted == 4
        await w.store.close()

    asyncio.run(go())


def test_a_different_value_at_a_stored_instant_is_a_conflict_not_a_resend(w: World) -> None:
    async def go() -> None:
        one = SampleBatch.build([S1[0]], [0, 0], [DEFAULT_START, DEFAULT_START + 1], [1.0, 2.0])
        assert (await w.ingestor.samples("t1", one)).conflicts == 0
        resend = await w.ingestor.samples("t1", one)
        assert (resend.accepted, resend.duplicates, resend.conflicts) == (0, 2, 0)
        other = SampleBatch.build(
            [S1[0]], [0, 0, 0], [DEFAULT_START, DEFAULT_START + 2, DEFAULT_START + 2], [9, 3, 4]
        )
        rep = await w.ingestor.samples("t1", other)  # one against the store, one in the batch
        assert (rep.accepted, rep.duplicates, rep.conflicts) == (1, 2, 2)
        nan = SampleBatch.build([S1[1]], [0, 0], [DEFAULT_START] * 2, [np.nan] * 2, [2, 2])
        assert (await w.ingestor.samples("t1", nan)).conflicts == 0  # NaN resent is a resend
        assert w.ingestor.stats.conflicts == 2
        got = await w.ingestor.store.read("t1", [S1[0]], 0, 2**62)
        assert got.value.tolist() == [1.0, 2.0, 3.0]  # the first write of each instant kept
        # through the gateway, counted apart
        f = encode_frame("e", KEY_A, "gen", 5, DEFAULT_START, False, other)
        r = await w.gateway.frames([(A_ID, f)])
        assert (r.duplicates, w.gateway.stats.points_conflict) == (3, 2)

    asyncio.run(go())


def test_samples_far_ahead_of_the_platform_clock_are_refused(w: World) -> None:
    async def go() -> None:
        now = DEFAULT_START + 3_600_000_000
        ing = Ingestor(w.store, clock=lambda: now, future_tolerance_s=300)
        ing.register("t1", S1, [])
        ts = [now - 1_000_000, now + 299_000_000, now + 301_000_000, now + 86_400_000_000]
        rep = await ing.samples("t1", SampleBatch.build([S1[0]], [0] * 4, ts, [1, 2, 3, 4]))
        assert (rep.accepted, rep.rejected) == (2, {"future": 2})
        last = await w.store.last_values("t1", [S1[0]])
        assert last[S1[0]].value == 2.0  # not frozen at the day-ahead sample
        assert ing.stats.rejected["future"] == 2

    asyncio.run(go())


def test_refusals_are_logged_once_per_key_and_reason_with_a_count(
    w: World, caplog: pytest.LogCaptureFixture
) -> None:
    async def go() -> None:
        garbage = [(A_ID, b"not a frame %d" % i) for i in range(10_000)]
        with caplog.at_level(logging.WARNING, logger="andon.ingest.gateway"):
            r = await w.gateway.frames(garbage)
        assert len(r.refused) == 10_000
        assert w.gateway.stats.frames_refused["malformed_frame"] == 10_000
        assert w.ingestor.stats.rejected["malformed_frame"] == 10_000
        lines = [rec.getMessage() for rec in caplog.records]
        assert len(lines) == 1, lines[:3]
        assert lines[0].startswith(f"refused 1 frame from key {A_ID}: malformed_frame (last: ")

    asyncio.run(go())


def test_the_mqtt_receiver_keeps_going_through_a_failing_store_and_a_broker_restart(
    tmp_path: Path,
) -> None:
    broker = Broker(tmp_path)
    broker.start()

    async def go() -> None:
        w = World(tmp_path / "t.duckdb")
        receiver = MqttReceiver(w.gateway, ReceiverConfig(port=broker.port))
        task = asyncio.create_task(receiver.run())
        up = UP_PREFIX + A_ID

        async def sent_and_acked(payload: bytes) -> list[tuple[int, str]]:
            async with aiomqtt.Client("127.0.0.1", broker.port, identifier="edge-a") as edge:
                await edge.subscribe(ack_topic(A_ID), qos=1)
                await edge.publish(up, payload, qos=1)
                msg = await within(anext(edge.messages), 10)
                assert isinstance(msg.payload, bytes)
                return [(a.seq, a.status) for a in decode_acks(msg.payload)]

        try:
            await within(receiver.connected.wait(), 10)
            await w.store.close()  # every write fails, as on a full disk
            async with aiomqtt.Client("127.0.0.1", broker.port, identifier="edge-x") as edge:
                await edge.publish(up, frame(1), qos=1)
                await edge.publish(up, frame(MAX_SEQ), qos=1)
            refused = w.gateway.stats.frames_refused
            await until(lambda: refused["store_failed"] + refused["bad_seq"] == 2, 10, "refusals")
            w.ingestor.store = DuckDBStore.open(w.path)
            assert await sent_and_acked(frame(1)) == [(1, "ok")]  # the edge's resend
            broker.restart()
            await until(lambda: receiver.connects == 2, 10, "the receiver back on the broker")
            await within(receiver.connected.wait(), 10)
            assert await sent_and_acked(frame(0, 30, 60)) == [(0, "ok")]
            assert not task.done()
            assert await w.stored() == 60
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await w.ingestor.store.close()

    try:
        asyncio.run(go())
    finally:
        broker.close()
